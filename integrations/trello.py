"""Trello: new cards, moved cards and comments on a board; create cards and comment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from engine import (
    ApiKeySpec,
    AuthError,
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
    iso_time,
)

if TYPE_CHECKING:
    from engine import HttpClient, HttpResponse

ACTIONS_LIMIT = 50
TEXT_LENGTH = 10_000

_ID_RE = re.compile(r"^(?:[A-Za-z0-9]{8}|[0-9a-fA-F]{24})$")
_LIST_ID_RE = re.compile(r"^[0-9a-fA-F]{24}$")
_BOARD_URL_RE = re.compile(r"trello\.com/b/([A-Za-z0-9]{8})")
_CARD_URL_RE = re.compile(r"trello\.com/c/([A-Za-z0-9]{8})")


def _auth_header(secret: str) -> dict[str, str]:
    """Trello's documented header for an API key and a user token (``KEY:TOKEN``)."""
    key, sep, token = secret.strip().partition(":")
    if not sep or not key or not token:
        raise AuthError(
            "the Trello secret must be your API key and your token joined by a colon "
            "(KEY:TOKEN): add it again with `hookline accounts token trello`"
        )
    return {"Authorization": f'OAuth oauth_consumer_key="{key}", oauth_token="{token}"'}


async def _whoami(http: HttpClient, secret: str) -> str:
    """The username the key and token act as."""
    resp = await http.get(_url("/members/me"), headers=_auth_header(secret), check=False)
    _check(resp, "your member profile")
    data = _object(resp, "your member profile")
    return str(data.get("username") or data.get("fullName") or "Trello")


service = Service(
    "trello",
    "Trello",
    "New cards, cards moved between lists and new comments on a Trello board; create cards "
    "and comment as your Trello account.",
    icon="trello.svg",
    auth=AuthKind.API_KEY,
    api_base_url="https://api.trello.com/1",
    api_key=ApiKeySpec(
        "API key and token (KEY:TOKEN)",
        "Trello needs two values; paste them together as KEY:TOKEN. Create a Power-Up at "
        "https://trello.com/power-ups/admin, open its API key tab and copy the API key; "
        "then follow the “Token” link there, allow access (read and write) and copy the "
        "token. Both stay in the OS keyring.",
        userinfo=_whoami,
        authorize=_auth_header,
    ),
)

_BOARD = Param(
    "board",
    ParamType.TEXT,
    "Board",
    help="The board's address (trello.com/b/…) or its id.",
    example="https://trello.com/b/nC8QJJoZ/garden",
)
_LIST_FIELD = Field("list_name", "List", "To do")
_CARD_FIELDS = [
    Field("card_id", "Card id", "5abbe4b7ddc1b351ef961414"),
    Field("card_name", "Card", "Buy potting soil"),
    Field("card_url", "Card address", "https://trello.com/c/Kl9DpVvB"),
]


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _id(value: Any, what: str, url_re: re.Pattern[str] | None = None) -> str:
    text = str(value or "").strip()
    if url_re is not None and (match := url_re.search(text)):
        return match.group(1)
    if not (_ID_RE if url_re is not None else _LIST_ID_RE).match(text):
        where = " (its address, or " if url_re is not None else " ("
        raise PermanentError(
            f"{text!r} is not a Trello {what} id: give the {what}{where}the id shown "
            "when you add .json to its address)"
        )
    return text


async def _request(
    ctx: PollContext | ReactionContext,
    method: str,
    path: str,
    what: str,
    query: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
) -> Any:
    # Sent with Trello's header (the service's authorize); a refused key or token marks
    # the account as needing a reconnect.
    resp = await ctx.require_account(service).request(
        method, _url(path), params=query, json_body=body, check=False
    )
    _check(resp, what)
    return resp.json()


