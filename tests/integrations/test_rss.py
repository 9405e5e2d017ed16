"""RSS / Atom service: feed entries as items, conditional fetches, and pages that are no feed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from engine import (
    HttpClient,
    Item,
    PermanentError,
    PollContext,
    PollResult,
    RateLimited,
    TransientError,
    TriggerSpec,
)
from engine import bus as topics
from engine.app import Engine
from engine.areas import Area, AreaSpec
from engine.testing import poll_context
from integrations.rss import service
from tests.integrations.engines import start_engine

FIXTURES = Path(__file__).parent / "fixtures" / "rss"
RSS = (FIXTURES / "rss2.xml").read_bytes()
ATOM = (FIXTURES / "atom.xml").read_bytes()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FeedServer:
    """A local web server that counts requests and the 304s it answered."""

    server: TestServer | None = None
    handler: Handler | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    not_modified: int = 0

    def url(self, path: str = "/feed.xml") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        assert self.handler is not None
        return await self.handler(request)

    def serve(self, body: bytes, content_type: str, **headers: str) -> None:
        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, headers={"Content-Type": content_type, **headers})

        self.handler = handler


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    feeds = FeedServer()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", feeds.dispatch)
    feeds.server = TestServer(app, host="127.0.0.1")
    await feeds.server.start_server()
    yield feeds
    await feeds.server.close()


async def poll(http: HttpClient, state: dict[str, Any] | None = None, **params: Any) -> PollResult:
    spec = service.triggers["new_item"]
    assert spec.poll is not None
    return await spec.poll(poll_context(spec, params, http, state={} if state is None else state))


async def test_rss2_items(feeds: FeedServer, http: HttpClient) -> None:
    feeds.serve(RSS, "application/rss+xml; charset=UTF-8")

    result = await poll(http, url=feeds.url())

    assert [i.key for i in result.items] == [
        "https://allotment.example.org/?p=412",
        "https://allotment.example.org/?p=405",
        # no guid: the link is the key
        "https://allotment.example.org/2024/11/18/seed-swap-on-sunday/",
    ]
    first = result.items[0].data
    assert first == {
        "title": "Garlic in, finally",
        "link": "https://allotment.example.org/2024/12/02/garlic-in-finally/",
        "summary": "Two rows of Germidour went in on Saturday, 15 cm apart. "
        "The soil was heavy after the rain…",
        "author": "Marta Kowal",
        "published": "2024-12-02T07:30:00+00:00",
        "id": "https://allotment.example.org/?p=412",
        "feed_title": "Allotment Notes",
    }
    assert result.items[2].data["author"] == ""
    assert result.items[2].data["id"] == ""
    # each carries its own time, so the engine fires them oldest first
    assert [i.at.isoformat() if i.at else None for i in result.items] == [
        i.data["published"] or None for i in result.items]
    assert result.items[0].at is not None


async def test_atom_entries(feeds: FeedServer, http: HttpClient) -> None:
    feeds.serve(ATOM, "application/atom+xml")

    result = await poll(http, url=feeds.url("/releases.atom"))

    first, second = (i.data for i in result.items)
    assert result.items[0].key == "tag:sensors.example.org,2024:release/1.4.1"
    assert first["title"] == "Firmware 1.4.1: moisture fix"
    assert first["summary"] == (
        "Fixes the moisture channel reading 0% after 1.4. Calibrates on boot Smaller image"
    )
    assert first["feed_title"] == "Sensor firmware releases"
    assert first["author"] == "Marta Kowal"
    # no <published>: <updated> it is, in UTC; no author: the feed's
    assert second["published"] == "2024-11-12T15:45:00+00:00"
    assert second["author"] == "Garden Sensors maintainers"


async def test_etag_turns_the_second_fetch_into_a_304(feeds: FeedServer, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-None-Match") == 'W/"feed-7"':
            feeds.not_modified += 1
            return web.Response(status=304)
        return web.Response(
            body=RSS, content_type="application/rss+xml", headers={"ETag": 'W/"feed-7"'}
        )

    feeds.handler = handler
    state: dict[str, Any] = {}

    first = await poll(http, state, url=feeds.url())
    second = await poll(http, state, url=feeds.url())

    assert len(first.items) == 3
    assert second.not_modified
    assert second.items == []
    assert feeds.not_modified == 1
    assert "If-None-Match" not in feeds.requests[0]


async def test_last_modified_turns_the_second_fetch_into_a_304(
    feeds: FeedServer, http: HttpClient
) -> None:
    stamp = "Mon, 02 Dec 2024 07:30:00 GMT"

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("If-Modified-Since") == stamp:
            feeds.not_modified += 1
            return web.Response(status=304)
        return web.Response(
            body=ATOM, content_type="application/atom+xml", headers={"Last-Modified": stamp}
        )

    feeds.handler = handler
    state: dict[str, Any] = {}

    await poll(http, state, url=feeds.url())
    second = await poll(http, state, url=feeds.url())

    assert second.not_modified
    assert feeds.not_modified == 1


async def test_contains_filters_on_title_and_summary_in_any_case(
    feeds: FeedServer, http: HttpClient
) -> None:
    feeds.serve(RSS, "application/rss+xml")

    by_title = await poll(http, url=feeds.url(), contains="GARLIC")
    by_summary = await poll(http, url=feeds.url(), contains="netting")
    nothing = await poll(http, url=feeds.url(), contains="tomatoes")

    assert [i.data["title"] for i in by_title.items] == ["Garlic in, finally"]
    assert [i.data["title"] for i in by_summary.items] == ["The leek moth is back"]
    assert nothing.items == []


async def test_an_html_page_is_not_a_feed_and_the_error_points_to_the_feed(
    feeds: FeedServer, http: HttpClient
) -> None:
    page = b"""<!DOCTYPE html>
