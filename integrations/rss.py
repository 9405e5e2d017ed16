"""RSS / Atom: start an area when a web feed publishes a new item."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from calendar import timegm
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from engine import (
    AuthError,
    Field,
    Item,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    RateLimited,
    Service,
    TransientError,
    html_to_text,
    redact_url,
)

if TYPE_CHECKING:
    from engine import HttpResponse

service = Service(
    "rss",
    "RSS / Atom",
    "New items in web feeds: blogs, news sites, releases, podcasts.",
    icon="rss.svg",
)

SUMMARY_LENGTH = 2000
_FEED_TYPES = ("application/rss+xml", "application/atom+xml")


@service.poll_trigger(
    "new_item",
    "New feed item",
    "Fires for each item that appears in an RSS or Atom feed.",
    params=[
        Param(
            "url",
            ParamType.URL,
            "Feed address",
            help="The address of the feed itself (often ends in /feed, .rss or .xml), "
            "not of the web page that links to it.",
            example="https://blog.python.org/feeds/posts/default",
        ),
        Param(
            "contains",
            ParamType.TEXT,
            "Only items containing",
            help="Fire only for items whose title or summary contains this text "
            "(any letter case). Empty: every item.",
            required=False,
            example="release",
        ),
    ],
    fields=[
        Field("title", "Title", "Python 3.13.0 is now available"),
        Field("link", "Link", "https://blog.python.org/2024/10/python-3130-final-released.html"),
        Field(
            "summary",
            "Summary (plain text, first 2,000 characters)",
            "This is the stable release of Python 3.13.0.",
        ),
        Field("author", "Author", "Thomas Wouters"),
        Field(
            "published",
            "Published (ISO 8601, empty if the feed does not say)",
            "2024-10-07T18:52:00+00:00",
        ),
        Field("id", "Item id (guid)", "tag:blogger.com,1999:blog-3941553907430899163.post-42"),
        Field("feed_title", "Feed title", "Python Insider"),
    ],
    default_interval=900.0,
    min_interval=60.0,
)
async def new_item(ctx: PollContext) -> PollResult:
    """Every entry the feed lists now; the engine fires for the unseen ones."""
    url = str(ctx.params["url"])
    resp = await ctx.http.get_conditional(url, ctx.state, check=False)
    if resp.status >= 400:
        raise _refused(resp)
    if resp.status == 304:
        return PollResult(not_modified=True)
    parsed = await asyncio.to_thread(_parse, resp)
    if not parsed.entries and (parsed.bozo or not parsed.version):
        raise PermanentError(_not_a_feed(url, resp, parsed))
    feed_title = _plain(parsed.feed.get("title_detail"), parsed.feed.get("title", ""))
    # Atom entries without their own author inherit the feed's.
    feed_author = str(parsed.feed.get("author", ""))
    wanted = str(ctx.params.get("contains") or "").casefold()
    items = []
    for entry in parsed.entries:
        data = _entry_data(entry, feed_title, feed_author, resp.url)
        if wanted and wanted not in f"{data['title']}\n{data['summary']}".casefold():
            continue
        key = _entry_key(entry, data)
        before = _key_before(entry, data, resp.url)
        items.append(Item(key=key, data=data, at=_time(entry),
                          aliases=(before,) if before != key else ()))
    return PollResult(items=items)


def _parse(resp: HttpResponse) -> Any:
    import feedparser  # here, not at the top: listing the catalog need not load it

    # A stream, never bytes: feedparser treats a bytes value that names a file as a path.
    # No content-location: feedparser would resolve ids (Reddit's ``t3_1abc``) against
    # it, and an id that changes when the feed moves fires every item again. Links are
    # made absolute here instead (_absolute).
    headers = {}
    ctype = resp.header("Content-Type")
    if ctype:
        headers["content-type"] = ctype
    body = _CHARREF.sub(_valid_charref, resp.body)
    try:
        return feedparser.parse(io.BytesIO(body), response_headers=headers)
    except Exception as exc:  # feedparser's lenient parser trips over some broken feeds
        raise PermanentError(
            f"the feed at {redact_url(resp.url)} is too broken to read ({type(exc).__name__}: "
            f"{exc}); check it with a feed validator, or ask its publisher"
        ) from None


#: A numeric character reference, e.g. ``&#233;`` or ``&#xE9;``.
_CHARREF = re.compile(rb"&#(x[0-9a-fA-F]{1,8}|[0-9]{1,10});")


def _valid_charref(match: re.Match[bytes]) -> bytes:
    """One that names no character (a surrogate, NUL, past U+10FFFF) as U+FFFD: for
    those feedparser's lenient parser raised and the whole feed was lost."""
    ref = match[1]
    code = int(ref[1:], 16) if ref[:1] == b"x" else int(ref)
    if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return b"&#xFFFD;"
    return match[0]


