"""The example service, tested the way any plugin can be: through engine.testing."""

from __future__ import annotations

from typing import Any

import pytest
from engine import HttpClient, PermanentError, ValidationError
from engine.testing import poll_context, reaction_context

from hookline_example import service

SHOUT = service.reactions["shout"]
COUNTER = service.triggers["counter"]


async def test_shout(http: HttpClient) -> None:
    result = await SHOUT.run(reaction_context(SHOUT, {"text": "hello, Wörld"}, http))
    assert result == {"text": "HELLO, WÖRLD"}


async def test_shout_refuses_a_huge_text(http: HttpClient) -> None:
    with pytest.raises(PermanentError, match="shout at most 10,000"):
        await SHOUT.run(reaction_context(SHOUT, {"text": "a" * 10_001}, http))


def test_shout_needs_text(http: HttpClient) -> None:
    with pytest.raises(ValidationError, match="Text is required"):
        reaction_context(SHOUT, {}, http)


async def test_counter_counts_in_its_state(http: HttpClient) -> None:
    assert COUNTER.poll is not None
    state: dict[str, Any] = {}
    seen = []
    for _ in range(3):
        result = await COUNTER.poll(poll_context(COUNTER, {"step": 2}, http, state=state))
        seen.append([(item.key, item.data) for item in result.items])
    assert seen == [[("2", {"count": 2})], [("4", {"count": 4})], [("6", {"count": 6})]]
    assert state == {"count": 6}


def test_every_param_is_documented() -> None:
    for spec in (SHOUT, COUNTER):
        for param in spec.params:
            assert param.label
            assert param.help
            assert param.example is not None
