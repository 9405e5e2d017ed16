"""Remote fixtures: an engine with its remote site on 127.0.0.1 (a port of its own),
real TLS, and a way to pair with it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.app import Engine
from engine.remote.client import RemoteTarget, pair
from engine.remote.site import RemoteSite
from tests.engine.conftest import EngineFactory

REMOTE = {"remote_enabled": True, "remote_host": "127.0.0.1", "remote_port": 0}

#: One area as a client would send it: it needs nothing set up.
AREA = {"name": "Made from afar",
        "trigger": {"service": "timer", "trigger": "every", "params": {"interval": "1h"}},
        "reactions": [{"service": "notify", "reaction": "notify",
                       "params": {"title": "hello", "message": "from afar"}}]}


@dataclass
class Remote:
    """A started engine with its remote site open."""

    engine: Engine

    @property
    def site(self) -> RemoteSite:
        assert self.engine.remote is not None
        return self.engine.remote

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.site.port}"

    async def pair(self, name: str = "laptop") -> tuple[RemoteTarget, str]:
        """A client paired with a fresh code, as the desktop app would."""
        issued = await self.site.pairing.issue()
        return await pair("127.0.0.1", self.site.port, issued.code, client_name=name)


@pytest.fixture
async def remote(make_engine: EngineFactory) -> Remote:
    return Remote(await make_engine(**REMOTE))


