"""Small text helpers services share: readable text from HTML, URLs safe to show, times
as providers write them."""

from __future__ import annotations

import re
from contextlib import suppress
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

_HIDDEN = frozenset({"script", "style", "template"})
_BLOCKS = frozenset({
    "p", "div", "br", "li", "tr", "td", "th", "blockquote", "pre", "hr", "img",
    "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer", "title",
})


class _Text(HTMLParser):
    def __init__(self, separator: str) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._separator = separator
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BLOCKS:
            self.parts.append(self._separator)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append(self._separator)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_to_text(markup: str, separator: str = "\n") -> str:
    """The text a browser would show, roughly: no tags, scripts or styles; block
    elements become ``separator`` so words do not run together."""
    parser = _Text(separator)
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def redact_url(url: str) -> str:
    """The URL without its query string or user and password, which may carry a token."""
    parts = urlsplit(url)
    _user, at, host = parts.netloc.rpartition("@")
    netloc = f"…@{host}" if at else host
    return f"{parts.scheme}://{netloc}{parts.path}" + ("?…" if parts.query else "")


def scrub_urls(text: str) -> str:
    """``text`` with every URL in it redacted (:func:`redact_url`): an error that is
    kept and shown may quote a URL that carries a token."""
    return _URL.sub(lambda m: _redacted(m[0]), text)


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)


def _redacted(url: str) -> str:
    try:
        return redact_url(url)
    except ValueError:  # not a URL after all (a stray bracket): none of it is kept
        return f"{url.partition('://')[0]}://…"


def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 / RFC 3339 time as APIs write them (``2025-03-14T09:26:53Z``,
    ``…53.123+00:00``, ``…-04:00``) as an aware UTC datetime, e.g. for ``Item.at``;
    one without an offset is taken as UTC. None when it is not such a time."""
    with suppress(ValueError, TypeError):
        when = datetime.fromisoformat(str(value))
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return None
