"""Todoist: new, completed and due-today tasks; create and complete tasks as your account."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from engine import (
    ApiKeySpec,
    AuthKind,
    Field,
    Item,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    ReactionContext,
    Service,
)

if TYPE_CHECKING:
    from engine import HttpClient, HttpResponse

REST = "/rest/v2"
SYNC = "/sync/v9"
COMPLETED_LIMIT = 50
DESCRIPTION_LENGTH = 10_000


async def _whoami(http: HttpClient, token: str) -> str:
    """The full name (or e-mail) of the account a token belongs to."""
    resp = await http.post(
        _url(f"{SYNC}/sync"),
        headers={"Authorization": f"Bearer {token}"},
        data={"sync_token": "*", "resource_types": '["user"]'},
        check=False,
    )
    _check(resp, "your user profile")
    user = _object(resp, "your user profile").get("user") or {}
    return str(user.get("full_name") or user.get("email") or "Todoist")


service = Service(
    "todoist",
    "Todoist",
    "New, completed and due-today tasks in Todoist; create and complete tasks as your "
    "Todoist account.",
    icon="todoist.svg",
    auth=AuthKind.API_KEY,
    api_base_url="https://api.todoist.com",
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
    help="Only tasks of this project: the number at the end of the project's address in "
    "Todoist (app.todoist.com/app/project/…-2203306141). Empty: every project.",
    required=False,
    example="2203306141",
)
_TASK_FIELDS = [
    Field("id", "Task id", "2995104339"),
    Field("content", "Task", "Buy potting soil"),
    Field("description", "Description", "The peat-free one."),
    Field("project_id", "Project id", "2203306141"),
    Field("labels", "Labels", ["garden"]),
    Field("priority", "Priority (1 normal … 4 urgent)", 1),
    Field("due", "Due date (YYYY-MM-DD)", "2026-11-23"),
    Field("due_string", "Due, as written", "tomorrow"),
    Field("url", "Address", "https://app.todoist.com/app/task/2995104339"),
    Field("created_at", "Created at (UTC, ISO 8601)", "2026-11-22T08:12:03.000000Z"),
]


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Todoist answer that is not a success."""
    from engine import raise_for_provider  # loads aiohttp: not when the catalog is read

    raise_for_provider(
        resp, "Todoist", what, not_found_hint="check the id",
        unauthorized="Todoist refused the API token: copy it again from Settings → "
        "Integrations → Developer and update the account in Hookline",
    )


def _object(resp: HttpResponse, what: str) -> dict[str, Any]:
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"Todoist answered {what} with something unexpected")
    return data


async def _get(ctx: PollContext, path: str, what: str, query: Mapping[str, str]) -> Any:
    resp = await ctx.require_account(service).get(_url(path), params=dict(query), check=False)
    _check(resp, what)
    return resp.json()


def _cut(text: Any) -> str:
    value = str(text or "")
    return value if len(value) <= DESCRIPTION_LENGTH else value[:DESCRIPTION_LENGTH] + "…"


def _task(task: Mapping[str, Any]) -> dict[str, Any]:
    due = task.get("due") if isinstance(task.get("due"), dict) else {}
    return {
        "id": str(task.get("id")),
        "content": task.get("content") or "",
        "description": _cut(task.get("description")),
        "project_id": task.get("project_id"),
        "labels": list(task.get("labels") or []),
        "priority": task.get("priority"),
        "due": (due or {}).get("date"),
        "due_string": (due or {}).get("string"),
        "url": task.get("url"),
        "created_at": task.get("created_at"),
    }


