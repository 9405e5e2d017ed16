"""The one HTTP client every service shares: reuse, timeouts, backoff hints, guard."""

from __future__ import annotations

import io
import ipaddress
import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from engine import trace
from engine.errors import AuthError, PermanentError, RateLimited, TransientError
from engine.text import redact_url

USER_AGENT = "Hookline/0.1 (+personal automation)"
MAX_BODY = 20 * 1024 * 1024
MAX_REDIRECTS = 10
#: A bytes body larger than this is sent from a buffer, piece by piece (aiohttp writes a
#: bytes body in one go and warns that a large one may hold up the loop).
LARGE_BODY = 1024 * 1024

_METADATA_HOSTS = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}


class BlockedAddress(OSError):
    """An outbound call to an address the settings do not allow."""


class OutboundGuard:
    """Decides which addresses user-configured calls may reach.

    Link-local and cloud-metadata addresses are refused, and so are loopback
    addresses on the ports of Hookline's own listeners, unless ``allow_internal``.
    """

    def __init__(self, allow_internal: bool = False) -> None:
        self.allow_internal = allow_internal
        self.own_ports: set[int] = set()

    def check(self, host: str, port: int) -> None:
        if self.allow_internal:
            return
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return  # a name: checked again once resolved
        if address in _METADATA_HOSTS or address.is_link_local:
            raise BlockedAddress(
                f"{host} is a link-local or cloud-metadata address; Hookline does not "
                "call it unless 'Allow internal addresses' is on in settings"
            )
        if address.is_loopback and port in self.own_ports:
            raise BlockedAddress(
                f"{host}:{port} is Hookline's own listener; calling it could loop. Turn on "
                "'Allow internal addresses' in settings if you mean it"
            )


