"""Notion against a local fake of its API version 2025-09-03 (databases hold data sources).

The fake follows https://developers.notion.com/docs/upgrade-guide-2025-09-03,
/reference/retrieve-a-database, /reference/query-a-data-source and /reference/post-page
(read 2026-12-06); tests/integrations/fixtures/notion/README.md names what each fixture is.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engine import (
    AuthError,
    Item,
    OAuthClient,
    PermanentError,
    PollContext,
    PollResult,
    RateLimited,
    TransientError,
)
from engine import bus as topics
from engine.app import Engine
from engine.areas import Area, AreaSpec
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.poller import oldest_first
from engine.registry import Registry
from engine.settings import Settings
from engine.testing import poll_context, reaction_context
from integrations import notion
from tests.integrations.provider import Reply, Seen, load_fixture, serve

VERSION = "2025-09-03"
TOKEN = "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"
DB = "3f1c2b5e-9a7d-4c0e-8b6a-1d2f4e5c7a90"  # one data source, "Garden tasks"
DS = "7a4e1c9b-2d3f-4a5b-8c6d-9e0f1a2b3c4d"
DB_URL = "https://www.notion.so/marta/3f1c2b5e9a7d4c0e8b6a1d2f4e5c7a90?v=1b2c3d4e5f6a4b7c8d9e0f1a2b3c4d5e"
DB2 = "5b8d0f2a-4c6e-4a1b-9d3f-7e5a2c4b6d8f"  # "Allotment": two data sources
TASKS = "a1c3e5f7-0b2d-4f6a-8c1e-3b5d7f9a0c2e"
HARVEST = "b2d4f6a8-1c3e-4a7b-9d2f-4c6e8a0b1d3f"
PAGE = "8d2e4f6a-1b3c-4d5e-9f0a-1b2c3d4e5f60"
OLDER = "59833787-2cf9-4fdf-8782-e53db20768a5"
PAGE_URL = "https://www.notion.so/Repot-the-basil-8d2e4f6a1b3c4d5e9f0a1b2c3d4e5f60"
NEWEST_FIRST = {"sorts": [{"timestamp": "created_time", "direction": "descending"}],
                "page_size": 100}


def fixture(name: str) -> Any:
    return load_fixture("notion", name)


def page(n: int, created: str, *, title: str = "", source: str = DS) -> dict[str, Any]:
    """A row shaped like the fixture's second one, with its own id, title and time."""
    row: dict[str, Any] = copy.deepcopy(fixture("data_source_query.json")["results"][1])
    row["id"] = f"{n:08x}-0000-4000-8000-{n:012x}"
    row["created_time"] = row["last_edited_time"] = created
    row["parent"] = {"type": "data_source_id", "data_source_id": source,
                     "database_id": DB2 if source in (TASKS, HARVEST) else DB}
    title = title or f"Row {n}"
    row["properties"]["Name"]["title"] = [{**row["properties"]["Name"]["title"][0],
                                           "text": {"content": title, "link": None},
                                           "plain_text": title}]
    row["url"] = f"https://www.notion.so/Row-{row['id'].replace('-', '')}"
    return row