<html><head><title>Allotment Notes</title>
<link rel="alternate" type="application/rss+xml" title="Feed" href="/feed.xml">
</head><body><p>Welcome to plot 14.<br></body></html>"""
    feeds.serve(page, "text/html; charset=utf-8")

    with pytest.raises(PermanentError) as caught:
        await poll(http, url=feeds.url("/blog?session=abc"))

    message = str(caught.value)
    assert "/blog?… is not an RSS or Atom feed (it looks like HTML); use the feed's address" in (
        message
    )
    assert f"e.g. {feeds.url('/feed.xml')} (linked from that page)" in message
    assert "session=abc" not in message


async def test_a_body_that_is_no_feed_at_all(feeds: FeedServer, http: HttpClient) -> None:
    feeds.serve(b'{"items": []}', "application/json")
    with pytest.raises(PermanentError, match=r"is not an RSS or Atom feed .*check the address"):
        await poll(http, url=feeds.url())


async def test_a_character_reference_to_no_character_costs_one_character_not_the_feed(
    feeds: FeedServer, http: HttpClient
) -> None:
    # &#xD800; (half of a UTF-16 pair, as some CMSs write emoji) made feedparser's
    # lenient parser raise, and the whole feed failed at every poll.
    feeds.serve(
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
        b"<item><title>Party &#xD83C;&#xDF89; tonight</title><guid>p1</guid></item>"
        b"<item><title>Caf&#233; &#1114112;</title><guid>p2</guid></item>"
        b"</channel></rss>",
        "application/rss+xml",
    )
    result = await poll(http, url=feeds.url())
    assert [i.data["title"] for i in result.items] == [
        "Party \ufffd\ufffd tonight", "Caf\u00e9 \ufffd"]


async def test_a_feed_too_broken_for_the_parser_is_a_clear_error(
    feeds: FeedServer, http: HttpClient
) -> None:
    feeds.serve(b"<item<category</item>></category>", "application/rss+xml")
    with pytest.raises(PermanentError, match=r"^the feed at .* is too broken to read "
                                             r"\(KeyError: 'tags'\); check it with a feed"):
        await poll(http, url=feeds.url())


async def test_an_empty_feed_is_fine(feeds: FeedServer, http: HttpClient) -> None:
    feeds.serve(
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title>'
        b"<link>https://example.org/</link><description>-</description></channel></rss>",
        "application/rss+xml",
    )
    assert (await poll(http, url=feeds.url())).items == []


async def test_entries_without_id_or_link_get_a_stable_key(
    feeds: FeedServer, http: HttpClient
) -> None:
    feeds.serve(
        b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Bare</title>
<item><title>One</title><pubDate>Mon, 02 Dec 2024 07:30:00 +0000</pubDate></item>
<item><title>Two</title><pubDate>Mon, 02 Dec 2024 07:30:00 +0000</pubDate></item>
</channel></rss>""",
        "application/rss+xml",
    )

    first = await poll(http, url=feeds.url())
    again = await poll(http, url=feeds.url())

    keys = [i.key for i in first.items]
    assert keys == [i.key for i in again.items]
    assert len(set(keys)) == 2
    assert all(k is not None and k.startswith("sha256:") for k in keys)