def _entry_data(entry: Any, feed_title: str, feed_author: str, url: str) -> dict[str, str]:
    summary = _plain(entry.get("summary_detail"), entry.get("summary", ""))
    return {
        "title": _plain(entry.get("title_detail"), entry.get("title", "")),
        "link": _absolute(url, str(entry.get("link", ""))),
        "summary": summary[:SUMMARY_LENGTH],
        "author": str(entry.get("author", "") or feed_author),
        "published": _iso(entry.get("published_parsed") or entry.get("updated_parsed")),
        "id": str(entry.get("id", "")),
        "feed_title": feed_title,
    }


def _entry_key(entry: Any, data: dict[str, str]) -> str:
    """The guid/id, else the link, as the feed writes them (a relative one stays so: the
    feed's address may change, the item does not), else a hash of title and date."""
    return data["id"] or str(entry.get("link", "")) or _hash_key(entry, data)


def _key_before(entry: Any, data: dict[str, str], url: str) -> str:
    """The key earlier versions gave the entry (its id or link resolved against the
    feed's address): items they remembered under it are not new after an upgrade."""
    return _absolute(url, data["id"]) or data["link"] or _hash_key(entry, data)


def _hash_key(entry: Any, data: dict[str, str]) -> str:
    stamp = str(entry.get("published", "") or entry.get("updated", ""))
    return "sha256:" + hashlib.sha256(f"{data['title']}\n{stamp}".encode()).hexdigest()


def _absolute(base: str, uri: str) -> str:
    """``uri`` resolved against the feed's address, as feedparser would have (``""``
    for none, or one it cannot resolve)."""
    if not uri:
        return ""
    try:
        return urljoin(base, uri)
    except ValueError:
        return ""


def _plain(detail: Any, value: Any) -> str:
    """Text of a feed field; HTML content is stripped of its tags."""
    text = str(value or "")
    kind = str((detail or {}).get("type", ""))
    if "html" in kind:
        text = _strip_tags(text)
    return " ".join(text.split())


def _time(entry: Any) -> datetime | None:
    """The entry's own time (published, else updated), for firing oldest first."""
    return _utc(entry.get("published_parsed") or entry.get("updated_parsed"))


def _utc(parsed: Any) -> datetime | None:
    """feedparser's UTC ``struct_time`` as a datetime (None: none, or out of range)."""
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(timegm(parsed), UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _iso(parsed: Any) -> str:
    """An ISO 8601 UTC time from feedparser's UTC ``struct_time``, or ``""``."""
    when = _utc(parsed)
    return when.isoformat() if when is not None else ""


def _refused(resp: HttpResponse) -> Exception:
    """The error for a feed address that answered ``resp`` (4xx/5xx), said as a reader
    of feeds would: never the page the server sent (often a whole HTML page)."""
    from http import HTTPStatus

    status = resp.status
    try:
        said = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        said = str(status)
    answered = f"The feed address {redact_url(resp.url)} answered {said}"
    if status in (404, 410):
        return PermanentError(f"{answered}: there is no feed there. Check the address "
                              "(open it in a browser).")
    if status == 429:
        return RateLimited(f"{answered}: it is asked too often. Hookline checks again "
                           "later; a longer Check every helps.", resp.retry_after())
    if status in (401, 403):
        return AuthError(f"{answered}: it does not let Hookline read the feed. Open the "
                         "address in a browser: a feed that needs a sign-in cannot be "
                         "followed here.")
    if status >= 500 or status == 408:
        return TransientError(f"{answered}: the site has a problem of its own. Hookline "
                              "tries again later.")
    return PermanentError(f"{answered}: it gave no feed. Check the address (open it in a "
                          "browser).")


def _not_a_feed(url: str, resp: HttpResponse, parsed: Any) -> str:
    where = redact_url(url)
    ctype = (resp.header("Content-Type") or "").lower()
    head = resp.body[:512].lstrip().lower()
    if "html" in ctype or head.startswith((b"<!doctype html", b"<html")):
        advice = "use the feed's address"
        links = [
            _absolute(resp.url, link["href"])
            for link in parsed.feed.get("links", [])
            if link.get("rel") == "alternate"
            and link.get("type") in _FEED_TYPES
            and link.get("href")
        ]
        if links:
            advice += f", e.g. {links[0]} (linked from that page)"
        return f"{where} is not an RSS or Atom feed (it looks like HTML); {advice}"
    reason = str(parsed.get("bozo_exception") or "no feed elements found")
    return f"{where} is not an RSS or Atom feed ({reason}); check the address"


def _strip_tags(html: str) -> str:
    return html_to_text(html, " ")


