"""A service for engine tests that acts as a connected account; its OAuth endpoints are
pointed at the test's local provider (``service.oauth = provider.spec()``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import (
    ApiKeySpec,
    AuthError,
    AuthKind,
    Field,
    Item,
    OAuth2Spec,
    Param,
    ParamType,
    PollContext,
    PollResult,
    ReactionContext,
    Service,
)

service = Service(
    "acme", "Acme", "Test service that acts as an account.", auth=AuthKind.OAUTH2,
    oauth=OAuth2Spec("http://127.0.0.1:9/authorize", "http://127.0.0.1:9/token",
                     scopes=("read", "write")),
    api_key=ApiKeySpec("Acme token", "Create one in Acme's settings."),
)


@service.reaction("call", "Call the API", "GETs a URL as the account.",
                  params=[Param("url", ParamType.URL, "URL")],
                  fields=[Field("thing", "Thing", "ok"), Field("login", "Login", "marta")],
                  timeout=5)
async def call(ctx: ReactionContext) -> Mapping[str, Any]:
    if ctx.account is None:
        raise AuthError("no account")
    data = (await ctx.account.request("GET", ctx.params["url"])).json()
    return {"thing": data["thing"], "login": data["login"]}


@service.poll_trigger("things", "Things", "One item per poll, fetched as the account.",
                      params=[Param("url", ParamType.URL, "URL")],
                      fields=[Field("login", "Login", "marta")],
                      default_interval=3600, min_interval=0.01)
async def things(ctx: PollContext) -> PollResult:
    if ctx.account is None:
        raise AuthError("no account")
    data = (await ctx.account.get(ctx.params["url"])).json()
    return PollResult([Item(data["login"], {"login": data["login"]})])
