"""Todoist against a local server that answers with Todoist-shaped responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine import AuthError, PermanentError, RateLimited, TransientError, ValidationError
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.testing import poll_context, reaction_context
from integrations import todoist
from tests.integrations.provider import FakeProvider, Reply, load_fixture, serve

TOKEN = "0123456789abcdef0123456789abcdef01234567"


def fixture(name: str) -> Any:
    return load_fixture("todoist", name)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(not_found=Reply("Task not found", status=404))
    async with serve(fake.handle) as base:
        monkeypatch.setattr(todoist.service, "api_base_url", base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(todoist.service, TOKEN, http, name="Marta Kowal")


def poll(trigger: str, params: dict[str, Any], http: HttpClient, account: Any) -> Any:
    spec = todoist.service.triggers[trigger]
    ctx = poll_context(spec, params, http)
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
    api.on("GET", "/rest/v2/tasks", Reply(fixture("tasks.json")))
    result = await poll("new_task", {"project_id": "", "label": ""}, http, account)
    assert [i.key for i in result.items] == ["2995104340", "2995104339"]
    soil = result.items[1].data
    assert soil["content"] == "Buy potting soil"
    assert soil["labels"] == ["garden"]
    assert soil["priority"] == 4
    assert soil["due"] == "2026-11-22"
    assert soil["url"] == "https://todoist.com/showTask?id=2995104339"
    assert set(soil) == {f.name for f in todoist.service.triggers["new_task"].fields}
    (seen,) = api.seen
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.query == {}


async def test_new_task_filters_by_project_and_label(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/rest/v2/tasks", Reply([]))
    params = {"project_id": "2203306141", "label": "@garden"}
    assert (await poll("new_task", params, http, account)).items == []
    assert api.seen[0].query == {"project_id": "2203306141", "label": "garden"}


async def test_task_completed_keys_each_completion(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/sync/v9/completed/get_all", Reply(fixture("completed.json")))
    result = await poll("task_completed", {"project_id": "2203306141"}, http, account)
    assert [i.key for i in result.items] == ["1182985422", "1182985411"]
    assert result.items[0].data == {
        "task_id": "2995104302",
        "content": "Order seeds",
        "project_id": "2203306141",
        "completed_at": "2026-11-22T10:41:06.000000Z",
        "url": "https://app.todoist.com/app/task/2995104302",
    }
    assert api.seen[0].query == {"limit": "50", "project_id": "2203306141"}


async def test_task_due_today_keys_by_day_and_filters_the_project(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/rest/v2/tasks", Reply(fixture("tasks.json")))
    result = await poll(
        "task_due_today", {"project_id": "2203306141", "overdue": True}, http, account
    )
    assert [i.key for i in result.items] == ["2995104339@2026-11-22"]
    assert api.seen[0].query == {"filter": "today | overdue"}
    await poll("task_due_today", {"project_id": "", "overdue": False}, http, account)
    assert api.seen[1].query == {"filter": "today"}


async def test_bad_project_id_is_refused_before_asking(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="not a Todoist project id"):
        await poll("new_task", {"project_id": "Garden stuff"}, http, account)
    assert api.seen == []


async def test_without_an_account_says_how_to_add_one(http: HttpClient) -> None:
    with pytest.raises(AuthError, match="hookline accounts token todoist"):
        await poll("new_task", {}, http, None)


@pytest.mark.parametrize(
    ("status", "headers", "error", "message"),
    [
        (401, {}, AuthError, "needs reconnecting"),
        (403, {}, AuthError, "does not let this account reach"),
        (404, {}, PermanentError, "has no tasks"),
        (429, {"Retry-After": "17"}, RateLimited, "try again in 17 s"),
        (503, {}, TransientError, "HTTP 503"),
        (400, {}, PermanentError, r"\(HTTP 400\): Invalid argument value"),
    ],
)
async def test_errors_become_engine_errors(
    api: FakeProvider,
    http: HttpClient,
    account: AccountSession,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    text = "Invalid argument value" if status == 400 else "Forbidden"
    api.on("GET", "/rest/v2/tasks", Reply(text, status, headers))
    with pytest.raises(error, match=message) as caught:
        await poll("new_task", {}, http, account)
    assert TOKEN not in str(caught.value)
    if status == 429:
        assert isinstance(caught.value, RateLimited)
        assert caught.value.retry_after == 17


# ---------------------------------------------------------------------- reactions


async def test_create_task_posts_the_task(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/rest/v2/tasks", Reply(fixture("task_created.json")))
    out = await react(
        "create_task",
        {
            "content": "Reply to Marta",
            "description": "https://example.org/issue/17",
            "project_id": "2203306141",
            "labels": ["@from-hookline"],
            "priority": 4,
            "due_string": "tomorrow",
        },
        http,
        account,
    )
    assert out == {
        "id": "2995104401",
        "url": "https://todoist.com/showTask?id=2995104401",
        "content": "Reply to Marta",
    }
    (seen,) = api.seen
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"].startswith("application/json")
    assert json.loads(seen.body) == {
        "content": "Reply to Marta",
        "description": "https://example.org/issue/17",
        "project_id": "2203306141",
        "labels": ["from-hookline"],
        "priority": 4,
        "due_string": "tomorrow",
    }
    assert todoist.service.reactions["create_task"].retry is False


async def test_create_task_into_the_inbox_sends_only_the_name(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("POST", "/rest/v2/tasks", Reply(fixture("task_created.json")))
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
    api.on("POST", "/rest/v2/tasks/2995104339/close", Reply(status=204))
    out = await react("complete_task", {"task_id": " 2995104339 "}, http, account)
    assert out == {"task_id": "2995104339"}
    assert [(s.method, s.path) for s in api.seen] == [("POST", "/rest/v2/tasks/2995104339/close")]


async def test_complete_task_unknown_and_malformed_ids(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    with pytest.raises(PermanentError, match="has no task 1"):
        await react("complete_task", {"task_id": "1"}, http, account)
    with pytest.raises(PermanentError, match="not a Todoist task id"):
        await react("complete_task", {"task_id": "../projects"}, http, account)
    assert len(api.seen) == 1


async def test_userinfo_names_the_account(api: FakeProvider, http: HttpClient) -> None:
    api.on("POST", "/sync/v9/sync", Reply(fixture("sync_user.json")))
    assert todoist.service.api_key is not None
    userinfo = todoist.service.api_key.userinfo
    assert userinfo is not None
    assert await userinfo(http, TOKEN) == "Marta Kowal"
    (seen,) = api.seen
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert b"resource_types=%5B%22user%22%5D" in seen.body
    assert b"sync_token=%2A" in seen.body or b"sync_token=*" in seen.body
