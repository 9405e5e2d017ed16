"""Settings changed while the engine runs: what can change at once does; the
listener's address and port stay as bound until a restart."""

from __future__ import annotations

import aiohttp

from engine.app import Engine


async def post_as(engine: Engine, host: str) -> int:
    assert engine.listener is not None
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{engine.listener.port}/hooks/nope",
            headers={"Host": host}) as resp:
        return resp.status


async def test_new_settings_reach_every_part_at_once(engine: Engine) -> None:
    assert await post_as(engine, "hooks.example.org") == 400  # not our Host yet
    changed = engine.settings.replace(retry_delay=9, allow_internal_targets=True,
                                      public_url="https://hooks.example.org/base/")
    engine.apply_settings(changed)
    assert engine.settings is changed
    assert engine.runner.settings is changed and engine.poller.settings is changed
    assert engine.http.guard.allow_internal
    assert engine.listener is not None
    assert engine.listener.url_for("abc") == "https://hooks.example.org/base/hooks/abc"
    # the tunnel's host is accepted from now on: an unknown token, not a refused Host
    assert await post_as(engine, "hooks.example.org") == 404


async def test_listener_keeps_its_address_until_a_restart(engine: Engine) -> None:
    assert engine.listener is not None
    port = engine.listener.port
    engine.apply_settings(engine.settings.replace(listener_port=1, public_url=""))
    assert engine.listener.port == port
    assert engine.listener.url_for("t") == f"http://127.0.0.1:{port}/hooks/t"
    assert engine.settings.listener_port == 1  # saved for the next start
