"""Notion: new and changed pages in a database; add pages and text as your integration."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine import (
    ApiKeySpec,
    AuthError,
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
    TransientError,
    iso_time,
)

if TYPE_CHECKING:
    from engine import AccountSession, HttpClient, HttpResponse, OAuthClient

#: Databases hold data sources since 2025-09-03; https://developers.notion.com/docs/
#: upgrade-guide-2025-09-03 (read 2026-12-06).
NOTION_VERSION = "2025-09-03"
HEADERS = {"Notion-Version": NOTION_VERSION, "Accept": "application/json"}
#: Notion's largest page of query results.
PAGE_SIZE = 100
#: Queries one check makes at most; what is left waits for the next check, which goes on
#: from the cursor this one saved (so nothing is skipped and nothing comes twice).
MAX_QUERIES = 10
#: Notion's limit on the content of one rich-text object.
TEXT_CHUNK = 2000

_ID_RE = re.compile(
    r"([0-9a-fA-F]{8})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})-?"
    r"([0-9a-fA-F]{12})"
)


async def _whoami(http: HttpClient, token: str) -> str:
    """The workspace (or bot name) an integration secret belongs to."""
    resp = await http.get(
        _url("/users/me"), headers={**HEADERS, "Authorization": f"Bearer {token}"}, check=False
    )
    _check(resp, "the integration's own user")
    data = resp.json()
    bot = data.get("bot") if isinstance(data, dict) else None
    name = bot.get("workspace_name") if isinstance(bot, dict) else None
    return str(name or (data.get("name") if isinstance(data, dict) else None) or "Notion")



async def _revoke(session: AccountSession, client: OAuthClient) -> bool:
    """/v1/oauth/revoke: the public integration's id and secret authenticate the call
    (HTTP Basic), the body names the token to revoke."""
    resp = await session.http.post(
        _url("/oauth/revoke"),
        headers={**HEADERS, **client.basic_auth()},
        json_body={"token": await session.token()},
        check=False,
    )
    return resp.ok

service = Service(
    "notion",
    "Notion",
    "New and changed pages in Notion databases; create database pages and append text "
    "to pages as your Notion integration.",
    icon="notion.svg",
    auth=AuthKind.OAUTH2,
    api_base_url="https://api.notion.com/v1",
    oauth=OAuth2Spec(
        authorize_url="https://api.notion.com/v1/oauth/authorize",
        token_url="https://api.notion.com/v1/oauth/token",  # noqa: S106 - an address
        extra_authorize_params={"owner": "user"},
        # Notion matches the redirect URI exactly and wants HTTP Basic client auth.
        fixed_port=17573,
        # Notion documents no PKCE: its authorization guide and "Create a token"
        # (developers.notion.com/reference/create-a-token, read 2026-12-06) take no
        # code_challenge or code_verifier, nor does the SDK's oauth.token.
        pkce=False,
        client_secret_required=True,
        client_auth="basic",
        revoke=_revoke,
        userinfo=_whoami,
        register_url="https://www.notion.so/profile/integrations",
        client_help="(Notion: https://www.notion.so/profile/integrations → New integration "
        "→ type Public; its OAuth client ID and secret are on the Configuration tab)",
    ),
    api_key=ApiKeySpec(
        "Internal integration secret",
        "Create an internal integration at https://www.notion.so/profile/integrations "
        "(capabilities: Read content, Insert content, Update content) and copy its secret "
        "(it starts with ntn_ or secret_). Then share each database or page with it: "
        "open the page, ••• → Connections → add the integration. (Or connect through "
        "the browser with your own public integration.)",
        userinfo=_whoami,
    ),
)

_DATABASE = Param(
    "database",
    ParamType.TEXT,
    "Database",
    help="The database's address (Share → Copy link) or its 32-character id. The "
    "database must be shared with the integration (••• → Connections).",
    example="https://www.notion.so/marta/3f1c2b5e9a7d4c0e8b6a1d2f4e5c7a90?v=1b2c",
)
_DATA_SOURCE = Param(
    "data_source",
    ParamType.TEXT,
    "Data source",
    help="Only for a database with more than one data source: the name of the one to "
    "use, or its id (database ••• → Manage data sources → ••• → Copy data source ID). "
    "Empty: the database's only data source.",
    required=False,
    example="Tasks",
)
_PAGE = Param(
    "page",
    ParamType.TEXT,
    "Page",
    help="The page's address or its 32-character id (a template such as "
    "{{ reactions[0].id }} works too). It must be shared with the integration.",
    example="https://www.notion.so/Garden-log-8d2e4f6a1b3c4d5e9f0a1b2c3d4e5f60",
    templated=True,
)


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _notion_id(value: Any, what: str) -> str:
    """The dashed UUID in an id or a notion.so address (the last one in it, as Notion's
    addresses end with the id and may carry a ``?v=`` view id after it)."""
    text = str(value or "").strip()
    path = text.split("?", 1)[0].split("#", 1)[0]
    found = _ID_RE.findall(path)
    if not found:
        raise PermanentError(
            f"{text!r} is not a Notion {what}: paste its address (Share → Copy link) "
            "or its 32-character id"
        )
    return "-".join(found[-1]).lower()


def _message(resp: HttpResponse) -> str:
    try:
        data = resp.json()
    except PermanentError:
        return ""
    return str(data.get("message") or "") if isinstance(data, dict) else ""


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Notion answer that is not a success."""
    status = resp.status
    if status < 300:
        return
    message = _message(resp)
    said = f": {message}" if message else ""
    if status == 429:
        wait = resp.retry_after()
        when = f"; try again in {wait:.0f} s" if wait is not None else ""
        raise RateLimited(f"Notion's rate limit is used up{when}", wait)
    if status == 401:
        raise AuthError(
            f"Notion refused the integration secret{said}: add a new one in Hookline "
            "(`hookline accounts token notion`)"
        )
    if status == 403:
        raise AuthError(
            f"the integration may not do this to {what}{said}. Give it the Insert and "
            "Update content capabilities at https://www.notion.so/profile/integrations"
        )
    if status == 404:
        raise PermanentError(
            f"Notion has no {what}, or it is not shared with the integration: open it in "
            "Notion, ••• → Connections → add the integration"
        )
    if status >= 500:
        raise TransientError(f"Notion had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"Notion refused the request for {what}{said}")


async def _call(
    ctx: PollContext | ReactionContext, method: str, path: str, what: str, body: Any
) -> dict[str, Any]:
    resp = await ctx.require_account(service).request(
        method, _url(path), headers=HEADERS, json_body=body, check=False
    )
    _check(resp, what)
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"Notion answered for {what} with something that is not an object")
    return data


