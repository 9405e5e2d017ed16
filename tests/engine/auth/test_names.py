"""Account names made safe to show."""

from __future__ import annotations

import pytest

from engine.auth.names import MAX_NAME, clean_name


@pytest.mark.parametrize(("raw", "clean"), [
    ("marta", "marta"),
    ("Zoë 🙂", "Zoë 🙂"),
    ("👨\u200d👩\u200d👧 family", "👨\u200d👩\u200d👧 family"),  # joiners stay
    ("\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
     "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"),  # a flag
    ("مرتا", "مرتا"),
    ("\x1b[1;31mred\x1b[0m", "red"),
    ("\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("\x1b]0;new title\x07name", "name"),
    ("a\x1bcb\x1b(Bc", "abc"),
    ("two\nlines\r\n", "two lines"),
    ("a\u2028b\u2029c\x85d", "a b c d"),
    ("\u202eevil\u202c \u2067x\u2069 \u200fy\u200e \ufeffz\u200b", "evil x y z"),
    ("  spaced \t out  ", "spaced out"),
    ("\x00\x07\x7f", ""),
])
def test_controls_go_and_printable_text_stays(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean


def test_a_long_name_is_cut() -> None:
    cut = clean_name("n" * 1000)
    assert len(cut) == MAX_NAME and cut.endswith("…")