def _message(resp: HttpResponse) -> str:
    text = resp.text()[:200].strip()
    if text.startswith("{"):
        try:
            data = resp.json()
        except PermanentError:
            return text
        if isinstance(data, dict):
            return str(data.get("message") or data.get("error") or "")
    return text


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Trello answer that is not a success."""
    from engine import raise_for_provider  # loads aiohttp: not when the catalog is read

    raise_for_provider(
        resp, "Trello", what, rate_scope="token", detail=_message,
        unauthorized="Trello refused the key or token for {what}{said}: check that the "
        "token allows read and write and that the account can see the board",
    )


def _object(resp: HttpResponse, what: str) -> dict[str, Any]:
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"Trello answered {what} with something unexpected")
    return data


def _list(data: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise PermanentError(f"Trello answered {what} with something that is not a list")
    return [d for d in data if isinstance(d, dict) and d.get("id")]


def _cut(text: Any) -> str:
    value = str(text or "")
    return value if len(value) <= TEXT_LENGTH else value[:TEXT_LENGTH] + "…"


def _card_url(card: Mapping[str, Any]) -> str | None:
    short = card.get("shortLink")
    return f"https://trello.com/c/{short}" if short else card.get("shortUrl") or card.get("url")


def _who(action: Mapping[str, Any]) -> str:
    member = action.get("memberCreator")
    return str(member.get("fullName") or member.get("username") or "") if member else ""


async def _actions(ctx: PollContext, kind: str) -> tuple[str, list[dict[str, Any]]]:
    board = _id(ctx.params.get("board"), "board", _BOARD_URL_RE)
    data = await _request(
        ctx,
        "GET",
        f"/boards/{quote(board)}/actions",
        f"board {board}",
        {"filter": kind, "limit": str(ACTIONS_LIMIT)},
    )
    return board, _list(data, "the board's activity")



# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_card_in_list",
    "New card in a list",
    "Fires for each card that appears in a list (added there or moved in).",
    params=[
        Param(
            "list_id",
            ParamType.TEXT,
            "List id",
            help="The list's id: open a card of the list, add .json to its address and copy "
            "its idList.",
            example="5abbe4b7ddc1b351ef961412",
        ),
    ],
    fields=[
        *_CARD_FIELDS,
        Field("description", "Description", "The peat-free one."),
        Field("labels", "Labels", ["garden"]),
        Field("due", "Due (UTC, ISO 8601)", "2026-11-23T09:00:00.000Z"),
        Field("list_id", "List id", "5abbe4b7ddc1b351ef961412"),
    ],
    default_interval=300,
    min_interval=30,
)
async def new_card_in_list(ctx: PollContext) -> PollResult:
    list_id = _id(ctx.params.get("list_id"), "list")
    data = await _request(
        ctx,
        "GET",
        f"/lists/{quote(list_id)}/cards",
        f"list {list_id}",
        {"fields": "id,name,desc,idList,labels,due,shortLink,shortUrl,url"},
    )
    # No time of their own for arriving in the list: newest first by creation (a card's
    # id starts with the time it was made), as the engine expects.
    cards = sorted(_list(data, "the cards"), key=lambda c: str(c["id"]), reverse=True)
    items = [
        # The card id with the list: a card moved out and back in fires again.
        Item(
            f"{card['id']}@{list_id}",
            {
                "card_id": card["id"],
                "card_name": card.get("name") or "",
                "card_url": _card_url(card),
                "description": _cut(card.get("desc")),
                "labels": [
                    label.get("name")
                    for label in card.get("labels") or []
                    if isinstance(label, dict)
                ],
                "due": card.get("due"),
                "list_id": list_id,
            },
        )
        for card in cards
    ]
    return PollResult(items)


@service.poll_trigger(
    "card_moved_to_list",
    "Card moved to a list",
    "Fires when a card on a board is moved to another list (or to the list you choose).",
    params=[
        _BOARD,
        Param(
            "list_name",
            ParamType.TEXT,
            "Into list",
            help="Only moves into the list with this name. Empty: every move on the board.",
            required=False,
            example="Done",
        ),
    ],
    fields=[
        *_CARD_FIELDS,
        Field("from_list", "From list", "Doing"),
        Field("to_list", "Into list", "Done"),
        Field("moved_by", "Moved by", "Marta Kowal"),
        Field("moved_at", "Moved at (UTC, ISO 8601)", "2026-11-22T10:41:06.190Z"),
    ],
    default_interval=300,
    min_interval=30,
)
async def card_moved_to_list(ctx: PollContext) -> PollResult:
    wanted = str(ctx.params.get("list_name") or "").strip().casefold()
    _board, actions = await _actions(ctx, "updateCard:idList")
    items = []
    for action in actions:
        data = action.get("data") or {}
        after, before = data.get("listAfter") or {}, data.get("listBefore") or {}
        card = data.get("card") or {}
        if not after or (wanted and str(after.get("name") or "").casefold() != wanted):
            continue
        items.append(
            Item(
                str(action["id"]),
                {
                    "card_id": card.get("id"),
                    "card_name": card.get("name") or "",
                    "card_url": _card_url(card),
                    "from_list": before.get("name"),
                    "to_list": after.get("name"),
                    "moved_by": _who(action),
                    "moved_at": action.get("date"),
                },
                at=iso_time(action.get("date")),
            )
        )
    return PollResult(items)


@service.poll_trigger(
    "new_comment",
    "New comment",
    "Fires for each new comment on a card of a board.",
    params=[_BOARD],
    fields=[
        *_CARD_FIELDS,
        Field("comment_id", "Comment id", "5abbe4b7ddc1b351ef961499"),
        Field("text", "Comment", "Bought it, 40 l."),
        Field("author", "Written by", "Marta Kowal"),
        Field("created_at", "Written at (UTC, ISO 8601)", "2026-11-22T10:41:06.190Z"),
    ],
    default_interval=300,
    min_interval=30,
)
async def new_comment(ctx: PollContext) -> PollResult:
    _board, actions = await _actions(ctx, "commentCard")
    items = []
    for action in actions:
        data = action.get("data") or {}
        card = data.get("card") or {}
        items.append(
            Item(
                str(action["id"]),
                {
                    "card_id": card.get("id"),
                    "card_name": card.get("name") or "",
                    "card_url": _card_url(card),
                    "comment_id": action["id"],
                    "text": _cut(data.get("text")),
                    "author": _who(action),
                    "created_at": action.get("date"),
                },
                at=iso_time(action.get("date")),
            )
        )
    return PollResult(items)


# ---------------------------------------------------------------------- reactions


@service.reaction(
    "create_card",
    "Create a card",
    "Adds a card to a list as your Trello account.",
    params=[
        Param(
            "list_id",
            ParamType.TEXT,
            "List id",
            help="The list's id (open a card of the list, add .json to its address and copy "
            "its idList).",
            example="5abbe4b7ddc1b351ef961412",
            templated=True,
        ),
        Param(
            "name", ParamType.TEXT, "Card", help="The card's title.", example="{{ trigger.title }}"
        ),
        Param(
            "description",
            ParamType.MULTILINE,
            "Description",
            help="Shown on the back of the card (Markdown).",
            required=False,
            example="{{ trigger.url }}",
        ),
        Param(
            "position",
            ParamType.CHOICE,
            "Position",
            help="Where in the list it goes.",
            required=False,
            default="top",
            choices=(("top", "Top"), ("bottom", "Bottom")),
            example="top",
        ),
        Param(
            "due",
            ParamType.TEXT,
            "Due",
            help="Due date and time, ISO 8601 (e.g. 2026-11-23T09:00:00Z). Empty: none.",
            required=False,
            example="2026-11-23T09:00:00Z",
        ),
    ],
    fields=[
        Field("card_id", "Card id", "5abbe4b7ddc1b351ef961414"),
        Field("card_url", "Card address", "https://trello.com/c/Kl9DpVvB"),
        Field("card_name", "Card", "Buy potting soil"),
    ],
    retry=False,
)
async def create_card(ctx: ReactionContext) -> Mapping[str, Any]:
    list_id = _id(ctx.params.get("list_id"), "list")
    body: dict[str, Any] = {
        "idList": list_id,
        "name": ctx.params["name"],
        "pos": ctx.params.get("position") or "top",
    }
    if ctx.params.get("description"):
        body["desc"] = ctx.params["description"]
    if ctx.params.get("due"):
        body["due"] = str(ctx.params["due"]).strip()
    data = await _request(ctx, "POST", "/cards", f"list {list_id}", body=body)
    if not isinstance(data, dict):
        raise PermanentError("Trello answered the new card with something unexpected")
    return {"card_id": data.get("id"), "card_url": _card_url(data), "card_name": data.get("name")}


@service.reaction(
    "add_comment",
    "Comment on a card",
    "Adds a comment to a card as your Trello account.",
    params=[
        Param(
            "card",
            ParamType.TEXT,
            "Card",
            help="The card's address (trello.com/c/…) or id, e.g. {{ trigger.card_id }}.",
            example="https://trello.com/c/Kl9DpVvB",
            templated=True,
        ),
        Param(
            "text",
            ParamType.MULTILINE,
            "Comment",
            help="The comment (Markdown; @username mentions work).",
            example="Done at {{ now }}.",
        ),
    ],
    fields=[
        Field("comment_id", "Comment id", "5abbe4b7ddc1b351ef961499"),
        Field("card_url", "Card address", "https://trello.com/c/Kl9DpVvB"),
    ],
    retry=False,
)
async def add_comment(ctx: ReactionContext) -> Mapping[str, Any]:
    card = _id(ctx.params.get("card"), "card", _CARD_URL_RE)
    data = await _request(
        ctx,
        "POST",
        f"/cards/{quote(card)}/actions/comments",
        f"card {card}",
        body={"text": ctx.params["text"]},
    )
    if not isinstance(data, dict):
        raise PermanentError("Trello answered the comment with something unexpected")
    card_data = (data.get("data") or {}).get("card") or {}
    return {"comment_id": data.get("id"), "card_url": _card_url(card_data)}