def _plain(rich: Any) -> str:
    if not isinstance(rich, list):
        return ""
    return "".join(str(r.get("plain_text") or "") for r in rich if isinstance(r, dict))


def _value(prop: Any) -> str:
    """A page property's value as text (what a user sees in the cell)."""
    if not isinstance(prop, dict):
        return ""
    kind = str(prop.get("type") or "")
    value = prop.get(kind)
    if kind in ("title", "rich_text"):
        return _plain(value)
    if kind in ("select", "status"):
        return str(value.get("name") or "") if isinstance(value, dict) else ""
    if kind == "multi_select":
        return ", ".join(str(v.get("name")) for v in value or [] if isinstance(v, dict))
    if kind == "people":
        return ", ".join(
            str(v.get("name") or v.get("id")) for v in value or [] if isinstance(v, dict)
        )
    if kind == "relation":
        return ", ".join(str(v.get("id")) for v in value or [] if isinstance(v, dict))
    if kind == "date":
        if not isinstance(value, dict):
            return ""
        end = value.get("end")
        return str(value.get("start") or "") + (f" → {end}" if end else "")
    if kind == "checkbox":
        return "true" if value else "false"
    if kind == "formula" and isinstance(value, dict):
        return _value(value)
    if kind == "unique_id" and isinstance(value, dict):
        prefix = value.get("prefix")
        return f"{prefix}-{value.get('number')}" if prefix else str(value.get("number"))
    if kind in ("created_by", "last_edited_by") and isinstance(value, dict):
        return str(value.get("name") or value.get("id") or "")
    if kind == "files":
        return ", ".join(str(v.get("name")) for v in value or [] if isinstance(v, dict))
    return "" if value is None else str(value)


def _page_data(page: Mapping[str, Any], source: _Source) -> dict[str, Any]:
    props = page.get("properties") or {}
    values = {str(name): _value(prop) for name, prop in props.items()}
    title = next(
        (values[n] for n, p in props.items() if isinstance(p, dict) and p.get("type") == "title"),
        "",
    )
    return {
        "id": page.get("id"),
        "url": page.get("url"),
        "title": title,
        "properties": values,
        "created_time": page.get("created_time"),
        "last_edited_time": page.get("last_edited_time"),
        "database_id": source.database,
        "data_source_id": source.id,
    }


