"""Visitor text inside markdown: md_literal escapes every markdown-active character and loses nothing."""
from __future__ import annotations

import re
import string

from ui.text import md_literal


def test_every_ascii_punctuation_is_escaped_and_nothing_is_lost():
    raw = "a`b **c** $1$ :red[x] <i>_y_</i> [l](javascript:alert(1)) # h | t ~s~ \\ " + string.punctuation
    out = md_literal(raw)
    assert re.sub(r"\\(.)", r"\1", out) == raw  # un-escaping gives the name back
    # reading left to right, every punctuation character is either an escaping backslash or escaped by one
    i = 0
    while i < len(out):
        if out[i] in string.punctuation:
            assert out[i] == "\\" and out[i + 1] in string.punctuation, (out, i)
            i += 2
        else:
            i += 1
    for ch in string.punctuation:
        assert md_literal(ch) == "\\" + ch


def test_plain_names_keep_their_letters_and_newlines_fold():
    assert md_literal("encoder.layer.0.output.dense.weight") == r"encoder\.layer\.0\.output\.dense\.weight"
    assert md_literal("two\nlines") == "two lines"
    assert md_literal("ünïcode name 7") == "ünïcode name 7"