def _tasks(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise PermanentError("Todoist answered the tasks with something that is not a list")
    tasks = [t for t in data if isinstance(t, dict) and t.get("id") is not None]
    # Newest first (the API lists them in project order).
    return sorted(tasks, key=lambda t: str(t.get("created_at") or ""), reverse=True)


def _project_query(params: Mapping[str, Any]) -> dict[str, str]:
    project = str(params.get("project_id") or "").strip()
    if project and not project.isalnum():
        raise PermanentError(
            f"{project!r} is not a Todoist project id: use the number (or code) at the end "
            "of the project's address"
        )
    return {"project_id": project} if project else {}


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
    query = _project_query(ctx.params)
    label = str(ctx.params.get("label") or "").strip().lstrip("@")
    if label:
        query["label"] = label
    data = await _get(ctx, f"{REST}/tasks", "tasks", query)
    return PollResult([Item(str(t["id"]), _task(t)) for t in _tasks(data)])


@service.poll_trigger(
    "task_completed",
    "Task completed",
    "Fires when a task is checked off (each completion of a recurring task too).",
    params=[_PROJECT],
    fields=[
        Field("task_id", "Task id", "2995104339"),
        Field("content", "Task", "Buy potting soil"),
        Field("project_id", "Project id", "2203306141"),
        Field("completed_at", "Completed at (UTC, ISO 8601)", "2026-11-22T10:41:06.000000Z"),
        Field("url", "Address", "https://app.todoist.com/app/task/2995104339"),
    ],
    default_interval=300,
    min_interval=30,
)
async def task_completed(ctx: PollContext) -> PollResult:
    query = {"limit": str(COMPLETED_LIMIT), **_project_query(ctx.params)}
    data = await _get(ctx, f"{SYNC}/completed/get_all", "completed tasks", query)
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise PermanentError("Todoist answered the completed tasks with something unexpected")
    items = []
    for entry in data["items"]:
        if not isinstance(entry, dict) or entry.get("task_id") is None:
            continue
        task_id = str(entry["task_id"])
        completed_at = entry.get("completed_at")
        items.append(
            Item(
                # A recurring task is completed again and again under one task id.
                str(entry.get("id") or f"{task_id}@{completed_at}"),
                {
                    "task_id": task_id,
                    "content": entry.get("content") or "",
                    "project_id": entry.get("project_id"),
                    "completed_at": completed_at,
                    "url": f"https://app.todoist.com/app/task/{quote(task_id)}",
                },
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
    query = {"filter": "today | overdue" if ctx.params.get("overdue") else "today"}
    project = _project_query(ctx.params).get("project_id")
    data = await _get(ctx, f"{REST}/tasks", "tasks due today", query)
    items = []
    for task in _tasks(data):
        if project and str(task.get("project_id")) != project:
            continue
        fields = _task(task)
        # Keyed by day: a task still due tomorrow (or recurring) fires again then.
        items.append(Item(f"{fields['id']}@{fields['due']}", fields))
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
            help="The project to add it to (the number at the end of its address). "
            "Empty: your Inbox.",
            required=False,
            example="2203306141",
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
        Field("id", "Task id", "2995104339"),
        Field("url", "Address", "https://app.todoist.com/app/task/2995104339"),
        Field("content", "Task", "Reply to Marta"),
    ],
    retry=False,
)
async def create_task(ctx: ReactionContext) -> Mapping[str, Any]:
    body: dict[str, Any] = {"content": str(ctx.params["content"]).strip()}
    body.update(_project_query(ctx.params))
    for name in ("description", "due_string"):
        if ctx.params.get(name):
            body[name] = ctx.params[name]
    if ctx.params.get("labels"):
        body["labels"] = [str(label).lstrip("@") for label in ctx.params["labels"]]
    if ctx.params.get("priority"):
        body["priority"] = int(ctx.params["priority"])
    resp = await ctx.require_account(service).post(_url(f"{REST}/tasks"), json_body=body,
                                                   check=False)
    _check(resp, f"project {body['project_id']}" if "project_id" in body else "your tasks")
    data = _object(resp, "the new task")
    return {"id": str(data.get("id")), "url": data.get("url"), "content": data.get("content")}


@service.reaction(
    "complete_task",
    "Complete a task",
    "Checks off a task (a recurring one moves to its next date).",
    params=[
        Param(
            "task_id",
            ParamType.TEXT,
            "Task id",
            help="The task's id, e.g. {{ trigger.id }} from a Todoist trigger, or the number "
            "at the end of its address.",
            example="2995104339",
            templated=True,
        ),
    ],
    fields=[Field("task_id", "Task id", "2995104339")],
)
async def complete_task(ctx: ReactionContext) -> Mapping[str, Any]:
    task_id = str(ctx.params.get("task_id") or "").strip()
    if not task_id.isalnum():
        raise PermanentError(
            f"{task_id!r} is not a Todoist task id: use {{{{ trigger.id }}}} or the number at "
            "the end of the task's address"
        )
    resp = await ctx.require_account(service).post(_url(f"{REST}/tasks/{task_id}/close"),
                                                   check=False)
    _check(resp, f"task {task_id}")
    return {"task_id": task_id}