# ---------------------------------------------------------------------- data sources


@dataclass(frozen=True)
class _Source:
    """The data source (table) of a database that a step reads or adds to."""

    database: str
    id: str
    name: str


def _same_id(text: str, notion_id: str) -> bool:
    found = _ID_RE.fullmatch(text.strip())
    return found is not None and "-".join(found.groups()).lower() == notion_id.lower()


async def _data_source(ctx: PollContext | ReactionContext) -> _Source:
    """The data source the step's database and ``data_source`` choose: the database's
    only one, or the one named (by name or id) when it has several."""
    database = _notion_id(ctx.params["database"], "database")
    data = await _call(ctx, "GET", f"/databases/{database}", f"database {database}", None)
    title = _plain(data.get("title")) or database
    sources = [
        _Source(database, str(s["id"]), str(s.get("name") or ""))
        for s in data.get("data_sources") or []
        if isinstance(s, dict) and s.get("id")
    ]
    listed = ", ".join(f"“{s.name}” ({s.id})" for s in sources)
    wanted = str(ctx.params.get("data_source") or "").strip()
    if wanted:
        chosen = [s for s in sources if _same_id(wanted, s.id)] or [
            s for s in sources if s.name.casefold() == wanted.casefold()
        ]
        if len(chosen) == 1:
            return chosen[0]
        if chosen:
            raise PermanentError(
                f"the database “{title}” has {len(chosen)} data sources called “{wanted}”: "
                f"set Data source (data_source) to the id of the one to use: {listed}"
            )
        raise PermanentError(
            f"the database “{title}” has no data source “{wanted}”: set Data source "
            f"(data_source) to one of {listed}"
        )
    if len(sources) == 1:
        return sources[0]
    if not sources:
        raise PermanentError(
            f"Notion shows no data source in the database “{title}”: share the database "
            "itself with the integration (••• → Connections), not only a view of it"
        )
    raise PermanentError(
        f"the database “{title}” has {len(sources)} data sources: {listed}. Set Data "
        "source (data_source) to the name or id of the one to use"
    )


