"""A TCP proxy in front of PostgreSQL that cuts one engine off as a pulled cable would.

This machine has no netfilter to drop an engine's packets, so the engine under test
reaches the server through :class:`PgProxy` (its ``database_url`` names the proxy's
port): :meth:`PgProxy.partition` makes every connection silent on the engine's side and,
a little later, ends it on the server's side, as the server's TCP keepalives do once a
peer has stopped answering (that is what frees the engine's lease on a real server).

The proxy runs on a thread and event loop of its own, as the network is apart from the
engine: the engine writes its run ledger with blocking calls from its event loop, which
would otherwise wait for a proxy that cannot run.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

from sqlalchemy.engine import make_url


class _Link:
    """One proxied connection: the engine's side and, once connected, the server's."""

    def __init__(self, engine_side: asyncio.StreamWriter) -> None:
        self.engine_side = engine_side
        self.server_side: asyncio.StreamWriter | None = None
        self.pumps: list[asyncio.Task[None]] = []


class PgProxy:
    """Forwards connections on 127.0.0.1 to the PostgreSQL server at ``server_port``.

    Args:
        server_port: the server's port on 127.0.0.1.
        notice: seconds after :meth:`partition` at which the server's side of each
            connection is closed: the server's keepalives noticing the silent peer.

    Attributes:
        port: where the proxy listens (0 until :meth:`start`).
        cut: whether the partition is on.
    """

    def __init__(self, server_port: int, notice: float) -> None:
        self.server_port = server_port
        self.notice = notice
        self.port = 0
        self.cut = False
        self._links: list[_Link] = []
        self._server: asyncio.Server | None = None
        self._later: list[asyncio.TimerHandle] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-proxy",
                                        daemon=True)

    async def start(self) -> None:
        self._thread.start()
        await self._on_thread(self._listen())

    def url(self, url: str) -> str:
        """The database URL ``url`` through this proxy."""
        parsed = make_url(url).set(host="127.0.0.1", port=self.port)
        return parsed.render_as_string(hide_password=False)

    def partition(self) -> None:
        """Stop forwarding on every connection, both ways; the engine's side stays open
        (it hears nothing more), the server's closes after :attr:`notice` seconds.
        Connections made meanwhile are accepted and never answered (as a SYN that is
        dropped: the engine's connect timeout ends them). Returns once it is so (from
        anywhere: a reaction acting may call it)."""
        asyncio.run_coroutine_threadsafe(self._partition(), self._loop).result(5)

    def heal(self) -> None:
        """Forward again, for new connections: the old ones stay dead, as they would."""
        asyncio.run_coroutine_threadsafe(self._heal(), self._loop).result(5)

    async def aclose(self) -> None:
        """Stop listening and end every connection, both sides (a thread of the engine
        still waiting on one gets its answer: the connection is gone)."""
        if self._thread.is_alive():
            await self._on_thread(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join)
        self._loop.close()

    async def _on_thread(self, work: Coroutine[Any, Any, None]) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _partition(self) -> None:
        self.cut = True
        for link in self._links:
            for pump in link.pumps:
                pump.cancel()
            if link.server_side is not None:
                self._later.append(self._loop.call_later(self.notice,
                                                         link.server_side.close))

    async def _heal(self) -> None:
        self.cut = False

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for handle in self._later:
            handle.cancel()
        for link in self._links:
            for pump in link.pumps:
                pump.cancel()
            link.engine_side.transport.abort()
            if link.server_side is not None:
                link.server_side.transport.abort()
        await asyncio.gather(*(pump for link in self._links for pump in link.pumps),
                             return_exceptions=True)
        self._links.clear()

    async def _accept(self, engine_in: asyncio.StreamReader,
                      engine_out: asyncio.StreamWriter) -> None:
        link = _Link(engine_out)
        self._links.append(link)
        if self.cut:
            return
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1",
                                                                  self.server_port)
        except OSError:
            engine_out.transport.abort()
            return
        link.server_side = server_out
        if self.cut:  # cut while connecting: the server's side goes as the others do
            self._later.append(self._loop.call_later(self.notice, server_out.close))
            return
        link.pumps = [asyncio.create_task(self._pump(engine_in, server_out)),
                      asyncio.create_task(self._pump(server_in, engine_out))]

    @staticmethod
    async def _pump(source: asyncio.StreamReader, to: asyncio.StreamWriter) -> None:
        """Bytes from ``source`` to ``to`` until ``source`` ends; then ``to`` ends too."""
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                to.write(data)
                await to.drain()
        to.close()
