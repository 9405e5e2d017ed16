"""The webhook listener: one unguessable URL per area; 202 only once journaled."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from engine.areas import Area
from engine.catalog.context import PushRequest, TriggerContext
from engine.catalog.service import Item, TriggerSpec
from engine.deliveries import Deliveries, Delivery
from engine.errors import Rejected, StorageError
from engine.settings import Settings
from engine.storage.schema import utcnow

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
HOOK_PREFIX = "/hooks/"


def _client_error(record: logging.LogRecord) -> bool:
    """aiohttp logs a request it could not parse (a broken gzip body, a bad header) with
    its traceback at ERROR; it answered 400, the fault is the sender's: keep a line at
    DEBUG."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, HttpProcessingError | RequestPayloadError):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        said = str(error).strip().splitlines()[-1].strip().replace("%", "%%")  # msg % args
        record.msg = f"{record.msg}: {said}"
        record.exc_info = record.exc_text = None
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Route:
    """What a webhook URL leads to."""

    area: Area
    spec: TriggerSpec
    ctx: TriggerContext


#: ``(area, items) -> (the ids of the events journaled, duplicates dropped)``.
Ingest = Callable[[Area, list[Item]], Awaitable[tuple[list[int], int]]]


def _answer(status: int, **body: Any) -> web.Response:
    return web.json_response(body, status=status)


def _refuse(status: int, error: str, headers: dict[str, str] | None = None) -> web.Response:
    """A refusal before the body was read: the connection closes after it (the unread
    body is not drained), and the answer says so, so the sender does not reuse it."""
    response = web.json_response({"error": error}, status=status, headers=headers)
    response.force_close()
    return response


class _Accepted(web.Response):
    """202: the delivery is journaled. The answer keeps, for the record of deliveries,
    the events it was journaled as."""

    def __init__(self, events: list[int], duplicates: int) -> None:
        super().__init__(text=json.dumps({"accepted": len(events), "duplicates": duplicates}),
                         status=202, content_type="application/json")
        self.events = tuple(events)
        self.duplicates = duplicates


def _refusal(response: web.Response) -> str | None:
    """What a refusal told its sender (its JSON ``error``)."""
    if response.status < 300 or not isinstance(response.body, bytes):
        return None
    try:
        return str(json.loads(response.body)["error"])
    except (ValueError, KeyError, TypeError):
        return None


def _off(reason: str) -> web.Response:
    """409: the address is alive, its area does not take deliveries now."""
    return _refuse(409, f"the area is off ({reason}); turn it on in Hookline, then send "
                        "again")


#: Seconds a standby tells a webhook sender to wait before sending again.
STANDBY_RETRY = 2

#: Seconds a delivery under way gets to finish when the listener stops.
SHUTDOWN_GRACE = 2.0


