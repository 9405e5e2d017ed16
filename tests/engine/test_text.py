"""Text helpers services share."""

from __future__ import annotations

from engine.text import html_to_text, redact_url


def test_html_to_text_keeps_what_a_reader_sees() -> None:
    html = "<h1>Title</h1><script>var x = 1;</script><p>One &amp; two</p><style>p{}</style>"
    assert html_to_text(html).split() == ["Title", "One", "&", "two"]
    assert html_to_text("<p>a</p><p>b</p>", " ").split() == ["a", "b"]


def test_redact_url_hides_the_query_that_may_hold_a_token() -> None:
    assert redact_url("https://api.example.org/v1/x?token=s3cret") == \
        "https://api.example.org/v1/x?…"
    assert redact_url("https://example.org/feed.xml") == "https://example.org/feed.xml"