class _GuardedResolver(AbstractResolver):
    """Resolves names, then drops the answer if the guard refuses an address."""

    def __init__(self, guard: OutboundGuard) -> None:
        self._inner = DefaultResolver()
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self._guard.check(result["host"], port)
        return results

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class HttpResponse:
    """A fully read response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        charset = "utf-8"
        ctype = self.header("Content-Type") or ""
        if "charset=" in ctype:
            charset = ctype.split("charset=", 1)[1].split(";")[0].strip() or charset
        return self.body.decode(charset, errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise PermanentError(f"{redact_url(self.url)} did not answer with JSON: {exc}"
                                 ) from None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def retry_after(self) -> float | None:
        """Seconds from a ``Retry-After`` (or ``X-RateLimit-Reset``) header, if any."""
        value = self.header("Retry-After")
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                try:
                    when = parsedate_to_datetime(value)
                except (TypeError, ValueError):
                    return None
                import time

                return max(0.0, when.timestamp() - time.time())
        return None

    def readable_detail(self, limit: int = 160) -> str:
        """What the body says, as one short line a person can read in a message; empty
        for an HTML page (its markup, scripts and styles would fill the message)."""
        text = self.text()[:4096].strip()
        if "html" in (self.header("Content-Type") or "").lower() or text.startswith("<"):
            return ""
        line = " ".join(text.split())
        return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"

    def raise_for_status(self) -> HttpResponse:
        """Self if 2xx/3xx; else the engine error that says what kind of failure."""
        status = self.status
        if status < 400:
            return self
        where = redact_url(self.url)
        detail = self.readable_detail()
        message = f"{where} answered {status}" + (f": {detail}" if detail else "")
        if status == 429:
            raise RateLimited(message, self.retry_after())
        if status in (401, 403):
            raise AuthError(message)
        if status >= 500 or status == 408:
            raise TransientError(message)
        raise PermanentError(message)


def raise_for_provider(
    resp: HttpResponse,
    provider: str,
    what: str,
    *,
    unauthorized: str,
    not_found_hint: str = "check it",
    rate_scope: str = "account",
    detail: Callable[[HttpResponse], str] | None = None,
) -> None:
    """The engine error, in words naming ``provider`` and ``what``, for an answer that is
    not a success; returns for 1xx-2xx.

    Args:
        unauthorized: the 401 message; may use ``{what}`` and ``{said}`` (the far side's
            own words, prefixed with ": " when there are any).
        detail: reads the far side's own words from an error answer (default: its text).
    """
    status = resp.status
    if status < 300:
        return
    message = detail(resp) if detail else resp.text()[:200].strip()
    said = f": {message}" if message else ""
    if status == 429:
        wait = resp.retry_after()
        when = f"; try again in {wait:.0f} s" if wait is not None else ""
        raise RateLimited(f"{provider}'s rate limit for this {rate_scope} is used up{when}", wait)
    if status == 401:
        raise AuthError(unauthorized.format(what=what, said=said))
    if status == 403:
        raise AuthError(f"{provider} does not let this account reach {what}{said}")
    if status == 404:
        raise PermanentError(f"{provider} has no {what}, or this account cannot see it: "
                             f"{not_found_hint}")
    if status >= 500:
        raise TransientError(f"{provider} had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"{provider} refused the request for {what} (HTTP {status}){said}")


class HttpClient:
    """One aiohttp session shared by every service.

    Args:
        guard: which addresses calls may reach.
        timeout: seconds for a whole request unless a call says otherwise.
    """

    def __init__(self, guard: OutboundGuard | None = None, timeout: float = 30.0) -> None:
        self.guard = guard or OutboundGuard()
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _ensure(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=_GuardedResolver(self.guard), limit=100,
                                             ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    @staticmethod
    def traceparent() -> str | None:
        """The ``traceparent`` a request made now carries: the run's trace (W3C Trace
        Context), or None outside a run. Other protocols send it their own way (MQTT
        5: a user property)."""
        return trace.traceparent()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: bytes | str | Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = True,
        max_body: int = MAX_BODY,
    ) -> HttpResponse:
        """Send a request, following redirects (each hop checked by the guard).

        With ``check`` a non-2xx/3xx answer raises the matching engine error.
        Network failures and timeouts raise TransientError. A request made while a run
        is under way carries its ``traceparent`` (unless the caller gave one).
        """
        session = self._ensure()
        parent = self.traceparent()
        if parent is not None and not (headers and any(
                name.lower() == trace.HEADER for name in headers)):
            headers = {**headers, trace.HEADER: parent} if headers else {trace.HEADER: parent}
        method = method.upper()
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            self._check_url(current)
            body: Any = data
            if isinstance(data, bytes) and len(data) > LARGE_BODY:
                body = io.BytesIO(data)  # a fresh one per hop: each is read to its end
            try:
                async with session.request(
                    method, current, headers=headers, params=params, json=json_body,
                    data=body, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
                ) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in (301, 302, 303, 307, 308) and location:
                        current = urljoin(str(resp.url), location)
                        if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                            method, json_body, data = "GET", None, None
                        params = None
                        continue
                    body = await self._read(resp, max_body)
                    answer = HttpResponse(resp.status, dict(resp.headers), body, str(resp.url))
            except BlockedAddress as exc:
                raise PermanentError(str(exc)) from None
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, BlockedAddress):
                    raise PermanentError(str(exc.os_error)) from None
                raise TransientError(f"cannot reach {redact_url(current)}: {exc.strerror}"
                                     ) from None
            except TimeoutError:
                raise TransientError(f"{redact_url(current)} did not answer in time") from None
            except aiohttp.ClientError as exc:
                raise TransientError(f"{redact_url(current)}: {exc}") from None
            return answer.raise_for_status() if check else answer
        raise PermanentError(f"{redact_url(url)}: more than {MAX_REDIRECTS} redirects")

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PermanentError(f"{url!r} is not an http(s) address")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            self.guard.check(parts.hostname, port)
        except BlockedAddress as exc:
            raise PermanentError(str(exc)) from None

    @staticmethod
    async def _read(resp: aiohttp.ClientResponse, max_body: int) -> bytes:
        chunks = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > max_body:
                raise PermanentError(
                    f"{redact_url(str(resp.url))} sent more than {max_body // 1024} KiB"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def get(self, url: str, **kwargs: Any) -> HttpResponse:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> HttpResponse:
        return await self.request("POST", url, **kwargs)

    async def get_conditional(
        self, url: str, state: dict[str, Any], **kwargs: Any
    ) -> HttpResponse:
        """GET with If-None-Match / If-Modified-Since from ``state``; stores the new ones.

        A ``304`` comes back as a response with status 304 (no error).
        """
        headers = dict(kwargs.pop("headers", None) or {})
        cache = state.get("http_cache") or {}
        if cache.get("url") == url:
            if cache.get("etag"):
                headers["If-None-Match"] = cache["etag"]
            if cache.get("last_modified"):
                headers["If-Modified-Since"] = cache["last_modified"]
        resp = await self.request("GET", url, headers=headers, **kwargs)
        if resp.status != 304:
            state["http_cache"] = {
                "url": url,
                "etag": resp.header("ETag"),
                "last_modified": resp.header("Last-Modified"),
            }
        return resp