def _pages_in(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    results = data.get("results")
    if not isinstance(results, list):
        raise PermanentError("Notion answered the data source query without a list of pages")
    return [p for p in results if isinstance(p, dict) and p.get("object") == "page"]


async def _query(ctx: PollContext, source: _Source, body: dict[str, Any]) -> dict[str, Any]:
    return await _call(
        ctx, "POST", f"/data_sources/{source.id}/query", f"data source “{source.name}”", body
    )


#: Where a data source that had no pages at the first check is read from next time.
_BEGINNING = "1970-01-01T00:00:00.000Z"


def _latest(pages: list[dict[str, Any]], timestamp: str) -> str | None:
    """The newest ``timestamp`` among ``pages``, as Notion wrote it."""
    times = [(at, str(p[timestamp])) for p in pages if (at := iso_time(p.get(timestamp)))]
    return max(times)[1] if times else None


async def _pages(ctx: PollContext, timestamp: str) -> tuple[_Source, list[dict[str, Any]]]:
    """The data source's pages created (or edited, by ``timestamp``) since the last check.

    ``ctx.state`` keeps the data source, the newest time seen (``since``) and, when a check
    stopped after MAX_QUERIES queries, the cursor to go on from. The first check, and the
    first after an upgrade (its state has none of this), reads the newest pages."""
    source = await _data_source(ctx)
    state = ctx.state
    since = state.get("since") if state.get("data_source") == source.id else None
    if ctx.dry_run or not since:
        body = {"sorts": [{"timestamp": timestamp, "direction": "descending"}],
                "page_size": PAGE_SIZE}
        pages = _pages_in(await _query(ctx, source, body))
        if not ctx.dry_run:
            state.clear()
            state.update(data_source=source.id, since=_latest(pages, timestamp) or _BEGINNING)
        return source, _live(pages)
    return source, _live(await _since(ctx, source, timestamp, str(since)))


async def _since(
    ctx: PollContext, source: _Source, timestamp: str, since: str
) -> list[dict[str, Any]]:
    """The pages whose ``timestamp`` is ``since`` or later, oldest first, from the saved
    cursor on; saves the cursor to go on from, or the newest time once all are read.
    Notion's times are to the minute: "on or after" reads the last minute again, and the
    engine knows those pages by their keys."""
    state = ctx.state
    cursor = state.get("cursor")
    pages: list[dict[str, Any]] = []
    capped = False
    for _ in range(MAX_QUERIES):
        body = {
            "filter": {"timestamp": timestamp, timestamp: {"on_or_after": since}},
            "sorts": [{"timestamp": timestamp, "direction": "ascending"}],
            "page_size": PAGE_SIZE,
        }
        if cursor:
            body["start_cursor"] = cursor
        try:
            data = await _query(ctx, source, body)
        except PermanentError:
            if not cursor or pages:
                raise
            # A cursor Notion no longer takes: read from ``since`` again (what was
            # read already is known by its keys and does not fire twice).
            ctx.log.info("Notion refused the saved cursor of data source %r; reading "
                         "from %s again", source.name, since)
            del body["start_cursor"]
            data = await _query(ctx, source, body)
        pages += _pages_in(data)
        status = data.get("request_status")
        capped = capped or (isinstance(status, dict) and status.get("type") == "incomplete")
        cursor = str(data.get("next_cursor") or "") if data.get("has_more") else None
        if not cursor:
            break
    if cursor:
        state["cursor"] = cursor
        return pages
    state.pop("cursor", None)
    state["since"] = _latest(pages, timestamp) or since
    if capped and state["since"] == since:
        # One query stops at 10,000 results (developers.notion.com/guides/data-apis/
        # query-large-data-sources): more pages than that with one time cannot be read.
        ctx.log.warning(
            "Notion gave only 10,000 of the pages of data source %r with the time %s; "
            "the others will not fire", source.name, since)
    return pages


def _live(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pages if not p.get("archived") and not p.get("in_trash")]


_PAGE_FIELDS = [
    Field("id", "Page id", "8d2e4f6a-1b3c-4d5e-9f0a-1b2c3d4e5f60"),
    Field(
        "url", "Address", "https://www.notion.so/Repot-the-basil-8d2e4f6a1b3c4d5e9f0a1b2c3d4e5f60"
    ),
    Field("title", "Title", "Repot the basil"),
    Field(
        "properties",
        "All properties (name → text)",
        {"Name": "Repot the basil", "Status": "In progress"},
    ),
    Field("created_time", "Created at (UTC, ISO 8601)", "2025-03-14T09:26:00.000Z"),
    Field("last_edited_time", "Last edited at (UTC, ISO 8601)", "2025-03-15T18:02:00.000Z"),
    Field("database_id", "Database id", "3f1c2b5e-9a7d-4c0e-8b6a-1d2f4e5c7a90"),
    Field("data_source_id", "Data source id", "7a4e1c9b-2d3f-4a5b-8c6d-9e0f1a2b3c4d"),
]


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_page_in_database",
    "New page in a database",
    "Fires for each new page (row) in a Notion database shared with the integration.",
    params=[_DATABASE, _DATA_SOURCE],
    fields=_PAGE_FIELDS,
    default_interval=300,
    min_interval=60,
)
async def new_page_in_database(ctx: PollContext) -> PollResult:
    source, pages = await _pages(ctx, "created_time")
    return PollResult([
        Item(str(p["id"]), _page_data(p, source), at=iso_time(p.get("created_time")))
        for p in pages
    ])


@service.poll_trigger(
    "page_property_changed",
    "Page changed in a database",
    "Fires when a page in a Notion database is edited, or, with a property chosen, when "
    "that property takes a value it has not had before on that page.",
    params=[
        _DATABASE,
        _DATA_SOURCE,
        Param(
            "property",
            ParamType.TEXT,
            "Only when this property changes",
            help="The property's name as in the database's column header. Empty: any edit.",
            required=False,
            example="Status",
        ),
    ],
    fields=[*_PAGE_FIELDS, Field("value", "The chosen property's value now", "Done")],
    default_interval=300,
    min_interval=60,
)
async def page_property_changed(ctx: PollContext) -> PollResult:
    source, pages = await _pages(ctx, "last_edited_time")
    wanted = str(ctx.params.get("property") or "").strip()
    items = []
    for page in pages:
        data = _page_data(page, source)
        edited = page.get("last_edited_time")
        if not wanted:
            data["value"] = ""
            items.append(Item(f"{page['id']}@{edited}", data, at=iso_time(edited)))
            continue
        if wanted not in data["properties"]:
            raise PermanentError(
                f"the database has no property {wanted!r}: write the name as in its column "
                f"header (it has: {', '.join(sorted(data['properties']))})"
            )
        data["value"] = data["properties"][wanted]
        items.append(Item(f"{page['id']}#{wanted}={data['value']}", data, at=iso_time(edited)))
    return PollResult(items)


