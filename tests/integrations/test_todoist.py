"""Todoist against a local server that answers as Todoist's API v1 does.

The fake answers only v1's paths (https://developer.todoist.com/api/v1/, read
2026-12-06); REST v2's and Sync v9's answer 410 Gone, as Todoist's have since 2026-02-10.
Its answers are the fixtures in fixtures/todoist/ (see the README there).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
    ValidationError,
)
from engine import bus as topics
from engine.app import Engine
from engine.areas import Area, AreaSpec
from engine.auth import AccountSession
from engine.auth.oauth import authorize
from engine.catalog.service import TriggerSpec
from engine.http import HttpClient
from engine.testing import poll_context, reaction_context
from integrations import todoist
from tests.integrations.engines import start_engine
from tests.integrations.provider import FakeProvider, Reply, load_fixture, serve

TOKEN = "0123456789abcdef0123456789abcdef01234567"
SOIL, WATER, SEEDS = "6X7rM8997g3RQmvh", "6X7rfFVPjhvv84XG", "6X7rF9xvX25jTxm5"
GARDEN = "6Jf8VQXxpwv56VQ7"
NOW = datetime(2026, 12, 6, 8, 0, 0, tzinfo=UTC)
MAPPED = f"/api/v1/id_mappings/tasks/{WATER},{SOIL}"


def fixture(name: str) -> Any:
    return load_fixture("todoist", name)


def gone_before_v1(fake: FakeProvider) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The fake's handler: REST v2 and Sync v9 are gone (410), v1 is the fake's."""

    async def handle(request: web.Request) -> web.Response:
        if request.path.startswith(("/rest/", "/sync/")):
            return web.json_response({"error": "Gone"}, status=410)
        return await fake.handle(request)

    return handle


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(not_found=Reply(fixture("error_not_found.json"), status=404),
                        match_query=("cursor",))
    async with serve(gone_before_v1(fake)) as base:
        fake.base = base
        monkeypatch.setattr(todoist.service, "api_base_url", base)
        monkeypatch.setattr(todoist, "_now", lambda: NOW, raising=False)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(todoist.service, TOKEN, http, name="Marta Kowal")


def poll(trigger: str, params: dict[str, Any], http: HttpClient, account: Any,
         state: dict[str, Any] | None = None) -> Any:
    spec = todoist.service.triggers[trigger]
    ctx = poll_context(spec, params, http, state=state)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(reaction: str, params: dict[str, Any], http: HttpClient, account: Any) -> Any:
    spec = todoist.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


# ---------------------------------------------------------------------- triggers


