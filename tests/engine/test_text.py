"""Text helpers services share."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.text import html_to_text, iso_time, redact_url


def test_html_to_text_keeps_what_a_reader_sees() -> None:
    html = "<h1>Title</h1><script>var x = 1;</script><p>One &amp; two</p><style>p{}</style>"
    assert html_to_text(html).split() == ["Title", "One", "&", "two"]
    assert html_to_text("<p>a</p><p>b</p>", " ").split() == ["a", "b"]


def test_redact_url_hides_the_query_that_may_hold_a_token() -> None:
    assert redact_url("https://api.example.org/v1/x?token=s3cret") == \
        "https://api.example.org/v1/x?…"
    assert redact_url("https://example.org/feed.xml") == "https://example.org/feed.xml"


def test_iso_time_reads_what_apis_write_as_utc() -> None:
    utc = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    assert iso_time("2025-03-14T09:26:53Z") == utc
    assert iso_time("2025-03-14T09:26:53.000+00:00") == utc
    assert iso_time("2025-03-14T05:26:53-04:00") == utc
    assert iso_time("2025-03-14T05:26:53-04:00").tzinfo is UTC  # type: ignore[union-attr]
    assert iso_time("2025-03-14T09:26:53") == utc  # no offset: UTC
    assert iso_time("yesterday") is None
    assert iso_time(None) is None


def test_redact_url_hides_a_user_and_password_too() -> None:
    assert redact_url("https://ana:s3cret@feeds.example.org/x.xml?k=1") == \
        "https://…@feeds.example.org/x.xml?…"
