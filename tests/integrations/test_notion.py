"""Notion against a local server that answers with Notion-shaped responses."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine import AuthError, OAuthClient, PermanentError, RateLimited, TransientError
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import notion
from tests.integrations.provider import FakeProvider, Reply, Seen, load_fixture, serve

TOKEN = "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"
DB = "3f1c2b5e-9a7d-4c0e-8b6a-1d2f4e5c7a90"
DB_URL = "https://www.notion.so/marta/3f1c2b5e9a7d4c0e8b6a1d2f4e5c7a90?v=1b2c3d4e5f6a4b7c8d9e0f1a2b3c4d5e"
PAGE = "8d2e4f6a-1b3c-4d5e-9f0a-1b2c3d4e5f60"
PAGE_URL = "https://www.notion.so/Repot-the-basil-8d2e4f6a1b3c4d5e9f0a1b2c3d4e5f60"


def fixture(name: str) -> Any:
    return load_fixture("notion", name)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(
        not_found=Reply(fixture("error_not_found.json"), status=404), json_body=True
    )
    async with serve(fake.handle) as base:
        monkeypatch.setattr(notion.service, "api_base_url", f"{base}/v1")
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(notion.service, TOKEN, http, name="Marta's Garden")


def poll(
    trigger: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = notion.service.triggers[trigger]
    ctx = poll_context(spec, params, http)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(
    reaction: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = notion.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


def assert_api_headers(seen: Seen) -> None:
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Notion-Version"] == "2022-06-28"


# ---------------------------------------------------------------------- triggers


async def test_new_page_in_database_queries_newest_first_and_leaves_out_trashed_pages(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", f"/v1/databases/{DB}/query", Reply(fixture("query_created.json")))
    result = await poll("new_page_in_database", {"database": DB_URL}, http, account)
    [seen] = api.seen
    assert (seen.method, seen.path, seen.query) == ("POST", f"/v1/databases/{DB}/query", {})
    assert_api_headers(seen)
    assert seen.body == {
        "sorts": [{"timestamp": "created_time", "direction": "descending"}],
        "page_size": 50,
    }
    assert [i.key for i in result.items] == [PAGE, "59833787-2cf9-4fdf-8782-e53db20768a5"]
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
    }
    assert result.items[1].data["properties"]["Pots"] == ""
    assert result.items[1].data["properties"]["Done"] == "true"


async def test_page_property_changed_keys_on_the_chosen_value_or_on_the_edit_time(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", f"/v1/databases/{DB}/query", Reply(fixture("query_created.json")))
    params = {"database": DB.replace("-", ""), "property": "Status"}
    result = await poll("page_property_changed", params, http, account)
    assert api.seen[0].body["sorts"] == [
        {"timestamp": "last_edited_time", "direction": "descending"}
    ]
    assert [i.key for i in result.items] == [
        f"{PAGE}#Status=In progress",
        "59833787-2cf9-4fdf-8782-e53db20768a5#Status=Done",
    ]
    assert result.items[0].data["value"] == "In progress"

    edits = await poll("page_property_changed", {"database": DB}, http, account)
    assert edits.items[0].key == f"{PAGE}@2025-03-15T18:02:00.000Z"
    assert edits.items[0].data["value"] == ""

    with pytest.raises(PermanentError, match=r"no property 'State'.*it has: Done, Due, Name"):
        await poll("page_property_changed", {"database": DB, "property": "State"}, http, account)


async def test_new_and_edited_pages_fire_oldest_first_whatever_the_listing_order(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    listing = fixture("query_created.json")
    listing["results"].reverse()  # oldest first: the pages' own times decide
    api.on("POST", f"/v1/databases/{DB}/query", Reply(listing))
    older, newer = "59833787-2cf9-4fdf-8782-e53db20768a5", PAGE
    created = await poll("new_page_in_database", {"database": DB}, http, account)
    assert [i.key for i in oldest_first(created.items)] == [older, newer]
    params = {"database": DB, "property": "Status"}
    edited = await poll("page_property_changed", params, http, account)
    assert [i.data["id"] for i in oldest_first(edited.items)] == [older, newer]


# ---------------------------------------------------------------------- reactions


async def test_create_database_page(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/v1/pages", Reply(fixture("page_created.json")))
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
    [seen] = api.seen
    assert (seen.method, seen.path) == ("POST", "/v1/pages")
    assert_api_headers(seen)
    assert seen.body == {
        "parent": {"database_id": DB},
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


async def test_create_database_page_refuses_bad_properties(
    api: FakeProvider, http: HttpClient, account: AccountSession
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
    api.on("POST", "/v1/pages", Reply(fixture("error_validation.json"), status=400))
    with pytest.raises(PermanentError, match="Status is expected to be status"):
        await react("create_database_page", {"database": DB, "title": "x"}, http, account)
    assert len(api.seen) == 1


async def test_append_text_splits_long_text_into_pieces_notion_accepts(
    api: FakeProvider, http: HttpClient, account: AccountSession
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


async def test_the_account_name_is_the_workspace(api: FakeProvider, http: HttpClient) -> None:
    api.on("GET", "/v1/users/me", Reply(fixture("user_me.json")))
    assert notion.service.api_key is not None and notion.service.api_key.userinfo is not None
    assert await notion.service.api_key.userinfo(http, TOKEN) == "Marta's Garden"
    assert_api_headers(api.seen[0])
    api.on("GET", "/v1/users/me", Reply(fixture("error_unauthorized.json"), status=401))
    with pytest.raises(AuthError, match="refused the integration secret: API token is invalid"):
        await notion.service.api_key.userinfo(http, TOKEN)


# ---------------------------------------------------------------------- errors


async def test_a_refused_token_asks_for_a_new_one(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on(
        "POST", f"/v1/databases/{DB}/query", Reply(fixture("error_unauthorized.json"), status=401)
    )
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll("new_page_in_database", {"database": DB}, http, account)
    assert len(api.seen) == 1


async def test_forbidden_not_shared_rate_limited_and_server_errors(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    path = f"/v1/databases/{DB}/query"
    with pytest.raises(PermanentError, match=r"not shared with the integration.*Connections"):
        await poll("new_page_in_database", {"database": DB}, http, account)

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
    assert notion.api_key is not None  # the internal-integration secret still works


async def test_removing_the_account_revokes_its_token_at_notion(
    api: FakeProvider, account: AccountSession
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
    assert seen.headers["Notion-Version"] == notion.NOTION_VERSION