async def test_long_summaries_are_cut(feeds: FeedServer, http: HttpClient) -> None:
    words = "<p>" + "compost " * 600 + "</p>"
    feeds.serve(
        f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Long</title>
<item><guid>x</guid><title>Long</title><description><![CDATA[{words}]]></description></item>
</channel></rss>""".encode(),
        "application/rss+xml",
    )

    [item] = (await poll(http, url=feeds.url())).items

    assert len(item.data["summary"]) == 2000
    assert "<p>" not in item.data["summary"]


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (404, {}, PermanentError),
        (503, {}, TransientError),
        (429, {"Retry-After": "600"}, RateLimited),
    ],
)
async def test_error_statuses_map_to_engine_errors(
    feeds: FeedServer,
    http: HttpClient,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
) -> None:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers=headers)

    feeds.handler = handler
    with pytest.raises(error) as caught:
        await poll(http, url=feeds.url())
    assert type(caught.value) is error
    assert f"answered {status}" in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 600


async def test_a_missing_feed_is_said_in_words_never_with_the_page_the_server_sent(
        feeds: FeedServer, http: HttpClient) -> None:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, content_type="text/html",
                            text="<!DOCTYPE html><html><head><title>Not Found</title></head>"
                                 "<body><h1>Oops</h1><script>track()</script></body></html>")

    feeds.handler = handler
    with pytest.raises(PermanentError) as caught:
        await poll(http, url=feeds.url())
    assert str(caught.value) == (f"The feed address {feeds.url()} answered 404 Not Found: "
                                 "there is no feed there. Check the address (open it in a "
                                 "browser).")


def test_feeds_are_polled_gently() -> None:
    spec = service.triggers["new_item"]
    assert spec.default_interval == 900
    assert spec.min_interval == 60


# --- a feed that moves, through a real engine ----------------------------------------------

SUBREDDIT = (FIXTURES / "subreddit.atom").read_bytes()  # relative ids, as Reddit writes them
RELATIVE_LINKS = (FIXTURES / "relative_links.xml").read_bytes()  # no ids, relative links


def without_newest(feed: bytes, tag: bytes) -> bytes:
    """The feed as it was before its first (newest) entry appeared."""
    start = feed.index(b"<" + tag + b">")
    end = feed.index(b"</" + tag + b">", start) + len(tag) + 3
    return feed[:start] + feed[end:]


def moving(feeds: FeedServer, before: bytes, after: bytes, content_type: str) -> list[bool]:
    """Serve ``before`` at /a/…; once the returned flag is set, /a/… answers 301 to /b/…,
    where ``after`` is served."""
    moved = [False]

    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path
        if moved[0] and path.startswith("/a/"):
            raise web.HTTPMovedPermanently("/b/" + path.removeprefix("/a/"))
        body = after if path.startswith("/b/") else before
        return web.Response(body=body, headers={"Content-Type": content_type})

    feeds.handler = handler
    return moved


@dataclass
class Watched:
    """An area that shows a notification for each new item of a feed."""

    engine: Engine
    area: Area
    shown: list[dict[str, Any]] = field(default_factory=list)

    async def check(self, trigger: TriggerSpec | None = None) -> int:
        """One check of the feed, as the scheduler would make it; how many items fired."""
        spec = trigger or self.engine.registry.trigger("rss", "new_item")
        return await self.engine.poller.poll(self.area, spec, self.area.spec.trigger.params, 900)

    async def notifications(self) -> list[dict[str, Any]]:
        await self.engine.wait_idle()
        return [{"title": n["title"], "body": n["body"]} for n in self.shown]


@pytest.fixture
async def engine(data_dir: Path) -> AsyncIterator[Engine]:
    engine = await start_engine(data_dir)
    yield engine
    await engine.aclose()


async def watch(engine: Engine, url: str) -> Watched:
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "New posts",
        "trigger": {"service": "rss", "trigger": "new_item", "params": {"url": url}},
        "reactions": [{"service": "notify", "reaction": "notify", "params": {
            "title": "{{ trigger.title }}", "message": "{{ trigger.id }} {{ trigger.link }}"}}],
    }))
    engine.scheduler.remove(area.id)  # the test checks by hand: the scheduler would race
    watched = Watched(engine, area)
    engine.bus.subscribe(topics.NOTIFICATION, lambda m: watched.shown.append(m.data))
    return watched


async def test_a_feed_with_relative_ids_that_moves_fires_only_its_new_entry(
    feeds: FeedServer, engine: Engine
) -> None:
    """Atom ids like Reddit's ``t3_1h4zq7c`` were resolved against the feed's address: when
    /a/ began to answer 301 to /b/, every old post fired again, its id spelled
    ``http://…/b/t3_…``. The id is the feed's own text, so only the new post fires."""
    moved = moving(feeds, without_newest(SUBREDDIT, b"entry"), SUBREDDIT,
                   "application/atom+xml; charset=UTF-8")
    watched = await watch(engine, feeds.url("/a/.rss"))

    assert await watched.check() == 0  # primes
    moved[0] = True
    assert await watched.check() == 1
    assert await watched.check() == 0

    assert await watched.notifications() == [{
        "title": "Frost tonight: cover the leeks?",
        "body": "t3_1h4zq7c https://www.reddit.com/r/gardening/comments/1h4zq7c/"
                "frost_tonight_cover_the_leeks/",
    }]


async def test_a_feed_with_relative_links_and_no_ids_that_moves_fires_only_its_new_item(
    feeds: FeedServer, engine: Engine
) -> None:
    """Items without an id are known by their link; a relative one is known as the feed
    writes it, so a move keeps it, while the link shown is the full address at /b/."""
    moved = moving(feeds, without_newest(RELATIVE_LINKS, b"item"), RELATIVE_LINKS,
                   "application/rss+xml")
    watched = await watch(engine, feeds.url("/a/feed.xml"))

    assert await watched.check() == 0
    moved[0] = True
    assert await watched.check() == 1

    assert await watched.notifications() == [{
        "title": "Leek moth netting up",
        "body": " " + feeds.url("/b/posts/leek-moth-netting.html"),
    }]


@pytest.mark.parametrize(
    ("feed", "tag", "content_type", "written"),
    [
        (SUBREDDIT, b"entry", "application/atom+xml",
         ["t3_1h4tk2m", "t3_1h3m9xa"]),
        (RELATIVE_LINKS, b"item", "application/rss+xml",
         ["posts/garlic-in-finally.html", "posts/seed-swap-on-sunday.html"]),
    ],
    ids=["relative ids", "relative links"],
)
async def test_items_remembered_before_the_upgrade_do_not_fire_again(
    feeds: FeedServer, engine: Engine, feed: bytes, tag: bytes, content_type: str,
    written: list[str],
) -> None:
    """Earlier versions remembered these items by their id or link resolved against the
    feed's address. The first check after the upgrade must not take them for new, nor may
    a later move of the feed."""
    moved = moving(feeds, without_newest(feed, tag), feed, content_type)
    watched = await watch(engine, feeds.url("/a/feed"))
    spec = engine.registry.trigger("rss", "new_item")

    async def as_before_the_upgrade(_ctx: PollContext) -> PollResult:
        return PollResult([Item(feeds.url("/a/" + key), {}) for key in written])

    assert await watched.check(replace(spec, poll=as_before_the_upgrade)) == 0  # primes
    assert await engine.store.seen_count(watched.area.id) == 2
    assert await watched.check() == 0  # the upgrade
    moved[0] = True
    assert await watched.check() == 1  # only the new one, wherever the feed now lives
    assert len(await watched.notifications()) == 1
