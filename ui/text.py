"""Text from visitors (tensor names from an uploaded file or a local path) shown inside Streamlit markdown.

Streamlit renders captions and messages as markdown with extras ($...$ as LaTeX, :color[...] and :icon: as
directives), so a tensor named "**x**" or "a`b" or "$1$" would be formatted, not shown. `md_literal` backslash-
escapes every ASCII punctuation character (CommonMark lets any of them be escaped), so the name is shown as typed.
"""
from __future__ import annotations

import re

_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def md_literal(text: str) -> str:
    """`text` escaped so that markdown shows it literally (newlines folded to spaces)."""
    return _PUNCT.sub(r"\\\1", " ".join(str(text).splitlines()))