async def test_new_task_lists_tasks_newest_first_with_the_token(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/api/v1/tasks", Reply(fixture("tasks.json")))
    api.on("GET", MAPPED, Reply(fixture("id_mappings_tasks.json")))
    result = await poll("new_task", {"project_id": "", "label": ""}, http, account)
    assert [i.key for i in result.items] == [WATER, SOIL]
    soil = result.items[1].data
    assert soil == {
        "id": SOIL,
        "content": "Buy potting soil",
        "description": "The peat-free one.",
        "project_id": GARDEN,
        "labels": ["garden"],
        "priority": 4,
        "due": "2026-11-22",
        "due_string": "today",
        "url": f"https://app.todoist.com/app/task/{SOIL}",
        "created_at": "2026-11-20T13:19:42.000000Z",
    }
    assert result.items[0].data["due"] == "2026-11-22"  # a due date with a time of day
    assert set(soil) == {f.name for f in todoist.service.triggers["new_task"].fields}
    assert api.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert api.seen[0].query == {"limit": "200"}


async def test_new_task_filters_by_project_and_label(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/api/v1/tasks", Reply({"results": [], "next_cursor": None}))
    params = {"project_id": GARDEN, "label": "@garden"}
    assert (await poll("new_task", params, http, account)).items == []
    assert api.seen[0].query == {"project_id": GARDEN, "label": "garden", "limit": "200"}


async def test_an_old_project_id_is_translated_once(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    """Areas made before hold REST v2's project ids (digits), which v1 refuses."""
    api.on("GET", "/api/v1/id_mappings/projects/2203306141",
           Reply(fixture("id_mappings_projects.json")))
    api.on("GET", "/api/v1/tasks", Reply({"results": [], "next_cursor": None}))
    state: dict[str, Any] = {}
    for _ in range(2):
        await poll("new_task", {"project_id": "2203306141"}, http, account, state)
    assert [(s.path, s.query.get("project_id")) for s in api.seen] == [
        ("/api/v1/id_mappings/projects/2203306141", None),
        ("/api/v1/tasks", GARDEN),
        ("/api/v1/tasks", GARDEN),
    ]


async def test_an_old_project_id_todoist_does_not_know_says_what_to_do(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/api/v1/id_mappings/projects/2203306199", Reply([]))
    with pytest.raises(PermanentError, match=r"Todoist has no project 2203306199 .* use the code"):
        await poll("new_task", {"project_id": "2203306199"}, http, account)


async def test_new_task_follows_the_cursor_to_the_last_page(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/api/v1/tasks", Reply(fixture("tasks_page1.json")))
    api.on("GET", "/api/v1/tasks?cursor=Ab7Kq2xR9tLmWz0p.page2", Reply(fixture("tasks_page2.json")))
    result = await poll("new_task", {}, http, account, {"ids": "v1"})
    assert {i.key for i in result.items} == {SOIL, WATER, SEEDS}
    assert [s.query for s in api.seen] == [
        {"limit": "200"}, {"limit": "200", "cursor": "Ab7Kq2xR9tLmWz0p.page2"}]


async def test_more_open_tasks_than_a_check_reads_fail_it_and_say_what_to_do(
    api: FakeProvider, http: HttpClient, account: AccountSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the page cap the check fails as a whole (nothing of it fires or is kept),
    rather than watch a part of the list and never see the rest."""
    monkeypatch.setattr(todoist, "MAX_PAGES", 1)
    api.on("GET", "/api/v1/tasks", Reply(fixture("tasks_page1.json")))
    with pytest.raises(PermanentError, match=r"more than 200 tasks.*choose a project"):
        await poll("new_task", {}, http, account, {"ids": "v1"})
    assert len(api.seen) == 1


async def test_task_completed_reads_a_window_of_completions(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/api/v1/tasks/completed/by_completion_date", Reply(fixture("completed.json")))
    state: dict[str, Any] = {}
    result = await poll("task_completed", {"project_id": GARDEN}, http, account, state)
    order = "6X7rM8997g3RQmvj"
    assert [i.key for i in result.items] == [
        f"{order}@2026-12-05T10:41:06.000000Z", "6X7rfEVP8hvv25ZQ@2026-12-05T09:15:44.000000Z"]
    assert result.items[0].data == {
        "task_id": order,
        "content": "Order seeds",
        "project_id": GARDEN,
        "completed_at": "2026-12-05T10:41:06.000000Z",
        "url": f"https://app.todoist.com/app/task/{order}",
    }
    # The first check looks a day back; the next from an hour before this one's end.
    assert api.seen[0].query == {"since": "2026-12-05T08:00:00Z", "until": "2026-12-06T08:00:00Z",
                                 "project_id": GARDEN, "limit": "200"}
    await poll("task_completed", {"project_id": GARDEN}, http, account, state)
    assert api.seen[1].query["since"] == "2026-12-06T07:00:00Z"


async def test_task_completed_never_reads_what_sync_v9_listed(
    api: FakeProvider, http: HttpClient, account: AccountSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An area kept Sync v9's completion event ids; completions v9 could list (before
    2026-02-11) are never read again, so they cannot fire again under new keys."""
    monkeypatch.setattr(todoist, "_now", lambda: datetime(2026, 2, 11, 6, 0, tzinfo=UTC))
    api.on("GET", "/api/v1/tasks/completed/by_completion_date",
           Reply({"items": [], "next_cursor": None}))
    await poll("task_completed", {}, http, account, {"since": "2026-01-30T00:00:00Z"})
    assert api.seen[0].query["since"] == "2026-02-11T00:00:00Z"


async def test_a_lapsed_cursor_reads_the_window_again(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/api/v1/tasks/completed/by_completion_date", Reply(fixture("completed.json")))
    api.on("GET", "/api/v1/tasks/completed/by_completion_date?cursor=old",
           Reply({"error": "Invalid argument value", "error_code": 20, "error_extra": {},
                  "error_tag": "INVALID_ARGUMENT_VALUE", "http_code": 400}, status=400))
    state: dict[str, Any] = {"sweep": {"since": "2026-12-05T07:00:00Z",
                                       "until": "2026-12-06T07:55:00Z", "cursor": "old"}}
    result = await poll("task_completed", {}, http, account, state)
    assert len(result.items) == 2
    assert [s.query.get("cursor") for s in api.seen] == ["old", None]
    assert api.seen[1].query["since"] == "2026-12-05T07:00:00Z"
    assert state == {"since": "2026-12-06T06:55:00Z"}


async def test_task_due_today_keys_by_day_and_filters_the_project(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/api/v1/tasks/filter", Reply(fixture("tasks.json")))
    api.on("GET", f"/api/v1/id_mappings/tasks/{SOIL}", Reply(fixture("id_mappings_tasks.json")[:1]))
    result = await poll(
        "task_due_today", {"project_id": GARDEN, "overdue": True}, http, account
    )
    assert [(i.key, i.aliases) for i in result.items] == [
        (f"{SOIL}@2026-11-22", ("2995104339@2026-11-22",))]
    assert api.seen[0].query == {"query": "today | overdue", "limit": "200"}
    await poll("task_due_today", {"project_id": "", "overdue": False}, http, account,
               {"ids": "v1"})
    assert api.seen[-1].query == {"query": "today", "limit": "200"}


async def test_bad_project_id_is_refused_before_asking(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="not a Todoist project id"):
        await poll("new_task", {"project_id": "Garden stuff"}, http, account)
    assert api.seen == []


async def test_without_an_account_says_how_to_add_one(http: HttpClient) -> None:
    with pytest.raises(AuthError, match="choose the Todoist account"):
        await poll("new_task", {}, http, None)


def v1_error(status: int, text: str, tag: str, retry_after: int | None = None) -> Any:
    extra = {"retry_after": retry_after} if retry_after is not None else {}
    return {"error": text, "error_code": 0, "error_extra": extra, "error_tag": tag,
            "http_code": status}


@pytest.mark.parametrize(
    ("status", "headers", "retry_after", "error", "message"),
    [
        (401, {}, None, AuthError, "needs reconnecting"),
        (403, {}, None, AuthError, "does not let this account reach tasks: Forbidden"),
        (404, {}, None, PermanentError, "has no tasks"),
        (429, {"Retry-After": "17"}, None, RateLimited, "try again in 17 s"),
        (429, {}, 23, RateLimited, "try again in 23 s"),
        (503, {}, None, TransientError, "HTTP 503"),
        (400, {}, None, PermanentError, r"\(HTTP 400\): Invalid argument value"),
    ],
)
async def test_errors_become_engine_errors(
    api: FakeProvider,
    http: HttpClient,
    account: AccountSession,
    status: int,
    headers: dict[str, str],
    retry_after: int | None,
    error: type[Exception],
    message: str,
) -> None:
    text = "Invalid argument value" if status == 400 else "Forbidden"
    body = v1_error(status, text, "ERROR", retry_after)
    api.on("GET", "/api/v1/tasks", Reply(body, status, headers))
    with pytest.raises(error, match=message) as caught:
        await poll("new_task", {}, http, account, {"ids": "v1"})
    assert TOKEN not in str(caught.value)
    if status == 429:
        assert isinstance(caught.value, RateLimited)
        assert caught.value.retry_after == (retry_after or 17)


# ---------------------------------------------------------------------- after the upgrade


@dataclass
class Watched:
    """An area of the real engine whose check runs the real trigger as ``account``."""

    engine: Engine
    area: Area
    account: AccountSession
    shown: list[str] = field(default_factory=list)

    async def check(self, poll_fn: Callable[[PollContext], Awaitable[PollResult]] | None = None
                    ) -> int:
        spec = self.engine.registry.trigger("todoist", self.area.spec.trigger.action)
        run = poll_fn or spec.poll
        assert run is not None

        async def as_account(ctx: PollContext) -> PollResult:
            ctx.account = self.account
            return await run(ctx)

        changed: TriggerSpec = replace(spec, poll=as_account)
        return await self.engine.poller.poll(self.area, changed, self.area.spec.trigger.params,
                                             300)

    async def fired(self) -> list[str]:
        await self.engine.wait_idle()
        return self.shown


@pytest.fixture
async def engine(data_dir: Path) -> AsyncIterator[Engine]:
    engine = await start_engine(data_dir)
    yield engine
    await engine.aclose()


async def watch(api: FakeProvider, engine: Engine, trigger: str, message: str) -> Watched:
    api.on("GET", "/api/v1/user", Reply(fixture("user.json")))
    marta = await engine.accounts.add_token("todoist", TOKEN)
    area = await engine.create_area(AreaSpec.from_dict({
        "name": "Garden tasks",
        "trigger": {"service": "todoist", "trigger": trigger, "account": marta.id,
                    "params": {}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "Todoist", "message": message}}],
    }))
    engine.scheduler.remove(area.id)  # the test checks by hand: the scheduler would race
    watched = Watched(engine, area, await engine.accounts.session(marta.id))
    engine.bus.subscribe(topics.NOTIFICATION, lambda m: watched.shown.append(m.data["body"]))
    return watched


async def test_tasks_seen_before_api_v1_do_not_fire_again(
    api: FakeProvider, engine: Engine
) -> None:
    """An area that watched new tasks on REST v2 remembers them by their old ids. Its first
    check on v1 asks Todoist for those (once); only the task added since fires."""
    watched = await watch(api, engine, "new_task", "{{ trigger.content }}")

    async def on_rest_v2(_ctx: PollContext) -> PollResult:
        return PollResult([Item("2995104340", {}), Item("2995104339", {})])

    assert await watched.check(on_rest_v2) == 0  # primes, as the old version did
    api.on("GET", "/api/v1/tasks", Reply(fixture("tasks_page1.json")))
    api.on("GET", "/api/v1/tasks?cursor=Ab7Kq2xR9tLmWz0p.page2", Reply(fixture("tasks_page2.json")))
    mapped = f"/api/v1/id_mappings/tasks/{SEEDS},{WATER},{SOIL}"
    api.on("GET", mapped,
           Reply([*fixture("id_mappings_tasks.json"), {"old_id": None, "new_id": SEEDS}]))
    assert await watched.check() == 1
    assert await watched.check() == 0
    assert await watched.fired() == ["Sow the broad beans"]
    assert [s.path for s in api.seen].count(mapped) == 1  # the first check on v1 only


async def test_completions_past_the_page_cap_fire_once_each_over_the_next_checks(
    api: FakeProvider, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More completions than a check reads: the rest come with the next check, from where
    it stopped; none is lost, none fires twice."""
    monkeypatch.setattr(todoist, "MAX_PAGES", 1)
    watched = await watch(api, engine, "task_completed", "{{ trigger.content }}")
    path = "/api/v1/tasks/completed/by_completion_date"
    api.on("GET", path, Reply({"items": [], "next_cursor": None}))
    assert await watched.check() == 0  # primes
    api.on("GET", path, Reply(fixture("completed_page1.json")))
    api.on("GET", f"{path}?cursor=Cq9Lm3ZtP0xWa7Rk.page2", Reply(fixture("completed_page2.json")))
    assert await watched.check() == 1
    assert await watched.check() == 1
    assert await watched.check() == 0
    assert await watched.fired() == ["Order seeds", "Repot the basil"]
    windows = [(s.query["since"], s.query["until"], s.query.get("cursor"))
               for s in api.seen if s.path == path]
    assert windows[1:] == [
        ("2026-12-06T07:00:00Z", "2026-12-06T08:00:00Z", None),
        ("2026-12-06T07:00:00Z", "2026-12-06T08:00:00Z", "Cq9Lm3ZtP0xWa7Rk.page2"),
        ("2026-12-06T07:00:00Z", "2026-12-06T08:00:00Z", None),
    ]


# ---------------------------------------------------------------------- reactions


async def test_create_task_posts_the_task(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/api/v1/tasks", Reply(fixture("task_created.json")))
    out = await react(
        "create_task",
        {
            "content": "Reply to Marta",
            "description": "https://example.org/issue/17",
            "project_id": GARDEN,
            "labels": ["@from-hookline"],
            "priority": 4,
            "due_string": "tomorrow",
        },
        http,
        account,
    )
    assert out == {
        "id": "6X7rjKtP98vG84rK",
        "url": "https://app.todoist.com/app/task/6X7rjKtP98vG84rK",
        "content": "Reply to Marta",
    }
    (seen,) = api.seen
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"].startswith("application/json")
    assert json.loads(seen.body) == {
        "content": "Reply to Marta",
        "description": "https://example.org/issue/17",
        "project_id": GARDEN,
        "labels": ["from-hookline"],
        "priority": 4,
        "due_string": "tomorrow",
    }
    assert todoist.service.reactions["create_task"].retry is False


async def test_create_task_in_a_project_named_by_its_old_id(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/api/v1/id_mappings/projects/2203306141",
           Reply(fixture("id_mappings_projects.json")))
    api.on("POST", "/api/v1/tasks", Reply(fixture("task_created.json")))
    await react("create_task", {"content": "Reply to Marta", "project_id": "2203306141"},
                http, account)
    assert json.loads(api.seen[1].body)["project_id"] == GARDEN


async def test_create_task_into_the_inbox_sends_only_the_name(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/api/v1/tasks", Reply(fixture("task_created.json")))
    await react("create_task", {"content": "Reply to Marta"}, http, account)
    assert json.loads(api.seen[0].body) == {"content": "Reply to Marta", "priority": 1}


async def test_create_task_needs_a_name(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(ValidationError, match="Task is required"):
        await react("create_task", {"content": "   "}, http, account)
    assert api.seen == []


async def test_complete_task_closes_it(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", f"/api/v1/tasks/{SOIL}/close", Reply(status=204))
    out = await react("complete_task", {"task_id": f" {SOIL} "}, http, account)
    assert out == {"task_id": SOIL}
    assert [(s.method, s.path) for s in api.seen] == [("POST", f"/api/v1/tasks/{SOIL}/close")]


async def test_complete_task_by_its_old_id(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    """A step written before v1 may name a task by its REST v2 id."""
    api.on("GET", "/api/v1/id_mappings/tasks/2995104339",
           Reply(fixture("id_mappings_tasks.json")[:1]))
    api.on("POST", f"/api/v1/tasks/{SOIL}/close", Reply(status=204))
    assert await react("complete_task", {"task_id": "2995104339"}, http, account) == {
        "task_id": SOIL}


async def test_complete_task_unknown_and_malformed_ids(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="has no task 6X7rUnknown"):
        await react("complete_task", {"task_id": "6X7rUnknown"}, http, account)
    with pytest.raises(PermanentError, match="not a Todoist task id"):
        await react("complete_task", {"task_id": "../projects"}, http, account)
    assert len(api.seen) == 1


# ---------------------------------------------------------------------- accounts


async def test_a_pasted_token_names_the_account(api: FakeProvider, http: HttpClient) -> None:
    api.on("GET", "/api/v1/user", Reply(fixture("user.json")))
    assert todoist.service.api_key is not None
    userinfo = todoist.service.api_key.userinfo
    assert userinfo is not None
    assert await userinfo(http, TOKEN) == "Marta Kowal"
    (seen,) = api.seen
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_a_refused_token_is_not_connected(api: FakeProvider, http: HttpClient) -> None:
    api.on("GET", "/api/v1/user", Reply(v1_error(401, "Unauthorized", "AUTH_INVALID_TOKEN"), 401))
    assert todoist.service.api_key is not None and todoist.service.api_key.userinfo
    with pytest.raises(AuthError, match="refused the account's token"):
        await todoist.service.api_key.userinfo(http, TOKEN)


async def test_connecting_through_the_browser(api: FakeProvider, http: HttpClient) -> None:
    """The whole OAuth flow against Todoist's endpoints (the token's at the fake)."""
    spec = todoist.service.oauth
    assert spec is not None
    assert spec.authorize_url == "https://todoist.com/oauth/authorize"
    assert spec.token_url == "https://todoist.com/oauth/access_token"
    assert spec.scopes == ("data:read_write",) and spec.client_secret_required
    api.on("POST", "/oauth/access_token", Reply(fixture("oauth_token.json")))
    asked: list[dict[str, list[str]]] = []

    async def browser(url: str) -> bool:  # the user approves; Todoist redirects back
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "todoist.com",
                                                              "/oauth/authorize")
        query = parse_qs(parts.query)
        asked.append(query)
        back = f"{query['redirect_uri'][0]}?code=fe2c2d5ab0&state={query['state'][0]}"
        async with aiohttp.ClientSession() as session, session.get(back) as resp:
            assert resp.status == 200
        return True

    at_fake = replace(spec, token_url=api.base + "/oauth/access_token", fixed_port=None)
    client = OAuthClient("4ac5f1bc2a6d44f7", "app-secret")
    tokens = await authorize(at_fake, client, http, browser=browser, timeout=10)
    assert tokens.access_token == TOKEN and tokens.refresh_token is None
    assert asked[0]["client_id"] == ["4ac5f1bc2a6d44f7"]
    assert asked[0]["scope"] == ["data:read_write"]
    (exchange,) = api.seen
    assert {k: exchange.form[k] for k in ("client_id", "client_secret", "code")} == {
        "client_id": "4ac5f1bc2a6d44f7", "client_secret": "app-secret", "code": "fe2c2d5ab0"}
    assert spec.userinfo is not None
    api.on("GET", "/api/v1/user", Reply(fixture("user.json")))
    assert await spec.userinfo(http, tokens.access_token) == "Marta Kowal"
    assert spec.redirect_uri() == "http://127.0.0.1:17574/callback"


async def test_removing_the_account_revokes_its_token(
    api: FakeProvider, account: AccountSession
) -> None:
    api.on("POST", "/api/v1/revoke", Reply(status=200))
    revoke = todoist.service.oauth.revoke  # type: ignore[union-attr]
    assert revoke is not None
    assert await revoke(account, OAuthClient("4ac5f1bc2a6d44f7", "app-secret")) is True
    (seen,) = api.seen
    assert seen.json() == {"token": TOKEN, "token_type_hint": "access_token"}
    assert seen.headers["Authorization"] == "Basic " + base64.b64encode(
        b"4ac5f1bc2a6d44f7:app-secret").decode()


async def test_the_old_apis_are_gone(api: FakeProvider, http: HttpClient) -> None:
    """The fake answers REST v2 and Sync v9 as Todoist does now."""
    resp = await http.get(api.base + "/rest/v2/tasks", check=False)
    assert resp.status == 410
