"""Words that agree with their numbers: what every message and label with a count says; text that
Markdown must show as typed."""

from __future__ import annotations

import string


def count(n: float, noun: str, plural: str | None = None) -> str:
    """`n` and its noun, agreeing: count(1, "run") is "1 run", count(3, "run") "3 runs",
    count(0, "run") "0 runs"; `plural` for nouns that do not take an "s" (count(2, "batch loss",
    "batch losses")). A float is shown as briefly as it reads (2.0 CPUs as "2 CPUs")."""
    shown = f"{n:g}" if isinstance(n, float) else str(n)
    return f"{shown} {noun if n == 1 else plural or noun + 's'}"


def kept_epochs(n: int) -> str:
    """What an ended run still has, as a sentence: kept_epochs(1) is "1 finished epoch and its
    checkpoint are kept", kept_epochs(0) "No epoch had finished: there is no checkpoint to keep"."""
    if n == 0:
        return "No epoch had finished: there is no checkpoint to keep"
    return f"{count(n, 'finished epoch')} and {'its checkpoint' if n == 1 else 'their checkpoints'} are kept"


_MARKUP = frozenset(string.punctuation)  # all ASCII punctuation: CommonMark lets any be escaped
_JOINER = "\u2060"  # WORD JOINER: invisible, and no part of an address


def plain_markdown(text: str) -> str:
    """`text` shown as typed inside Streamlit Markdown (st.markdown, st.caption, st.success, a
    progress bar's text), so that a display name such as `![](https://tracker/x.png)` or
    `[click](http://evil)` stays text, never an image or a link. Every ASCII punctuation mark is
    backslash-escaped (no image, link, emphasis, heading or directive). GFM's bare-address links
    ("https://...", "www....", "a@b.example") are found after parsing, in the text the escapes
    leave, so an invisible word joiner sits before each "." and after each ":" and "@": no such
    address stays whole. Line breaks and other control characters become spaces."""
    out = []
    for ch in str(text):
        if ch < " " or ch == "\x7f":
            out.append(" ")
        elif ch == ".":
            out.append(_JOINER + "\\.")
        elif ch in ":@":
            out.append("\\" + ch + _JOINER)
        else:
            out.append("\\" + ch if ch in _MARKUP else ch)
    return "".join(out)
