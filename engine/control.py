"""A local control channel so the CLI (and a second app launch) can ask the running
engine to act, instead of starting a second engine on the same folder."""

from __future__ import annotations

import json
import os
import secrets
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from engine import area_files
from engine.areas import AreaSpec
from engine.errors import HooklineError, ValidationError
from engine.standby import ACTIVE
from engine.store import NotFound

if TYPE_CHECKING:
    from engine.app import Engine

CONTROL_FILE = "control.json"


class CommandChannel:
    """The control channel's ground: HTTP on 127.0.0.1 (ephemeral port), its port and
    bearer token in ``<data_dir>/control.json`` (mode 0600), and the extra commands
    (``POST /command/<name>``).

    Alone, it is what a desktop app attached to an engine elsewhere serves on its own
    folder: a second launch there finds it and asks it to show its window, and anything
    else is told ``refusal`` (409), never passed on.

    Args:
        data_dir: the folder whose ``control.json`` says where the channel is.
        refusal: what a request for anything but a command is told.

    Attributes:
        commands: extra commands by name (e.g. the desktop app's "show the window").
        token: the bearer token a request must carry.
    """

    def __init__(self, data_dir: Path, refusal: str = "unknown request") -> None:
        self.token = secrets.token_urlsafe(32)
        self.path = data_dir / CONTROL_FILE
        self.refusal = refusal
        self.commands: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=self._middlewares(),
                              client_max_size=4 * 1024 * 1024)
        app.router.add_post("/command/{name}", self._command)
        self._add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0)  # a stop is not held up
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"port": port, "token": self.token, "pid": os.getpid()}, out)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        try:
            if json.loads(self.path.read_text(encoding="utf-8")).get("token") == self.token:
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def _middlewares(self) -> list[Middleware]:
        return [self._auth]

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{anything:.*}", self._refuse)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not secrets.compare_digest(request.headers.get("Authorization", ""),
                                      f"Bearer {self.token}"):
            return web.json_response({"error": "not authorised"}, status=401)
        return await handler(request)

    async def _refuse(self, _request: web.Request) -> web.Response:
        return web.json_response({"error": self.refusal}, status=409)

    async def _command(self, request: web.Request) -> web.Response:
        handler = self.commands.get(request.match_info["name"])
        if handler is None:
            return web.json_response({"error": "unknown command"}, status=404)
        body = await request.json() if request.can_read_body else {}
        return web.json_response({"result": await handler(body)})


