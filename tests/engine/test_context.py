"""What the contexts offer a service: the step's account, or what to do without one."""

from __future__ import annotations

from typing import Any, cast

import pytest

from engine.auth.session import AccountSession
from engine.catalog.auth import ApiKeySpec, OAuth2Spec
from engine.catalog.context import PollContext, PushRequest, ReactionContext
from engine.catalog.service import AuthKind, PollResult, Service
from engine.errors import AuthError, Rejected
from engine.http import HttpClient
from engine.testing import poll_context, reaction_context

OAUTH = OAuth2Spec("https://example.test/authorize", "https://example.test/token")


def _service(**declared: Any) -> Service:
    service = Service("acme", "Acme", "A service that acts as an account.", **declared)

    @service.poll_trigger("new", "New thing", "...")
    async def new(ctx: PollContext) -> PollResult:
        return PollResult([])

    @service.reaction("act", "Act", "...")
    async def act(ctx: ReactionContext) -> None:
        return None

    return service


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"auth": AuthKind.OAUTH2, "oauth": OAUTH},
         "choose the Acme account this step uses "
         "(connect one with `hookline accounts connect acme`)"),
        ({"auth": AuthKind.API_KEY, "api_key": ApiKeySpec()},
         "choose the Acme account this step uses "
         "(add a token with `hookline accounts token acme`)"),
        ({"auth": AuthKind.OAUTH2, "oauth": OAUTH, "api_key": ApiKeySpec()},
         "choose the Acme account this step uses "
         "(connect one with `hookline accounts connect acme`, "
         "or add a token with `hookline accounts token acme`)"),
        ({"auth": AuthKind.API_KEY, "api_key": ApiKeySpec(), "account_label": "Acme bot"},
         "choose the Acme bot this step uses (add a token with `hookline accounts token acme`)"),
    ],
)
async def test_a_step_without_an_account_is_told_what_to_choose_and_how_to_add_one(
    http: HttpClient, declared: dict[str, Any], message: str
) -> None:
    service = _service(**declared)
    contexts = [poll_context(service.triggers["new"], {}, http),
                reaction_context(service.reactions["act"], {}, http)]
    for ctx in contexts:
        with pytest.raises(AuthError) as raised:
            ctx.require_account(service)
        assert str(raised.value) == message


async def test_the_chosen_account_is_handed_back(http: HttpClient) -> None:
    service = _service(auth=AuthKind.OAUTH2, oauth=OAUTH)
    account = cast(AccountSession, object())
    for ctx in (poll_context(service.triggers["new"], {}, http),
                reaction_context(service.reactions["act"], {}, http)):
        ctx.account = account
        assert ctx.require_account(service) is account


def _push(body: bytes) -> PushRequest:
    return PushRequest("POST", "/hooks/x", {}, {}, body, "application/json")


def test_a_delivery_nested_too_deeply_is_refused_before_parsing() -> None:
    assert _push(b'{"a": "' + b"[" * 5000 + b'"}').json() == {"a": "[" * 5000}  # in a string
    assert _push(b"[" * 200 + b"]" * 200).json() is not None
    with pytest.raises(Rejected) as raised:
        _push(b"[" * 100_000).json()
    assert (raised.value.status, raised.value.reason) == (
        400, "body is not usable JSON: nested more than 200 levels deep")


def test_json_taken_from_a_form_field_names_the_field_in_its_errors() -> None:
    with pytest.raises(Rejected, match=r"^'payload' field is not valid JSON: Expecting prop"):
        _push(b"").json("{oops", what="'payload' field")
    with pytest.raises(Rejected, match=r"^body is not UTF-8 text$"):
        _push(b"\xff").json()
