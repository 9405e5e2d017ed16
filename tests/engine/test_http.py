"""An HTTP refusal as the user reads it: the far side's short text, never its HTML page."""

from __future__ import annotations

import pytest

from engine.errors import PermanentError, TransientError
from engine.http import HttpResponse

PAGE = (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title><style>body{}</style>"
        b"</head><body><h1>Not Found</h1><script>track()</script></body></html>")


def refusal(status: int, body: bytes, content_type: str) -> str:
    answer = HttpResponse(status, {"Content-Type": content_type}, body,
                          "https://example.org/feed?token=s3cret")
    with pytest.raises((PermanentError, TransientError)) as caught:
        answer.raise_for_status()
    return str(caught.value)


def test_an_html_page_is_left_out_of_the_message() -> None:
    assert refusal(404, PAGE, "text/html; charset=utf-8") == (
        "https://example.org/feed?… answered 404")
    assert refusal(502, PAGE, "application/octet-stream") == (  # a page by its look
        "https://example.org/feed?… answered 502")


def test_short_text_is_kept_on_one_line_and_long_text_is_cut() -> None:
    assert refusal(400, b"bad  request:\n  missing 'q'\n", "text/plain") == (
        "https://example.org/feed?… answered 400: bad request: missing 'q'")
    long = refusal(400, b'{"error": "' + b"x" * 500 + b'"}', "application/json")
    assert long.endswith("…") and len(long.split(": ", 1)[1]) == 160