@dataclass
class NotionFake:
    """Notion's API at 2025-09-03: a database lists its data sources, pages live in a data
    source, a query filters, sorts and pages its rows. An old-style call (a database's
    /query, a page under a database_id, another Notion-Version) gets the 400
    validation_error Notion gives such a call on a database with several data sources."""

    databases: dict[str, Any] = field(default_factory=lambda: {
        DB: fixture("database.json"), DB2: fixture("database_two_sources.json")})
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {
        DS: fixture("data_source_query.json")["results"],
        TASKS: [page(1, "2025-09-12T08:00:00.000Z", title="Net the brassicas", source=TASKS)],
        HARVEST: [page(2, "2025-09-12T09:00:00.000Z", title="Beans: 2 kg", source=HARVEST)],
    })
    seen: list[Seen] = field(default_factory=list)
    replies: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)

    def on(self, method: str, path: str, *replies: Reply) -> None:
        """Answer ``method path`` with these replies in turn (the last repeats)."""
        self.replies[(method, path)] = list(replies)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.seen.append(Seen(request.method, request.path, dict(request.query),
                              dict(request.headers), body))
        queue = self.replies.get((request.method, request.path))
        if queue:
            reply = queue.pop(0) if len(queue) > 1 else queue[0]
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        parts = request.path.strip("/").split("/")
        if request.headers.get("Notion-Version") != VERSION:
            return self.old_style(parts[2] if len(parts) > 2 else DB2)
        match (request.method, parts[1:]):
            case ("GET", ["databases", database]) if database in self.databases:
                return web.json_response(self.databases[database])
            case ("GET", ["databases", _]):
                return web.json_response(fixture("error_not_found.json"), status=404)
            case ("POST", ["databases", database, "query"]):
                return self.old_style(database)
            case ("POST", ["data_sources", source, "query"]) if source in self.rows:
                return self.query(source, body or {})
            case ("POST", ["pages"]):
                return self.create_page(body or {})
        return web.json_response(fixture("error_invalid_request_url.json"), status=400)

    def old_style(self, database: str) -> web.Response:
        error = fixture("error_multiple_data_sources.json")
        error["additional_data"]["database_id"] = database
        return web.json_response(error, status=400)

    def query(self, source: str, body: dict[str, Any]) -> web.Response:
        allowed = {"filter", "sorts", "start_cursor", "page_size", "in_trash", "result_type"}
        size = body.get("page_size", 100)
        if set(body) - allowed or not 1 <= size <= 100:
            return self.invalid(f"body failed validation: {sorted(set(body) - allowed)}")
        rows = list(self.rows[source])
        if "filter" in body:
            stamp = body["filter"]["timestamp"]
            since = body["filter"][stamp]["on_or_after"]
            rows = [r for r in rows if r[stamp] >= since]  # one format: text order is time
        for sort in reversed(body.get("sorts", [])):  # the first sort decides, then the next
            stamp = str(sort["timestamp"])
            rows.sort(key=lambda r: str(r[stamp]), reverse=sort["direction"] == "descending")
        start = 0
        if body.get("start_cursor"):
            ids = [r["id"] for r in rows]
            if body["start_cursor"] not in ids:
                return self.invalid("start_cursor provided is invalid")
            start = ids.index(body["start_cursor"])
        chunk = rows[start:start + size]
        more = start + size < len(rows)
        return web.json_response({
            "object": "list", "results": chunk,
            "next_cursor": rows[start + size]["id"] if more else None, "has_more": more,
            "type": "page_or_data_source", "page_or_data_source": {},
            "request_id": "f1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        })

    def create_page(self, body: dict[str, Any]) -> web.Response:
        parent = body.get("parent") or {}
        if "database_id" in parent:
            return self.old_style(parent["database_id"])
        source = parent.get("data_source_id")
        if parent.get("type") != "data_source_id" or source not in self.rows:
            return web.json_response(fixture("error_not_found.json"), status=404)
        created = fixture("page_created.json")
        created["parent"]["data_source_id"] = source
        return web.json_response(created)

    @staticmethod
    def invalid(message: str) -> web.Response:
        return web.json_response({**fixture("error_validation.json"), "message": message},
                                 status=400)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[NotionFake]:
    fake = NotionFake()
    async with serve(fake.handle) as base:
        monkeypatch.setattr(notion.service, "api_base_url", f"{base}/v1")
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(notion.service, TOKEN, http, name="Marta's Garden")


async def poll(
    trigger: str,
    params: dict[str, Any],
    http: HttpClient,
    account: AccountSession | None,
    state: dict[str, Any] | None = None,
) -> PollResult:
    spec = notion.service.triggers[trigger]
    ctx = poll_context(spec, params, http, state=state)
    ctx.account = account
    assert spec.poll is not None
    return await spec.poll(ctx)


async def react(
    reaction: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = notion.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return await spec.run(ctx)


def assert_api_headers(seen: Seen) -> None:
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Notion-Version"] == VERSION


def calls(api: NotionFake) -> list[tuple[str, str]]:
    for seen in api.seen:
        assert seen.headers["Notion-Version"] == VERSION
    return [(s.method, s.path) for s in api.seen]


# ---------------------------------------------------------------------- triggers


async def test_new_page_in_database_finds_the_data_source_and_queries_it_newest_first(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    result = await poll("new_page_in_database", {"database": DB_URL}, http, account)
    assert calls(api) == [("GET", f"/v1/databases/{DB}"),
                          ("POST", f"/v1/data_sources/{DS}/query")]
    assert_api_headers(api.seen[1])
    assert api.seen[1].body == NEWEST_FIRST
    assert [i.key for i in result.items] == [PAGE, OLDER]  # the trashed row is left out
    assert result.items[0].data == {
        "id": PAGE,
        "url": PAGE_URL,
        "title": "Repot the basil",
        "properties": {
            "Status": "In progress",
            "Tags": "herbs, indoor",
            "Due": "2025-03-20",
            "Done": "false",
            "Pots": "3",
            "Name": "Repot the basil",
        },
        "created_time": "2025-03-15T08:10:00.000Z",
        "last_edited_time": "2025-03-15T18:02:00.000Z",
        "database_id": DB,
        "data_source_id": DS,
    }
    assert result.items[1].data["properties"]["Pots"] == ""
    assert result.items[1].data["properties"]["Done"] == "true"


async def test_later_checks_ask_only_for_pages_since_the_newest_seen(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    state: dict[str, Any] = {}
    await poll("new_page_in_database", {"database": DB}, http, account, state)
    assert state == {"data_source": DS, "since": "2025-03-15T08:10:00.000Z"}
    api.rows[DS].append(page(3, "2025-03-16T07:00:00.000Z", title="Sow the leeks"))
    api.seen.clear()

    result = await poll("new_page_in_database", {"database": DB}, http, account, state)
    assert api.seen[1].body == {
        "filter": {"timestamp": "created_time",
                   "created_time": {"on_or_after": "2025-03-15T08:10:00.000Z"}},
        "sorts": [{"timestamp": "created_time", "direction": "ascending"}],
        "page_size": 100,
    }
    assert [i.data["title"] for i in result.items] == ["Repot the basil", "Sow the leeks"]
    assert state == {"data_source": DS, "since": "2025-03-16T07:00:00.000Z"}


async def test_an_empty_data_source_and_a_cursor_notion_no_longer_takes(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    rows, api.rows[DS] = api.rows[DS], []
    state: dict[str, Any] = {}
    assert (await poll("new_page_in_database", {"database": DB}, http, account, state)).items == []
    api.rows[DS] = rows  # then pages come: all of them are new
    result = await poll("new_page_in_database", {"database": DB}, http, account, state)
    assert [i.key for i in result.items] == [OLDER, PAGE]

    state["cursor"] = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
    dry = poll_context(notion.service.triggers["new_page_in_database"], {"database": DB}, http,
                       state=dict(state), dry_run=True)
    dry.account = account
    assert await notion.new_page_in_database(dry) and dry.state == state  # a Test saves nothing
    result = await poll("new_page_in_database", {"database": DB}, http, account, state)
    assert [i.key for i in result.items] == [PAGE]
    assert state == {"data_source": DS, "since": "2025-03-15T08:10:00.000Z"}


async def test_page_property_changed_keys_on_the_chosen_value_or_on_the_edit_time(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    params = {"database": DB.replace("-", ""), "property": "Status"}
    result = await poll("page_property_changed", params, http, account)
    assert api.seen[1].body["sorts"] == [
        {"timestamp": "last_edited_time", "direction": "descending"}
    ]
    assert [i.key for i in result.items] == [f"{PAGE}#Status=In progress",
                                             f"{OLDER}#Status=Done"]
    assert result.items[0].data["value"] == "In progress"

    edits = await poll("page_property_changed", {"database": DB}, http, account)
    assert edits.items[0].key == f"{PAGE}@2025-03-15T18:02:00.000Z"
    assert edits.items[0].data["value"] == ""

    with pytest.raises(PermanentError, match=r"no property 'State'.*it has: Done, Due, Name"):
        await poll("page_property_changed", {"database": DB, "property": "State"}, http, account)


async def test_new_and_edited_pages_fire_oldest_first_whatever_the_listing_order(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    created = await poll("new_page_in_database", {"database": DB}, http, account)
    assert [i.key for i in oldest_first(created.items)] == [OLDER, PAGE]
    params = {"database": DB, "property": "Status"}
    edited = await poll("page_property_changed", params, http, account)
    assert [i.data["id"] for i in oldest_first(edited.items)] == [OLDER, PAGE]


# ---------------------------------------------------------------------- several data sources


async def test_a_database_with_two_data_sources_asks_which_one_naming_both(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    for step in (poll("new_page_in_database", {"database": DB2}, http, account),
                 react("create_database_page", {"database": DB2, "title": "x"}, http, account)):
        with pytest.raises(PermanentError) as refused:
            await step
        assert str(refused.value) == (
            f"the database “Allotment” has 2 data sources: “Tasks” ({TASKS}), “Harvest log” "
            f"({HARVEST}). Set Data source (data_source) to the name or id of the one to use")
    assert calls(api) == [("GET", f"/v1/databases/{DB2}")] * 2


async def test_the_chosen_data_source_by_name_or_by_id(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    by_name = await poll("new_page_in_database", {"database": DB2, "data_source": "harvest LOG"},
                         http, account)
    assert [i.data["title"] for i in by_name.items] == ["Beans: 2 kg"]
    assert by_name.items[0].data["data_source_id"] == HARVEST
    by_id = await poll("new_page_in_database",
                       {"database": DB2, "data_source": TASKS.replace("-", "")}, http, account)
    assert [i.data["title"] for i in by_id.items] == ["Net the brassicas"]
    assert [p for _, p in calls(api)][1::2] == [f"/v1/data_sources/{HARVEST}/query",
                                                f"/v1/data_sources/{TASKS}/query"]
    with pytest.raises(PermanentError, match=r"has no data source “Seeds”: set Data source "
                                             r"\(data_source\) to one of “Tasks”"):
        await poll("new_page_in_database", {"database": DB2, "data_source": "Seeds"},
                   http, account)


async def test_old_style_calls_are_what_notion_refuses(api: NotionFake) -> None:
    """The fake is only useful if it refuses what the 2022-06-28 code sent."""
    old = {"Notion-Version": "2022-06-28", "Authorization": f"Bearer {TOKEN}"}
    new = {**old, "Notion-Version": VERSION}
    base = notion.service.api_base_url
    async with aiohttp.ClientSession() as client:  # a bare client: not the service's call
        for headers, path, body in (
            (old, f"/databases/{DB2}/query", {}),
            (new, f"/databases/{DB}/query", {}),
            (new, "/pages", {"parent": {"database_id": DB}, "properties": {}}),
        ):
            async with client.post(base + path, headers=headers, json=body) as refused:
                error = await refused.json()
            assert (refused.status, error["code"]) == (400, "validation_error")
            assert error["additional_data"]["minimum_api_version"] == VERSION


# ---------------------------------------------------------------------- reactions


async def test_create_database_page_puts_it_in_the_data_source(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    out = await react(
        "create_database_page",
        {
            "database": DB_URL,
            "title": "Sensor 3 went offline",
            "properties": '{"Status": {"status": {"name": "To do"}}}',
            "content": "Seen at 06:00.\n\nCheck the battery.",
        },
        http,
        account,
    )
    assert calls(api) == [("GET", f"/v1/databases/{DB}"), ("POST", "/v1/pages")]
    seen = api.seen[1]
    assert_api_headers(seen)
    assert seen.body == {
        "parent": {"type": "data_source_id", "data_source_id": DS},
        "properties": {
            "Status": {"status": {"name": "To do"}},
            "title": {"title": [{"type": "text", "text": {"content": "Sensor 3 went offline"}}]},
        },
        "children": [
            {
                "object": "block",
                "type": "paragraph",
                "paragraph": {"rich_text": [{"type": "text", "text": {"content": t}}]},
            }
            for t in ("Seen at 06:00.", "Check the battery.")
        ],
    }
    assert out == {
        "id": "251d2b5f-268c-4de2-afe9-c71ff92ca95c",
        "url": "https://www.notion.so/Sensor-3-went-offline-251d2b5f268c4de2afe9c71ff92ca95c",
    }
    assert notion.service.reactions["create_database_page"].retry is False

    await react("create_database_page",
                {"database": DB2, "data_source": "Harvest log", "title": "Beans: 1 kg"},
                http, account)
    assert api.seen[-1].body["parent"] == {"type": "data_source_id", "data_source_id": HARVEST}


async def test_create_database_page_refuses_bad_properties(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="not valid JSON"):
        await react(
            "create_database_page", {"database": DB, "title": "x", "properties": "{"}, http, account
        )
    with pytest.raises(PermanentError, match="must be a JSON object"):
        await react(
            "create_database_page",
            {"database": DB, "title": "x", "properties": "[]"},
            http,
            account,
        )
    assert api.seen == []
    api.on("POST", "/v1/pages", Reply(fixture("error_validation.json"), status=400))
    with pytest.raises(PermanentError, match="Status is expected to be status"):
        await react("create_database_page", {"database": DB, "title": "x"}, http, account)


async def test_append_text_splits_long_text_into_pieces_notion_accepts(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    api.on("PATCH", f"/v1/blocks/{PAGE}/children", Reply(fixture("blocks_appended.json")))
    long = "a" * 2500
    out = await react("append_text", {"page": PAGE_URL, "text": f"{long}\n\nok"}, http, account)
    [seen] = api.seen
    assert (seen.method, seen.path) == ("PATCH", f"/v1/blocks/{PAGE}/children")
    assert_api_headers(seen)
    first, second = seen.body["children"]
    assert first["paragraph"]["rich_text"] == [
        {"type": "text", "text": {"content": "a" * 2000}},
        {"type": "text", "text": {"content": "a" * 500}},
    ]
    assert second["paragraph"]["rich_text"] == [{"type": "text", "text": {"content": "ok"}}]
    assert out == {
        "block_ids": [
            "c02fc1d3-db8b-45c5-a222-27595b15aea7",
            "9b1d3e5f-7a2c-4b6d-8e0f-1a3c5e7b9d2f",
        ]
    }
    with pytest.raises(PermanentError, match="the text is empty"):
        await react("append_text", {"page": PAGE, "text": " \n "}, http, account)


async def test_the_account_name_is_the_workspace(api: NotionFake, http: HttpClient) -> None:
    api.on("GET", "/v1/users/me", Reply(fixture("user_me.json")))
    assert notion.service.api_key is not None and notion.service.api_key.userinfo is not None
    assert await notion.service.api_key.userinfo(http, TOKEN) == "Marta's Garden"
    assert_api_headers(api.seen[0])
    api.on("GET", "/v1/users/me", Reply(fixture("error_unauthorized.json"), status=401))
    with pytest.raises(AuthError, match="refused the integration secret: API token is invalid"):
        await notion.service.api_key.userinfo(http, TOKEN)


# ---------------------------------------------------------------------- errors


async def test_a_refused_token_asks_for_a_new_one(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", f"/v1/databases/{DB}", Reply(fixture("error_unauthorized.json"), status=401))
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll("new_page_in_database", {"database": DB}, http, account)
    assert len(api.seen) == 1


async def test_forbidden_not_shared_rate_limited_and_server_errors(
    api: NotionFake, http: HttpClient, account: AccountSession
) -> None:
    missing = "0e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b"
    with pytest.raises(PermanentError, match=r"not shared with the integration.*Connections"):
        await poll("new_page_in_database", {"database": missing}, http, account)

    path = f"/v1/data_sources/{DS}/query"
    api.on("POST", path, Reply(fixture("error_restricted.json"), status=403))
    with pytest.raises(AuthError, match=r"may not do this.*Insufficient permissions"):
        await poll("new_page_in_database", {"database": DB}, http, account)

    api.on(
        "POST",
        path,
        Reply(fixture("error_rate_limited.json"), status=429, headers={"Retry-After": "7"}),
    )
    with pytest.raises(RateLimited, match="rate limit") as caught:
        await poll("new_page_in_database", {"database": DB}, http, account)
    assert caught.value.retry_after == 7

    api.on("POST", path, Reply(fixture("error_server.json"), status=502))
    with pytest.raises(TransientError, match=r"Notion had a problem .* \(HTTP 502\)"):
        await poll("new_page_in_database", {"database": DB}, http, account)


async def test_bad_ids_and_a_missing_account(http: HttpClient, account: AccountSession) -> None:
    with pytest.raises(PermanentError, match="is not a Notion database: paste its address"):
        await poll("new_page_in_database", {"database": "Garden tasks"}, http, account)
    with pytest.raises(AuthError, match="choose the Notion account"):
        await react("append_text", {"page": PAGE, "text": "x"}, http, None)


def test_the_declaration() -> None:
    assert notion.service.api_base_url == "https://api.notion.com/v1"
    assert notion.service.oauth is not None and notion.service.api_key is not None
    assert set(notion.service.triggers) == {"new_page_in_database", "page_property_changed"}
    assert set(notion.service.reactions) == {"create_database_page", "append_text"}
    icon = Path(__file__).parents[2] / "resources" / "icons" / notion.service.icon
    assert icon.is_file()


def test_notion_can_be_connected_through_the_browser_with_basic_client_auth() -> None:
    from integrations.notion import service as notion

    assert notion.oauth is not None
    assert notion.oauth.client_auth == "basic"
    assert notion.oauth.redirect_uri(notion.oauth.fixed_port) == "http://127.0.0.1:17573/callback"
    # Notion's token endpoint documents no code_verifier (see the comment in the module).
    assert notion.oauth.pkce is False
    assert notion.api_key is not None  # the internal-integration secret still works


async def test_removing_the_account_revokes_its_token_at_notion(
    api: NotionFake, account: AccountSession
) -> None:
    client = OAuthClient("2a0d872b-594c-80ea-a4a5-0037c1c1e6d1", "secret_public_app")
    api.on("POST", "/v1/oauth/revoke",
           Reply({"request_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"}))
    revoke = notion.service.oauth.revoke  # type: ignore[union-attr]
    assert revoke is not None and await revoke(account, client) is True
    (seen,) = api.seen
    assert seen.body == {"token": TOKEN}
    assert seen.headers["Authorization"] == "Basic " + base64.b64encode(
        f"{client.client_id}:secret_public_app".encode()).decode()
    assert seen.headers["Notion-Version"] == VERSION


# ---------------------------------------------------------------------- through the engine


@dataclass
class Watched:
    """An area that shows a notification for each new page of the database."""

    engine: Engine
    area: Area
    account_id: str
    shown: list[str] = field(default_factory=list)

    async def check(self, trigger: str = "new_page_in_database",
                    before_the_upgrade: list[str] | None = None) -> int:
        """One check, as the scheduler makes it; how many pages fired. With
        ``before_the_upgrade``: the check the earlier version made, giving these keys."""
        spec = self.engine.registry.trigger("notion", trigger)
        assert spec.poll is not None
        poll_fn, accounts = spec.poll, self.engine.accounts

        async def as_account(ctx: PollContext) -> PollResult:
            ctx.account = await accounts.session(self.account_id)
            if before_the_upgrade is not None:
                return PollResult([Item(key, {}) for key in before_the_upgrade])
            return await poll_fn(ctx)

        return await self.engine.poller.poll(self.area, replace(spec, poll=as_account),
                                             self.area.spec.trigger.params, 300)

    async def fired(self) -> list[str]:
        await self.engine.wait_idle()
        return list(self.shown)


@pytest.fixture
async def engine(data_dir: Path, api: NotionFake) -> AsyncIterator[Engine]:
    engine = Engine(data_dir, settings=Settings.from_mapping({"retry_delay": 0.01}),
                    registry=Registry.load(plugins=False), listen=False)
    await engine.start()
    yield engine
    await engine.aclose()


async def watch(engine: Engine, api: NotionFake, params: dict[str, Any]) -> Watched:
    api.on("GET", "/v1/users/me", Reply(fixture("user_me.json")))
    account = await engine.accounts.add_token("notion", TOKEN)
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "New garden tasks",
        "trigger": {"service": "notion", "trigger": "new_page_in_database",
                    "account": account.name, "params": params},
        "reactions": [{"service": "notify", "reaction": "notify", "params": {
            "title": "{{ trigger.title }}", "message": "{{ trigger.id }}"}}],
    }))
    engine.scheduler.remove(area.id)  # the test checks by hand: the scheduler would race
    watched = Watched(engine, area, account.id)
    engine.bus.subscribe(topics.NOTIFICATION, lambda m: watched.shown.append(m.data["title"]))
    return watched


async def test_an_area_from_before_the_upgrade_fires_only_pages_it_has_not_seen(
    engine: Engine, api: NotionFake
) -> None:
    """Areas made with 2022-06-28 remembered pages by their ids and have only a database:
    the first check after the upgrade finds its data source and fires only the new page."""
    watched = await watch(engine, api, {"database": DB_URL})
    assert await watched.check(before_the_upgrade=[PAGE, OLDER]) == 0  # primes
    assert await engine.store.trigger_state(watched.area.id) is not None

    api.rows[DS].append(page(3, "2025-03-16T07:00:00.000Z", title="Sow the leeks"))
    assert await watched.check() == 1  # the upgrade
    assert await watched.check() == 0
    api.rows[DS].append(page(4, "2025-03-16T07:00:00.000Z", title="Water the leeks"))
    assert await watched.check() == 1
    assert await watched.fired() == ["Sow the leeks", "Water the leeks"]


async def test_more_new_pages_than_one_check_reads_fire_over_the_next_checks_once_each(
    engine: Engine, api: NotionFake
) -> None:
    """A CSV import adds rows that share one minute: a check reads at most MAX_QUERIES
    pages of results and the next goes on from its cursor; none is lost or fired twice."""
    watched = await watch(engine, api, {"database": DB})
    assert await watched.check() == 0  # primes
    cap = notion.MAX_QUERIES * notion.PAGE_SIZE
    imported = [page(100 + n, "2025-03-16T07:00:00.000Z", title=f"Import {n}")
                for n in range(cap + 150)]
    api.rows[DS] += imported
    assert await watched.check() == cap - 1  # the newest page it had seen comes first
    assert "cursor" in (await engine.store.trigger_state(watched.area.id) or {})["state"]
    assert await watched.check() == 151
    assert await watched.check() == 0
    api.rows[DS].append(page(9000, "2025-03-16T07:01:00.000Z", title="After the import"))
    assert await watched.check() == 1
    fired = await watched.fired()
    assert sorted(fired) == sorted([p["properties"]["Name"]["title"][0]["plain_text"]
                                    for p in imported] + ["After the import"])
