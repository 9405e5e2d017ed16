"""Account names as providers send them, made safe to show in a terminal or a window."""

from __future__ import annotations

import re
import unicodedata

#: Longer names are cut (with an ellipsis): a name is a label, not a document.
MAX_NAME = 200

#: Characters that end or break a line; each becomes one space.
_BREAKS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")
#: Format characters that printable text needs: joiners inside emoji sequences and
#: words (U+200C, U+200D), and the tag characters of subdivision flags.
_KEEP_FORMAT = frozenset({"\u200c", "\u200d", *map(chr, range(0xE0020, 0xE0080))})
#: Terminal escape sequences, whole: CSI (colours, cursor moves), OSC (titles, links)
#: and the short ones (``ESC c``, ``ESC ( B``); their leftovers would be noise once ESC
#: is gone.
_ESCAPES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
                      r"|(?:\x1b\]|\x9d).*?(?:\x07|\x1b\\|\x9c|$)"
                      r"|\x1b[ -/]*[0-~]", re.DOTALL)


def clean_name(raw: object) -> str:
    """``raw`` as one line of printable text: controls (ESC and the rest of C0 and C1,
    so no terminal escape sequence survives) and invisible format characters (bidi
    overrides and isolates, zero-width spaces) are dropped, line breaks and tabs become
    spaces; letters, marks, symbols and emoji stay as they are ("Zoë 🙂")."""
    kept: list[str] = []
    for char in _ESCAPES.sub("", str(raw)):
        if char in _BREAKS:
            kept.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cs") or (
                unicodedata.category(char) == "Cf" and char not in _KEEP_FORMAT):
            continue
        else:
            kept.append(char)
    name = " ".join("".join(kept).split())
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 1].rstrip() + "…"
