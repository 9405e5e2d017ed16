"""Trello against a local server that answers with Trello-shaped responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine import AuthError, PermanentError, RateLimited, TransientError
from engine.auth import NEEDS_RECONNECT, AccountSession
from engine.http import HttpClient
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import trello
from tests.integrations.provider import FakeProvider, Reply, load_fixture, serve

KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TOKEN = "ATTAa1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7"
SECRET = f"{KEY}:{TOKEN}"
AUTH = f'OAuth oauth_consumer_key="{KEY}", oauth_token="{TOKEN}"'


def fixture(name: str) -> Any:
    return load_fixture("trello", name)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(not_found=Reply("The requested resource was not found.", status=404))
    async with serve(fake.handle) as base:
        monkeypatch.setattr(trello.service, "api_base_url", base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(trello.service, SECRET, http, name="martakowal")


def poll(trigger: str, params: dict[str, Any], http: HttpClient, account: Any) -> Any:
    spec = trello.service.triggers[trigger]
    ctx = poll_context(spec, params, http)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(reaction: str, params: dict[str, Any], http: HttpClient, account: Any) -> Any:
    spec = trello.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


BOARD = "5abbe4b7ddc1b351ef961411"
LIST = "5abbe4b7ddc1b351ef961412"


# ---------------------------------------------------------------------- triggers


async def test_new_card_in_list_lists_cards_newest_first(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", f"/lists/{LIST}/cards", Reply(fixture("cards.json")))
    result = await poll("new_card_in_list", {"list_id": LIST}, http, account)
    assert [i.key for i in result.items] == [
        f"673f0a12ddc1b351ef961500@{LIST}",
        f"5abbe4b7ddc1b351ef961414@{LIST}",
    ]
    assert result.items[1].data == {
        "card_id": "5abbe4b7ddc1b351ef961414",
        "card_name": "Buy potting soil",
        "card_url": "https://trello.com/c/Kl9DpVvB",
        "description": "The peat-free one.",
        "labels": ["garden"],
        "due": "2026-11-23T09:00:00.000Z",
        "list_id": LIST,
    }
    (seen,) = api.seen
    assert seen.headers["Authorization"] == AUTH
    assert seen.query == {"fields": "id,name,desc,idList,labels,due,shortLink,shortUrl,url"}
    assert KEY not in str(seen.query) and TOKEN not in str(seen.query)


async def test_card_moved_to_list_filters_by_list_name(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/boards/nC8QJJoZ/actions", Reply(fixture("moves.json")))
    params = {"board": "https://trello.com/b/nC8QJJoZ/garden", "list_name": " done "}
    result = await poll("card_moved_to_list", params, http, account)
    assert [i.key for i in result.items] == ["673f1c02ddc1b351ef961601"]
    assert result.items[0].data == {
        "card_id": "5abbe4b7ddc1b351ef961414",
        "card_name": "Buy potting soil",
        "card_url": "https://trello.com/c/Kl9DpVvB",
        "from_list": "Doing",
        "to_list": "Done",
        "moved_by": "Marta Kowal",
        "moved_at": "2026-11-22T10:41:06.190Z",
    }
    assert api.seen[0].query == {"filter": "updateCard:idList", "limit": "50"}
    everything = await poll("card_moved_to_list", {"board": "nC8QJJoZ"}, http, account)
    assert len(everything.items) == 2


async def test_new_comment_lists_comment_actions(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", f"/boards/{BOARD}/actions", Reply(fixture("comments.json")))
    result = await poll("new_comment", {"board": BOARD}, http, account)
    (item,) = result.items
    assert item.key == "673f1d90ddc1b351ef961700"
    assert item.data["text"] == "Bought it, 40 l."
    assert item.data["author"] == "Marta Kowal"
    assert item.data["card_url"] == "https://trello.com/c/Kl9DpVvB"
    assert set(item.data) == {f.name for f in trello.service.triggers["new_comment"].fields}
    assert api.seen[0].query == {"filter": "commentCard", "limit": "50"}


async def test_moves_and_comments_fire_oldest_first_whatever_the_listing_order(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    [comment] = fixture("comments.json")
    earlier = comment | {"id": "673f1a00ddc1b351ef961699", "date": "2026-11-22T08:00:00.000Z"}
    path = f"/boards/{BOARD}/actions"
    api.on("GET", path, Reply(fixture("moves.json")[::-1]))  # oldest first: times decide
    moves = await poll("card_moved_to_list", {"board": BOARD}, http, account)
    api.on("GET", path, Reply([earlier, comment]))
    comments = await poll("new_comment", {"board": BOARD}, http, account)
    assert [i.key for i in oldest_first(moves.items)] == [
        "673f1b77ddc1b351ef961600",
        "673f1c02ddc1b351ef961601",
    ]
    assert [i.key for i in oldest_first(comments.items)] == [earlier["id"], comment["id"]]


async def test_bad_ids_are_refused_before_asking(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="not a Trello list id"):
        await poll("new_card_in_list", {"list_id": "To do"}, http, account)
    with pytest.raises(PermanentError, match="not a Trello board id"):
        await poll("new_comment", {"board": "https://example.org/garden"}, http, account)
    assert api.seen == []


async def test_a_secret_without_the_key_says_how_to_fix_it(
    api: FakeProvider, http: HttpClient
) -> None:
    account = AccountSession.for_token(trello.service, TOKEN, http)
    with pytest.raises(AuthError, match="KEY:TOKEN") as caught:
        await poll("new_comment", {"board": BOARD}, http, account)
    assert TOKEN not in str(caught.value)
    assert api.seen == []


async def test_without_an_account_says_how_to_add_one(http: HttpClient) -> None:
    with pytest.raises(AuthError, match="hookline accounts token trello"):
        await poll("new_comment", {"board": BOARD}, http, None)


async def test_a_refused_key_or_token_marks_the_account_for_reconnecting(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", f"/boards/{BOARD}/actions", Reply("invalid token", 401))
    with pytest.raises(AuthError, match=r"needs reconnecting.*reconnect the account in Hookline"):
        await poll("new_comment", {"board": BOARD}, http, account)
    assert account.account.status == NEEDS_RECONNECT
    assert [s.headers["Authorization"] for s in api.seen] == [AUTH]  # sent once
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll("new_comment", {"board": BOARD}, http, account)
    assert len(api.seen) == 1


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "message"),
    [
        (401, "invalid token", {}, AuthError, "needs reconnecting.*accounts token trello"),
        (403, "forbidden", {}, AuthError, "does not let this account reach"),
        (404, "The requested resource was not found.", {}, PermanentError, "has no board"),
        (
            429,
            {"error": "API_TOKEN_LIMIT_EXCEEDED", "message": "Rate limit exceeded"},
            {"Retry-After": "10"},
            RateLimited,
            "try again in 10 s",
        ),
        (502, "Bad gateway", {}, TransientError, "HTTP 502"),
        (400, "invalid value for idList", {}, PermanentError, "invalid value for idList"),
    ],
)
async def test_errors_become_engine_errors(
    api: FakeProvider,
    http: HttpClient,
    account: AccountSession,
    status: int,
    body: Any,
    headers: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    api.on("GET", f"/boards/{BOARD}/actions", Reply(body, status, headers))
    with pytest.raises(error, match=message) as caught:
        await poll("new_comment", {"board": BOARD}, http, account)
    assert TOKEN not in str(caught.value) and KEY not in str(caught.value)
    if status == 429:
        assert isinstance(caught.value, RateLimited)
        assert caught.value.retry_after == 10


# ---------------------------------------------------------------------- reactions


async def test_create_card_posts_it(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/cards", Reply(fixture("card_created.json")))
    out = await react(
        "create_card",
        {
            "list_id": LIST,
            "name": "Reply to Marta",
            "description": "https://example.org/issue/17",
            "position": "bottom",
            "due": "2026-11-23T09:00:00Z",
        },
        http,
        account,
    )
    assert out == {
        "card_id": "673f2000ddc1b351ef961800",
        "card_url": "https://trello.com/c/Rt5yHn2c",
        "card_name": "Reply to Marta",
    }
    (seen,) = api.seen
    assert seen.headers["Authorization"] == AUTH
    assert json.loads(seen.body) == {
        "idList": LIST,
        "name": "Reply to Marta",
        "pos": "bottom",
        "desc": "https://example.org/issue/17",
        "due": "2026-11-23T09:00:00Z",
    }
    assert trello.service.reactions["create_card"].retry is False


async def test_create_card_defaults_to_the_top(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/cards", Reply(fixture("card_created.json")))
    await react("create_card", {"list_id": LIST, "name": "Reply"}, http, account)
    assert json.loads(api.seen[0].body) == {"idList": LIST, "name": "Reply", "pos": "top"}


async def test_add_comment_to_a_card_address(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/cards/Kl9DpVvB/actions/comments", Reply(fixture("comment_created.json")))
    out = await react(
        "add_comment",
        {"card": "https://trello.com/c/Kl9DpVvB/3-buy-potting-soil", "text": "Done."},
        http,
        account,
    )
    assert out == {
        "comment_id": "673f2100ddc1b351ef961900",
        "card_url": "https://trello.com/c/Kl9DpVvB",
    }
    assert json.loads(api.seen[0].body) == {"text": "Done."}


async def test_add_comment_on_an_unknown_card(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="has no card 5abbe4b7ddc1b351ef961499"):
        await react(
            "add_comment", {"card": "5abbe4b7ddc1b351ef961499", "text": "Hi"}, http, account
        )


async def test_userinfo_names_the_account(api: FakeProvider, http: HttpClient) -> None:
    api.on("GET", "/members/me", Reply(fixture("member.json")))
    assert trello.service.api_key is not None
    userinfo = trello.service.api_key.userinfo
    assert userinfo is not None
    assert await userinfo(http, SECRET) == "martakowal"
    assert api.seen[0].headers["Authorization"] == AUTH
