"""Notifications: show a message on this computer's desktop (or in the log when headless)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import Field, Param, ParamType, PermanentError, ReactionContext, Service

service = Service(
    "notify",
    "Notifications",
    "Show a notification: in the tray on the desktop, in the log when Hookline runs "
    "without a window.",
    icon="notify.svg",
)

#: The bus topic the desktop app and the CLI listen to for notifications.
NOTIFICATION_TOPIC = "notification"
#: Why a notification cannot be shown: set by the desktop app while this desktop has no
#: tray to show one in (None: it is shown, or written to the log without a window).
not_shown_because: str | None = None


@service.reaction(
    "notify",
    "Show a notification",
    "Shows a notification with a title and a message.",
    params=[
        Param(
            "title",
            ParamType.TEXT,
            "Title",
            help="The notification's first, bold line.",
            example="New invoice: {{ trigger.name }}",
        ),
        Param(
            "message",
            ParamType.MULTILINE,
            "Message",
            help="The text under the title.",
            required=False,
            default="",
            example="Saved to {{ trigger.folder }}",
        ),
        Param(
            "level",
            ParamType.CHOICE,
            "Kind",
            help="How it is shown: an error stands out more than information.",
            required=False,
            default="info",
            choices=(("info", "Information"), ("warning", "Warning"), ("error", "Error")),
            example="info",
        ),
    ],
    fields=[
        Field("title", "Title shown", "New invoice: invoice.pdf"),
        Field("message", "Message shown", "Saved to /home/ana/Downloads"),
    ],
)
async def notify(ctx: ReactionContext) -> Mapping[str, Any]:
    title = ctx.params["title"]
    message = ctx.params["message"] or ""
    ctx.bus.publish(
        NOTIFICATION_TOPIC,
        title=title,
        body=message,
        level=ctx.params["level"],
        area_id=ctx.area_id,
    )
    if not_shown_because is not None:  # published all the same: the log has it
        raise PermanentError(f"Not shown: {not_shown_because}")
    return {"title": title, "message": message}
