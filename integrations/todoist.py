"""Todoist: new, completed and due-today tasks; create and complete tasks as your account."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from engine import (
    ApiKeySpec,
    AuthKind,
    Field,
    Item,
    OAuth2Spec,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    RateLimited,
    ReactionContext,
    Service,
)

if TYPE_CHECKING:
    from engine import AccountSession, HttpClient, HttpResponse, OAuthClient

# Todoist's unified API v1 (https://developer.todoist.com/api/v1/, read 2026-12-06). It
# replaced REST v2 and Sync v9, which answer 410 Gone since 2026-02-10.
API = "/api/v1"
TASK_URL = "https://app.todoist.com/app/task/"
#: Rows per page: the most v1 gives.
PAGE_SIZE = 200
#: Pages read in one check (10,000 tasks). Open tasks past it fail the check, saying so;
#: completed tasks past it are read on from where the check stopped, next check.
MAX_PAGES = 50
#: v1 translates up to 100 ids of one kind per call (Migrating from v9 → IDs).
ID_BATCH = 100
#: How far back an area's first check looks for completed tasks.
FIRST_LOOKBACK = timedelta(days=1)
#: Each check reads completions again from this long before the last one ended: late
#: arrivals and a clock that differs from Todoist's are caught, known ones do not fire.
OVERLAP = timedelta(hours=1)
#: v1 answers at most three months of completions per request.
LONGEST_RANGE = timedelta(days=89)
#: Completions before this were listed by Sync v9 under other keys (its event ids):
#: nothing earlier is ever read, so an area that saw them does not fire them again.
V9_GONE = datetime(2026, 2, 11, tzinfo=UTC)
DESCRIPTION_LENGTH = 10_000


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


async def _whoami(http: HttpClient, token: str) -> str:
    """The full name (or e-mail) of the account a token belongs to."""
    resp = await http.get(_url(f"{API}/user"), headers={"Authorization": f"Bearer {token}"},
                          check=False)
    _check(resp, "your user profile")
    user = _object(resp, "your user profile")
    return str(user.get("full_name") or user.get("email") or "Todoist")


async def _revoke(session: AccountSession, client: OAuthClient) -> bool:
    """Revokes the access token (RFC 7009 at /api/v1/revoke, the app's id and secret in
    HTTP Basic, as Todoist's own SDKs do)."""
    resp = await session.http.post(
        _url(f"{API}/revoke"),
        headers=client.basic_auth(),
        json_body={"token": await session.token(), "token_type_hint": "access_token"},
        check=False,
    )
    return resp.ok


service = Service(
    "todoist",
    "Todoist",
    "New, completed and due-today tasks in Todoist; create and complete tasks as your "
    "Todoist account.",
    icon="todoist.svg",
    auth=AuthKind.OAUTH2,
    api_base_url="https://api.todoist.com",
    oauth=OAuth2Spec(
        authorize_url="https://todoist.com/oauth/authorize",
        token_url="https://todoist.com/oauth/access_token",  # noqa: S106 - an address
        # Read and write covers every trigger and reaction here; Todoist separates
        # several scopes with commas, so one scope keeps the authorization URL right.
        scopes=("data:read_write",),
        # Todoist sends the browser back to the one address registered with the app.
        fixed_port=17574,
        client_secret_required=True,
        revoke=_revoke,
        apps_url="https://app.todoist.com/app/settings/integrations",
        userinfo=_whoami,
        register_url="https://developer.todoist.com/appconsole.html",
        client_help="(Todoist: https://developer.todoist.com/appconsole.html → Create a new "
        "app; use it as the “OAuth redirect URL”)",
    ),
    api_key=ApiKeySpec(
        "API token",
        "Copy your personal API token from Todoist: Settings → Integrations → Developer → "
        "API token. It acts as your whole account (every project you can see).",
        userinfo=_whoami,
    ),
)

_PROJECT = Param(
    "project_id",
    ParamType.TEXT,
    "Project id",
    help="Only tasks of this project: the code at the end of the project's address in "
    "Todoist (app.todoist.com/app/project/garden-6Jf8VQXxpwv56VQ7). Empty: every project.",
    required=False,
    example="6Jf8VQXxpwv56VQ7",
)
_TASK_FIELDS = [
    Field("id", "Task id", "6X7rM8997g3RQmvh"),
    Field("content", "Task", "Buy potting soil"),
    Field("description", "Description", "The peat-free one."),
    Field("project_id", "Project id", "6Jf8VQXxpwv56VQ7"),
    Field("labels", "Labels", ["garden"]),
    Field("priority", "Priority (1 normal … 4 urgent)", 1),
    Field("due", "Due date (YYYY-MM-DD)", "2026-11-23"),
    Field("due_string", "Due, as written", "tomorrow"),
    Field("url", "Address", "https://app.todoist.com/app/task/6X7rM8997g3RQmvh"),
    Field("created_at", "Created at (UTC, ISO 8601)", "2026-11-22T08:12:03.000000Z"),
]


# ---------------------------------------------------------------------- the API


def _said(resp: HttpResponse) -> str:
    """The far side's own words: v1 answers errors as JSON with an ``error`` text."""
    try:
        data = resp.json()
    except PermanentError:  # not JSON: its text
        return resp.text()[:200].strip()
    return str(data.get("error") or "")[:200] if isinstance(data, dict) else ""


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Todoist answer that is not a success."""
    from engine import raise_for_provider  # loads aiohttp: not when the catalog is read

    if resp.status == 429 and resp.retry_after() is None:
        # v1 says how long to wait in its error body (error_extra.retry_after).
        wait = _retry_after(resp)
        raise RateLimited("Todoist's rate limit for this account is used up"
                          + (f"; try again in {wait:.0f} s" if wait is not None else ""), wait)
    raise_for_provider(
        resp, "Todoist", what, not_found_hint="check the id", detail=_said,
        unauthorized="Todoist refused the account's token: connect the account again (or "
        "copy a new API token from Settings → Integrations → Developer) and update it in "
        "Hookline",
    )


def _retry_after(resp: HttpResponse) -> float | None:
    try:
        extra = resp.json().get("error_extra") or {}
        return float(extra["retry_after"])
    except (PermanentError, AttributeError, KeyError, TypeError, ValueError):  # no hint
        return None


def _object(resp: HttpResponse, what: str) -> dict[str, Any]:
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"Todoist answered {what} with something unexpected")
    return data


async def _pages(session: AccountSession, path: str, what: str, query: Mapping[str, str],
                 rows_at: str, cursor: str | None = None
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """Every row of a cursor-paginated list, following ``next_cursor`` for at most
    MAX_PAGES pages; with the cursor to go on from when there are more still."""
    rows: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        params = {**query, "limit": str(PAGE_SIZE)}
        if cursor:
            params["cursor"] = cursor
        resp = await session.get(_url(path), params=params, check=False)
        _check(resp, what)
        data = _object(resp, what)
        page = data.get(rows_at)
        if not isinstance(page, list):
            raise PermanentError(f"Todoist answered {what} with something unexpected")
        rows.extend(r for r in page if isinstance(r, dict) and r.get("id") is not None)
        cursor = str(data["next_cursor"]) if data.get("next_cursor") else None
        if cursor is None:
            return rows, None
    return rows, cursor


async def _open_tasks(session: AccountSession, path: str, what: str,
                      query: Mapping[str, str], fewer: str) -> list[dict[str, Any]]:
    """Every open task a list gives, newest first. Past MAX_PAGES the check fails (saying
    how to watch ``fewer``): a part of the list would leave the rest unseen, and the
    engine's memory of the part not shown lapse."""
    tasks, more = await _pages(session, path, what, query, "results")
    if more:
        raise PermanentError(f"Todoist lists more than {MAX_PAGES * PAGE_SIZE:,} {what}, "
                             f"more than one check reads: {fewer}")
    return sorted(tasks, key=lambda t: str(t.get("added_at") or ""), reverse=True)


async def _translated(session: AccountSession, kind: str, ids: list[str]
                      ) -> list[tuple[str | None, str | None]]:
    """(old id, new id) pairs for ``ids`` of one kind, whichever spelling they are in:
    REST v2 and Sync v9 knew objects by other ids (all digits) than v1 does."""
    pairs: list[tuple[str | None, str | None]] = []
    for start in range(0, len(ids), ID_BATCH):
        batch = ",".join(quote(i, safe="") for i in ids[start:start + ID_BATCH])
        resp = await session.get(_url(f"{API}/id_mappings/{kind}/{batch}"), check=False)
        _check(resp, f"{kind} with these ids")
        data = resp.json()
        if not isinstance(data, list):
            raise PermanentError(f"Todoist answered the ids of {kind} with something "
                                 "unexpected")
        pairs.extend((_text(m.get("old_id")), _text(m.get("new_id")))
                     for m in data if isinstance(m, dict))
    return pairs


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


async def _v1_id(session: AccountSession, kind: str, value: str, noun: str,
                 known: dict[str, str] | None = None) -> str:
    """``value`` as v1 knows it. An id of all digits is one from before v1 (areas made
    then hold them), which v1 refuses: it is translated (and kept in ``known``)."""
    if not value.isdigit():
        return value
    if known is not None and value in known:
        return known[value]
    new = next((n for o, n in await _translated(session, kind, [value]) if n and o == value),
               None)
    if new is None:
        raise PermanentError(f"Todoist has no {noun} {value} (an id from before Todoist's "
                             f"API v1): check the {noun}'s address and use the code at its end")
    if known is not None:
        known[value] = new
    return new


def _plain_id(params: Mapping[str, Any], name: str, noun: str, how: str) -> str:
    value = str(params.get(name) or "").strip()
    if value and not value.isalnum():
        raise PermanentError(f"{value!r} is not a Todoist {noun} id: use {how}")
    return value


async def _project(ctx: PollContext | ReactionContext, session: AccountSession
                   ) -> str | None:
    """The project the step names, as v1 knows it (``None``: every project). A trigger
    keeps the translation of an old id in its state, to ask once."""
    project = _plain_id(ctx.params, "project_id", "project",
                        "the code at the end of the project's address")
    if not project:
        return None
    known = None
    if isinstance(ctx, PollContext) and project.isdigit():
        if not isinstance(ctx.state.get("v1_projects"), dict):
            ctx.state["v1_projects"] = {}
        known = ctx.state["v1_projects"]
    return await _v1_id(session, "projects", project, "project", known)


async def _old_ids(ctx: PollContext, session: AccountSession,
                   tasks: list[dict[str, Any]]) -> dict[str, str]:
    """On an area's first check on API v1: the ids (REST v2's) its tasks had, by their v1
    id. The area remembers seeing them under those; once this check is saved, it
    remembers the v1 ids, so later checks ask nothing."""
    if ctx.state.get("ids") == "v1" or ctx.dry_run:
        return {}
    ids = [str(t["id"]) for t in tasks]
    old = {n: o for o, n in await _translated(session, "tasks", ids) if o and n} if ids else {}
    ctx.state["ids"] = "v1"
    return old


def _cut(text: Any) -> str:
    value = str(text or "")
    return value if len(value) <= DESCRIPTION_LENGTH else value[:DESCRIPTION_LENGTH] + "…"


def _when(text: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _task(task: Mapping[str, Any]) -> dict[str, Any]:
    due = task.get("due") if isinstance(task.get("due"), dict) else {}
    day = str((due or {}).get("date") or "")[:10] or None  # a date, or a date and time
    task_id = str(task.get("id"))
    return {
        "id": task_id,
        "content": task.get("content") or "",
        "description": _cut(task.get("description")),
        "project_id": task.get("project_id"),
        "labels": list(task.get("labels") or []),
        "priority": task.get("priority"),
        "due": day,
        "due_string": (due or {}).get("string"),
        "url": TASK_URL + quote(task_id, safe=""),
        "created_at": task.get("added_at"),
    }


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_task",
    "New task",
    "Fires for each task added to Todoist (in a project, or with a label, if you choose).",
    params=[
        _PROJECT,
        Param(
            "label",
            ParamType.TEXT,
            "Only with label",
            help="Only tasks that have this label (its name, without @). Empty: every task.",
            required=False,
            example="garden",
        ),
    ],
    fields=_TASK_FIELDS,
    default_interval=300,
    min_interval=30,
)
async def new_task(ctx: PollContext) -> PollResult:
    session = ctx.require_account(service)
    query: dict[str, str] = {}
    project = await _project(ctx, session)
    if project:
        query["project_id"] = project
    label = str(ctx.params.get("label") or "").strip().lstrip("@")
    if label:
        query["label"] = label
    tasks = await _open_tasks(session, f"{API}/tasks", "tasks", query,
                              "choose a project (or a label) so the trigger watches fewer")
    old = await _old_ids(ctx, session, tasks)
    items = []
    for task in tasks:
        fields = _task(task)
        before = old.get(fields["id"])
        items.append(Item(fields["id"], fields, at=_when(task.get("added_at")),
                          aliases=(before,) if before else ()))
    return PollResult(items)


@service.poll_trigger(
    "task_completed",
    "Task completed",
    "Fires when a task is checked off (each completion of a recurring task too).",
    params=[_PROJECT],
    fields=[
        Field("task_id", "Task id", "6X7rM8997g3RQmvh"),
        Field("content", "Task", "Buy potting soil"),
        Field("project_id", "Project id", "6Jf8VQXxpwv56VQ7"),
        Field("completed_at", "Completed at (UTC, ISO 8601)", "2026-11-22T10:41:06.000000Z"),
        Field("url", "Address", "https://app.todoist.com/app/task/6X7rM8997g3RQmvh"),
    ],
    default_interval=300,
    min_interval=30,
)
async def task_completed(ctx: PollContext) -> PollResult:
    session = ctx.require_account(service)
    project = await _project(ctx, session)
    # A read of a window of completion times, [since, until], page by page. One that has
    # more pages than a check reads is taken up again from its cursor by the next check.
    sweep = ctx.state.get("sweep")
    if isinstance(sweep, dict) and sweep.get("cursor"):
        since, until, cursor = str(sweep["since"]), str(sweep["until"]), str(sweep["cursor"])
    else:
        now = _now()
        start = _when(ctx.state.get("since")) or now - FIRST_LOOKBACK
        since, until, cursor = _stamp(max(start, now - LONGEST_RANGE, V9_GONE)), _stamp(now), None
    query = {"since": since, "until": until}
    if project:
        query["project_id"] = project
    path = f"{API}/tasks/completed/by_completion_date"
    try:
        done, more = await _pages(session, path, "completed tasks", query, "items", cursor)
    except PermanentError:
        if cursor is None:
            raise
        # The cursor lapsed: read the window again from its start (what fired stays seen).
        done, more = await _pages(session, path, "completed tasks", query, "items")
    if more:
        ctx.state["sweep"] = {"since": since, "until": until, "cursor": more}
    else:
        ctx.state.pop("sweep", None)
        ctx.state["since"] = _stamp((_when(until) or _now()) - OVERLAP)
    items = []
    for task in done:
        task_id = str(task["id"])
        completed_at = task.get("completed_at")
        items.append(
            Item(
                # A recurring task is completed again and again under one task id.
                f"{task_id}@{completed_at}",
                {
                    "task_id": task_id,
                    "content": task.get("content") or "",
                    "project_id": task.get("project_id"),
                    "completed_at": completed_at,
                    "url": TASK_URL + quote(task_id, safe=""),
                },
                at=_when(completed_at),
            )
        )
    items.sort(key=lambda i: str(i.data["completed_at"] or ""), reverse=True)
    return PollResult(items)


@service.poll_trigger(
    "task_due_today",
    "Task due today",
    "Fires once a day for each open task due today (in Todoist's own idea of “today”, "
    "your account's time zone); overdue tasks too if you choose.",
    params=[
        _PROJECT,
        Param(
            "overdue",
            ParamType.BOOL,
            "Include overdue",
            help="Also fire for open tasks whose due date has passed.",
            required=False,
            default=False,
            example=True,
        ),
    ],
    fields=_TASK_FIELDS,
    default_interval=900,
    min_interval=60,
)
async def task_due_today(ctx: PollContext) -> PollResult:
    session = ctx.require_account(service)
    project = await _project(ctx, session)
    query = {"query": "today | overdue" if ctx.params.get("overdue") else "today"}
    tasks = await _open_tasks(session, f"{API}/tasks/filter", "tasks due today", query,
                              "leave overdue tasks out, or reschedule some of them")
    tasks = [t for t in tasks if not project or str(t.get("project_id")) == project]
    old = await _old_ids(ctx, session, tasks)
    items = []
    for task in tasks:
        fields = _task(task)
        before = old.get(fields["id"])
        # Keyed by day: a task still due tomorrow (or recurring) fires again then.
        items.append(Item(f"{fields['id']}@{fields['due']}", fields,
                          aliases=(f"{before}@{fields['due']}",) if before else ()))
    return PollResult(items)


# ---------------------------------------------------------------------- reactions


@service.reaction(
    "create_task",
    "Create a task",
    "Adds a task to Todoist as your account.",
    params=[
        Param(
            "content",
            ParamType.TEXT,
            "Task",
            help="The task's name (Todoist's Markdown works).",
            example="Reply to {{ trigger.author }}",
        ),
        Param(
            "description",
            ParamType.MULTILINE,
            "Description",
            help="Notes shown under the task.",
            required=False,
            example="{{ trigger.url }}",
        ),
        Param(
            "project_id",
            ParamType.TEXT,
            "Project id",
            help="The project to add it to (the code at the end of its address). "
            "Empty: your Inbox.",
            required=False,
            example="6Jf8VQXxpwv56VQ7",
        ),
        Param(
            "labels",
            ParamType.LIST,
            "Labels",
            help="Label names separated by commas (new ones are created).",
            required=False,
            example="garden, from-hookline",
        ),
        Param(
            "priority",
            ParamType.INTEGER,
            "Priority",
            help="1 normal, 2, 3, 4 urgent (Todoist shows 4 as “P1”).",
            required=False,
            default=1,
            minimum=1,
            maximum=4,
            example=4,
        ),
        Param(
            "due_string",
            ParamType.TEXT,
            "Due",
            help="When it is due, in words Todoist understands (English).",
            required=False,
            example="tomorrow at 9am",
        ),
    ],
    fields=[
        Field("id", "Task id", "6X7rM8997g3RQmvh"),
        Field("url", "Address", "https://app.todoist.com/app/task/6X7rM8997g3RQmvh"),
        Field("content", "Task", "Reply to Marta"),
    ],
    retry=False,
)
async def create_task(ctx: ReactionContext) -> Mapping[str, Any]:
    session = ctx.require_account(service)
    body: dict[str, Any] = {"content": str(ctx.params["content"]).strip()}
    project = await _project(ctx, session)
    if project:
        body["project_id"] = project
    for name in ("description", "due_string"):
        if ctx.params.get(name):
            body[name] = ctx.params[name]
    if ctx.params.get("labels"):
        body["labels"] = [str(label).lstrip("@") for label in ctx.params["labels"]]
    if ctx.params.get("priority"):
        body["priority"] = int(ctx.params["priority"])
    resp = await session.post(_url(f"{API}/tasks"), json_body=body, check=False)
    _check(resp, f"project {project}" if project else "your tasks")
    data = _object(resp, "the new task")
    task_id = str(data.get("id"))
    return {"id": task_id, "url": TASK_URL + quote(task_id, safe=""),
            "content": data.get("content")}


@service.reaction(
    "complete_task",
    "Complete a task",
    "Checks off a task (a recurring one moves to its next date).",
    params=[
        Param(
            "task_id",
            ParamType.TEXT,
            "Task id",
            help="The task's id, e.g. {{ trigger.id }} from a Todoist trigger, or the code "
            "at the end of its address.",
            example="6X7rM8997g3RQmvh",
            templated=True,
        ),
    ],
    fields=[Field("task_id", "Task id", "6X7rM8997g3RQmvh")],
)
async def complete_task(ctx: ReactionContext) -> Mapping[str, Any]:
    how = "{{ trigger.id }} or the code at the end of the task's address"
    task_id = _plain_id(ctx.params, "task_id", "task", how)
    if not task_id:
        raise PermanentError(f"'' is not a Todoist task id: use {how}")
    session = ctx.require_account(service)
    task_id = await _v1_id(session, "tasks", task_id, "task")
    resp = await session.post(_url(f"{API}/tasks/{task_id}/close"), check=False)
    _check(resp, f"task {task_id}")
    return {"task_id": task_id}