class Listener:
    """aiohttp server for webhooks.

    Attributes:
        routes: token hash -> Route, kept current by the engine.
        ready: False while the engine is still putting up its routes (at start): an
            address it does not know yet gets 503 and Retry-After, not 404.
        standby: why no delivery is taken here (a standby engine): 503 with
            Retry-After: 2, so the sender tries again (or the active engine's listener).
        port: the bound port once started.
        deliveries: each area's latest deliveries and how they were answered (refused
            ones too; a request to an address no area has is not kept).

    Args:
        paused: area id -> why it does not take deliveries (None: it does).
        trouble: why no delivery can be taken now (None: they can).
        owner: token hash -> the id of the area with that address, routed or not (an
            area that is off or paused tells its senders so with 409, not 404).
    """

    def __init__(self, settings: Settings, ingest: Ingest,
                 paused: Callable[[str], str | None],
                 trouble: Callable[[], str | None] = lambda: None,
                 owner: Callable[[str], str | None] = lambda _hash: None) -> None:
        self.settings = settings
        self._trouble = trouble
        self._owner = owner
        self.routes: dict[str, Route] = {}
        self.ready = False
        self.standby: str | None = None
        self._ingest = ingest
        self._paused = paused
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._hosts: set[str] = set()
        self.deliveries = Deliveries()

    def url_for(self, token: str) -> str:
        base = self.settings.public_url.rstrip("/") or (
            f"http://{_display_host(self.settings.listener_host)}:{self.port}")
        return f"{base}{HOOK_PREFIX}{token}"

    async def start(self) -> int:
        server_log = logging.getLogger("aiohttp.server")
        if _client_error not in server_log.filters:
            server_log.addFilter(_client_error)
        # lingering_time=0: a body left unread by a refusal (404, 405, 413...) is not read
        # to its end afterwards (a broken one would only be logged); the connection closes.
        app = web.Application(client_max_size=MAX_BODY,
                              handler_args={"max_field_size": 16384, "lingering_time": 0})
        app.router.add_route("*", HOOK_PREFIX + "{token}", self._handle)
        if self.settings.metrics_enabled:  # opt-in; off, /metrics is unknown (404)
            app.router.add_get("/metrics", self._metrics)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        # At a stop, a delivery under way gets SHUTDOWN_GRACE s to be journaled and
        # answered; after that its connection closes unanswered (the sender retries:
        # nothing acknowledged is lost), instead of aiohttp's 60 s holding up Quit.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=SHUTDOWN_GRACE)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.listener_host, self.settings.listener_port,
                           reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            from engine.errors import ConfigError

            raise ConfigError(
                f"Cannot listen for webhooks on {self.settings.listener_host}:"
                f"{self.settings.listener_port}: {exc.strerror}. Choose another port in "
                "settings (or turn the listener off)."
            ) from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.listener_port
        self._hosts = _allowed_hosts(self.settings, self.port)
        return self.port

    def refresh_hosts(self) -> None:
        """Recompute the accepted Host headers (after the public URL changed)."""
        if self.port is not None:
            self._hosts = _allowed_hosts(self.settings, self.port)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _no_route(self, hashed: str) -> web.Response:
        area_id = self._owner(hashed)
        reason = self._paused(area_id) if area_id is not None else None
        if reason is not None:
            return _off(reason)
        if not self.ready or area_id is not None:  # starting, or being switched on now
            return _refuse(503, "this address is not ready yet (Hookline is starting, or "
                                "the area is being switched on); send again in a second",
                           {"Retry-After": "1"})
        return _refuse(404, "no area has this webhook address (it may have been removed "
                            "or given a new address)")

    #: What /metrics answers (engine/observe/metrics.py), set by the engine when it is on.
    metrics: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        return await (self.metrics or self._unknown)(request)

    async def _unknown(self, request: web.Request) -> web.Response:
        return _refuse(404, "not a Hookline webhook address (they look like /hooks/<token>)")

    async def _handle(self, request: web.Request) -> web.Response:
        """Answer a delivery, and keep how it was answered in its area's record."""
        at = utcnow()
        hashed = token_hash(request.match_info["token"])
        response = await self._deliver(request, hashed)
        route = self.routes.get(hashed)
        area_id = route.area.id if route is not None else self._owner(hashed)
        if area_id is not None:
            accepted = response if isinstance(response, _Accepted) else None
            self.deliveries.add(area_id, Delivery(
                at, response.status, _refusal(response),
                accepted.events if accepted else (), accepted.duplicates if accepted else 0))
        return response

    async def _deliver(self, request: web.Request, hashed: str) -> web.Response:
        if self._hosts and request.host.lower() not in self._hosts:
            return _refuse(400, f"unexpected Host header {request.host!r}; if a proxy "
                                "forwards here, set its address as the public URL")
        if request.method not in ("POST", "PUT"):
            return _refuse(405, "use POST to deliver to this webhook", {"Allow": "POST, PUT"})
        if self.standby is not None:
            return _refuse(503, self.standby, {"Retry-After": str(STANDBY_RETRY)})
        route = self.routes.get(hashed)
        if route is None:
            return self._no_route(hashed)
        paused = self._paused(route.area.id)
        if paused:
            return _off(paused)
        trouble = self._trouble()
        if trouble:  # accepted deliveries could not run: the sender keeps them meanwhile
            return _refuse(503, f"Hookline cannot save runs right now ({trouble}); send "
                                "again later", {"Retry-After": "30"})
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _refuse(413, f"body larger than {MAX_BODY // 1024} KiB")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, f"body larger than {MAX_BODY // 1024} KiB")
        except (HttpProcessingError, RequestPayloadError) as exc:  # "gzip" over plain bytes
            encoding = request.headers.get("Content-Encoding", "")
            said = str(exc).strip().splitlines()[-1].strip() or type(exc).__name__
            return _refuse(400, f"the body could not be read ({said}): send it "
                                + (f"compressed as its Content-Encoding ({encoding}) says, or "
                                   "uncompressed" if encoding else "again"))
        push = PushRequest(request.method, request.path, dict(request.headers),
                           dict(request.query), body, request.content_type, request.remote)
        assert route.spec.push is not None
        try:
            items = await route.spec.push(push, route.ctx)
        except Rejected as exc:
            return _answer(exc.status, error=exc.reason)
        except Exception:
            log.exception("webhook trigger %s failed on a delivery", route.spec.qualified)
            return _answer(400, error="this delivery could not be read; see Hookline's log")
        try:
            accepted, duplicates = await self._ingest(route.area, items)
        except StorageError as exc:
            log.error("could not journal a webhook delivery: %s", exc)
            return web.json_response({"error": "could not save the delivery; retry later"},
                                     status=503, headers={"Retry-After": "5"})
        return _Accepted(accepted, duplicates)


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104


def _allowed_hosts(settings: Settings, port: int) -> set[str]:
    """Host headers accepted: loopback names, the bound address, the public URL.
    Bound to every interface, any Host is accepted (LAN addresses are not known)."""
    if settings.listener_host in ("0.0.0.0", "::", ""):  # noqa: S104
        return set()
    names = {"127.0.0.1", "localhost", "[::1]", settings.listener_host.lower()}
    hosts = {f"{n}:{port}" for n in names}
    if port == 80:
        hosts |= names
    if settings.public_url:
        from urllib.parse import urlsplit

        netloc = urlsplit(settings.public_url).netloc.lower()
        if netloc:
            hosts.add(netloc)
    return hosts
