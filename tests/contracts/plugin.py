"""Checks every request a service test's fake provider receives against the provider's description.

`tests/integrations/provider.serve()` hands each request to `watch`. While a test of
tests/integrations/test_<service>.py runs, a request the service sent (not one the test
made with a bare client) is checked against tests/contracts/<service>.json (or .yaml);
what does not fit fails that test at the end of its call, naming the request. A
service without a description there is not checked (tests/contracts/test_sources.py
says why, from its <service>.source.md). Each description is loaded once a session.

With HOOKLINE_CONTRACTS_RECORD=<file> every such request is also written there as a
JSON line (scripts/refresh-contracts trims the descriptions to them).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.contracts.description import Description, Request
from tests.contracts.deviations import BODY_AS_QUERY, forgiven

CONTRACTS = Path(__file__).parent
MODULE = re.compile(r"^tests\.integrations\.test_([a-z0-9]+)$")
#: The User-Agent of a bare aiohttp client (a test's own request, not the service's).
BARE_CLIENT = re.compile(r"^Python/[\d.]+ aiohttp/")


def description_file(service: str) -> Path | None:
    for suffix in (".json", ".yaml", ".yml"):
        path = CONTRACTS / f"{service}{suffix}"
        if path.exists():
            return path
    return None


_loaded: dict[str, Description | None] = {}


def description(service: str) -> Description | None:
    """The service's description, loaded the first time it is asked for."""
    if service not in _loaded:
        path = description_file(service)
        _loaded[service] = Description.load(path) if path else None
    return _loaded[service]


@dataclass
class _Current:
    service: str
    base_paths: tuple[str, ...]
    problems: list[str] = field(default_factory=list)


_current: _Current | None = None
#: The path part of each service's base URLs as declared (read before any test replaces
#: them with a fake's address).
_base_paths: dict[str, tuple[str, ...]] = {}


def declared_base_paths(service: str) -> tuple[str, ...]:
    module = sys.modules.get(f"integrations.{service}")
    paths = {""}
    if module is not None:
        urls = [getattr(getattr(module, "service", None), "api_base_url", "")]
        urls += [v for k, v in vars(module).items() if k.endswith("_URL") and isinstance(v, str)]
        paths |= {urlsplit(u).path.rstrip("/") for u in urls if u.startswith("https://")}
    return tuple(sorted(paths))


def check(request: Request, service: str) -> list[str]:
    """What `request` does wrong by `service`'s description (empty when it fits, when the
    service has no description, or when it is a known deviation)."""
    spec = description(service)
    if spec is None:
        return []
    if service in BODY_AS_QUERY and request.content_type == "application/json" and request.body:
        fields = json.loads(request.body)
        query = {**request.query, **{k: str(v) for k, v in fields.items()}}
        request = replace(request, query=query, body=b"")
    problems = forgiven(service, request, spec.check(request))
    return [f"{request.describe()}: {p}" for p in problems]


async def watch(request: web.Request) -> None:
    """Check (and record) one request a fake provider received."""
    current = _current
    if current is None or BARE_CLIENT.match(request.headers.get("User-Agent", "")):
        return
    seen = Request(
        request.method,
        request.path,
        dict(request.query),
        dict(request.headers),
        await request.read(),
        current.base_paths,
    )
    _record(current.service, seen)
    current.problems += check(seen, current.service)


def _record(service: str, request: Request) -> None:
    target = os.environ.get("HOOKLINE_CONTRACTS_RECORD")
    if not target:
        return
    line = {"service": service, "method": request.method, "paths": request.candidates()}
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


# ---------------------------------------------------------------------- pytest hooks
def _module_of(item: pytest.Item) -> re.Match[str] | None:
    return MODULE.match(getattr(getattr(item, "module", None), "__name__", "") or "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        match = _module_of(item)
        if match and match[1] not in _base_paths:
            _base_paths[match[1]] = declared_base_paths(match[1])


@contextmanager
def checking(service: str, base_paths: tuple[str, ...] | None = None) -> Iterator[_Current]:
    """Check the requests fake providers receive meanwhile against `service`'s description."""
    global _current
    paths = base_paths or _base_paths.get(service) or declared_base_paths(service)
    _current = _Current(service, paths)
    try:
        yield _current
    finally:
        _current = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    match = _module_of(item)
    if not match:
        return (yield)
    with checking(match[1]):
        return (yield)


def fail_on_problems() -> None:
    """Fail the running test if a request it made does not fit the description."""
    if _current is not None and _current.problems:
        problems, _current.problems = _current.problems, []
        path = description_file(_current.service)
        pytest.fail(
            f"requests that {path} does not have (see docs/contracts.md):\n  "
            + "\n  ".join(dict.fromkeys(problems)),
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    result = yield
    fail_on_problems()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    result = yield
    fail_on_problems()
    return result