# ---------------------------------------------------------------------- reactions


def _rich_text(text: str) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": {"content": text[i : i + TEXT_CHUNK]}}
        for i in range(0, len(text), TEXT_CHUNK)
    ]


def _paragraphs(text: str) -> list[dict[str, Any]]:
    """One paragraph block per paragraph (blank-line separated) of ``text``."""
    blocks = []
    for part in re.split(r"\n\s*\n", text.strip()):
        if part.strip():
            blocks.append(
                {
                    "object": "block",
                    "type": "paragraph",
                    "paragraph": {"rich_text": _rich_text(part.strip())},
                }
            )
    return blocks[:100]  # Notion takes at most 100 blocks per request


@service.reaction(
    "create_database_page",
    "Create a database page",
    "Adds a page (row) to a Notion database, with a title, optional properties and text.",
    params=[
        _DATABASE,
        _DATA_SOURCE,
        Param(
            "title",
            ParamType.TEXT,
            "Title",
            help="The page's title (its Name column).",
            example="Sensor 3 went offline",
        ),
        Param(
            "properties",
            ParamType.MULTILINE,
            "Other properties (JSON)",
            help="Property values in Notion's API format, as a JSON object keyed by "
            "property name. Empty: only the title.",
            required=False,
            example='{"Status": {"select": {"name": "To do"}}, "Due": {"date": {"start": '
            '"2025-03-20"}}}',
        ),
        Param(
            "content",
            ParamType.MULTILINE,
            "Page text",
            help="Text for the page's body; blank lines start new paragraphs.",
            required=False,
            example="Seen at {{ trigger.fired_at }}.",
        ),
    ],
    fields=[
        Field("id", "Page id", "8d2e4f6a-1b3c-4d5e-9f0a-1b2c3d4e5f60"),
        Field("url", "Address", "https://www.notion.so/Sensor-3-went-offline-8d2e4f6a1b3c"),
    ],
    retry=False,
)
async def create_database_page(ctx: ReactionContext) -> Mapping[str, Any]:
    _notion_id(ctx.params["database"], "database")  # a bad address is said before any call
    properties: dict[str, Any] = {}
    raw = str(ctx.params.get("properties") or "").strip()
    if raw:
        try:
            properties = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PermanentError(
                f"the properties are not valid JSON ({exc.msg} at "
                f"line {exc.lineno}): write a JSON object"
            ) from None
        if not isinstance(properties, dict):
            raise PermanentError('the properties must be a JSON object, e.g. {"Status": ...}')
    # The title property's id is always "title", whatever the column is called.
    properties["title"] = {"title": _rich_text(str(ctx.params["title"]))}
    source = await _data_source(ctx)
    body: dict[str, Any] = {
        "parent": {"type": "data_source_id", "data_source_id": source.id},
        "properties": properties,
    }
    children = _paragraphs(str(ctx.params.get("content") or ""))
    if children:
        body["children"] = children
    data = await _call(ctx, "POST", "/pages", f"data source “{source.name}”", body)
    return {"id": data.get("id"), "url": data.get("url")}


@service.reaction(
    "append_text",
    "Append text to a page",
    "Adds text at the end of a Notion page, as paragraphs.",
    params=[
        _PAGE,
        Param(
            "text",
            ParamType.MULTILINE,
            "Text",
            help="What to add; blank lines start new paragraphs.",
            example="{{ trigger.title }} — {{ trigger.url }}",
        ),
    ],
    fields=[
        Field("block_ids", "Ids of the added paragraphs", ["c02fc1d3-db8b-45c5-a222-27595b15aea7"])
    ],
    retry=False,
)
async def append_text(ctx: ReactionContext) -> Mapping[str, Any]:
    page = _notion_id(ctx.params["page"], "page")
    children = _paragraphs(str(ctx.params.get("text") or ""))
    if not children:
        raise PermanentError("the text is empty: give something to append")
    data = await _call(
        ctx, "PATCH", f"/blocks/{page}/children", f"page {page}", {"children": children}
    )
    results = data.get("results") or []
    return {"block_ids": [b.get("id") for b in results if isinstance(b, dict)]}
