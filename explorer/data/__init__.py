"""Text data written for this project (no third-party text): `calibration.txt` holds varied passages (prose,
dialogue, instructions, code, numbers, tables, a little French/German/Spanish), one per blank-line-separated
paragraph, used to capture real layer inputs and for task-free calibration of whole-model quantization.
"""

from __future__ import annotations

import re
from pathlib import Path

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.txt"


def calibration_passages() -> list[str]:
    """The calibration passages in file order (paragraphs split on blank lines, surrounding whitespace removed)."""
    text = CALIBRATION_FILE.read_text(encoding="utf-8")
    return [p.strip() for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