class ControlServer(CommandChannel):
    """The engine's channel: the commands, and the CLI's and the desktop app's calls."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.data_dir)
        self.engine = engine
        #: Who may use the channel over TLS (the remote site, engine/remote/site.py):
        #: it answers a request itself, or returns None to let it through.
        self.remote_gate: Callable[[web.Request], Awaitable[web.StreamResponse | None]
                                   ] | None = None

    def _middlewares(self) -> list[Middleware]:
        return [self._auth, self._standing_by]

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/role", self._role)
        r.add_post("/areas", self._create)
        r.add_post("/areas/import", self._import)
        r.add_put("/areas/{id}", self._update)
        r.add_delete("/areas/{id}", self._remove)
        r.add_post("/areas/{id}/enable", self._enable)
        r.add_post("/areas/{id}/disable", self._disable)
        r.add_post("/areas/{id}/run", self._run)
        r.add_get("/areas/{id}/webhook", self._webhook)
        r.add_post("/test", self._test)
        from engine import rpc  # the desktop app's calls (it imports the engine's types)

        rpc.add_routes(app, self.engine)

    async def open_site(self, host: str, port: int, ssl_context: ssl.SSLContext) -> int:
        """Serve every route also on host:port over TLS (the remote site, whose requests
        go to ``remote_gate``, never to ``control.json``'s token); the port it got."""
        assert self._runner is not None, "start() first"
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            # over TLS: the remote site, for paired clients only
            answer = (await self.remote_gate(request) if self.remote_gate is not None
                      else web.json_response({"error": "not authorised"}, status=401))
            if answer is not None:
                return answer
        elif not secrets.compare_digest(request.headers.get("Authorization", ""),
                                        f"Bearer {self.token}"):
            return web.json_response({"error": "not authorised"}, status=401)
        try:
            return await handler(request)
        except ValidationError as exc:
            return web.json_response({"error": str(exc), "where": exc.where,
                                      "problem": exc.problem}, status=422)
        except NotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except HooklineError as exc:
            return web.json_response({"error": str(exc)}, status=409)

    @web.middleware
    async def _standing_by(self, request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
        """A standby engine (engine/standby.py) only says its role: the areas are the
        active engine's to change, and this one has not loaded them. Pairing works (the
        codes are in the database): the active engine's standby joins this one."""
        if self.engine.role == ACTIVE or request.path == "/role" \
                or request.path.startswith("/command/remote."):
            return await handler(request)
        return web.json_response({"error": f"this Hookline engine is {self.engine.role}: "
                                           "another one is active on the database; use that "
                                           "one"}, status=503, headers={"Retry-After": "2"})

    async def _role(self, _request: web.Request) -> web.Response:
        """active | standby | fenced, and the database's lease (PostgreSQL) or none."""
        return web.json_response({"role": self.engine.role,
                                  "lease": self.engine.lease is not None, "pid": os.getpid()})

    async def _area_id(self, request: web.Request) -> str:
        return (await self.engine.store.area(request.match_info["id"])).id

    async def _create(self, request: web.Request) -> web.Response:
        area = await self.engine.create_area(AreaSpec.from_dict(await request.json()))
        return web.json_response({"id": area.id})

    async def _import(self, request: web.Request) -> web.Response:
        body = await request.json()
        items = body.get("areas") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ValidationError("", "give {\"areas\": [...]}")
        # the same bound as a file read here: a client cannot send more than a file holds
        area_files.bounded(items, "the import")
        areas = await self.engine.import_areas(items)
        return web.json_response({"ids": [a.id for a in areas]})

    async def _update(self, request: web.Request) -> web.Response:
        area_id = await self._area_id(request)
        await self.engine.update_area(area_id, AreaSpec.from_dict(await request.json()))
        return web.json_response({"id": area_id})

    async def _remove(self, request: web.Request) -> web.Response:
        await self.engine.remove_area(await self._area_id(request))
        return web.json_response({})

    async def _enable(self, request: web.Request) -> web.Response:
        await self.engine.set_enabled(await self._area_id(request), True)
        return web.json_response({})

    async def _disable(self, request: web.Request) -> web.Response:
        await self.engine.set_enabled(await self._area_id(request), False)
        return web.json_response({})

    async def _run(self, request: web.Request) -> web.Response:
        events = await self.engine.run_now(await self._area_id(request))
        return web.json_response({"events": [e.id for e in events]})

    async def _webhook(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"url": await self.engine.webhook_url(await self._area_id(request))})

    async def _test(self, request: web.Request) -> web.Response:
        body = await request.json()
        result = await self.engine.test_area(AreaSpec.from_dict(body["area"]),
                                             body.get("payload"))
        return web.json_response(result)


class ControlClient:
    """Talks to the engine that holds the data folder."""

    def __init__(self, data_dir: Path) -> None:
        info = json.loads((data_dir / CONTROL_FILE).read_text(encoding="utf-8"))
        self._base = f"http://127.0.0.1:{info['port']}"
        self._headers = {"Authorization": f"Bearer {info['token']}"}

    @staticmethod
    def available(data_dir: Path) -> bool:
        return (data_dir / CONTROL_FILE).exists()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with aiohttp.ClientSession(headers=self._headers) as session, session.request(
            method, self._base + path, json=body, timeout=aiohttp.ClientTimeout(total=120)
        ) as resp:
            answer = await resp.json()
            if resp.status == 422:
                raise ValidationError(answer.get("where", ""), answer.get("problem", ""))
            if resp.status == 404:
                raise NotFound(answer["error"])
            if resp.status >= 400:
                raise HooklineError(answer.get("error", f"engine answered {resp.status}"))
            return answer
