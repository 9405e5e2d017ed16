"""Shared helpers for the benchmark scripts (not a benchmark itself).

Everything here is about running things robustly on a shared, noisy machine: free
ports, child processes that are always stopped, bounded waits, wrk output parsing.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
WITH_KEYRING = ROOT / "scripts" / "with-keyring"
WRK = "/usr/bin/wrk"

#: ~100 bytes of JSON, the body every load test POSTs.
BODY = (
    '{"sensor":"living-room","temperature":21.5,"humidity":40,'
    '"battery":87,"ts":"2025-03-14T09:26:53Z"}'
)


# --------------------------------------------------------------------------- engine side


def registry() -> Any:
    """The built-in services that can be imported now (a service still being written
    is left out rather than failing the benchmark)."""
    from engine.registry import BUILTIN_MODULES, Registry

    available = []
    for name in BUILTIN_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        available.append(name)
    return Registry.load(modules=available, plugins=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0 or math.isnan(value) or math.isnan(base):
        return None
    return value / base


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def emit_json(figures: dict[str, Any]) -> None:
    """The last line every script prints: its figures, machine-readable."""

    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return None if math.isnan(v) or math.isinf(v) else round(v, 4)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    print(json.dumps(clean(figures), sort_keys=True), flush=True)


# --------------------------------------------------------------------------- processes


class Child:
    """A child process started in its own session (so its whole group can be stopped),
    with stdout read on a thread and stderr kept in a log file."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        keyring: bool = False,
        name: str = "child",
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(WITH_KEYRING), *argv] if keyring else list(argv)
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"hookline-bench-{name}-", suffix=".log", delete=False
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.info: dict[str, Any] = {}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Wait for the child's ``READY {json}`` line; raise with its log if it dies."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.name} not ready within {timeout:g} s\n{self.log_tail()}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(5)
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}) before it "
                    f"was ready\n{self.log_tail()}"
                )
            if line.startswith("READY "):
                self.info = json.loads(line[len("READY ") :])
                return self.info

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def pid(self) -> int:
        """The process doing the work (the Python runner, not the keyring wrapper)."""
        return int(self.info.get("pid") or self.proc.pid)

    def stop(self, grace: float = 10.0) -> None:
        """Ask the runner to stop (SIGTERM), then end the whole process group."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(grace)
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(wait)
        finally:
            if self.proc.stdout is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdout.close()
            self._log.close()
            with contextlib.suppress(OSError):
                os.unlink(self._log.name)


# --------------------------------------------------------------------------- wrk

_LUA = r"""
local paths = {%(paths)s}
local body = %(body)s
local headers = {["Content-Type"] = "application/json"}
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local requests = {}
local counter = 0
function init(args)
  for i, p in ipairs(paths) do
    requests[i] = wrk.format("POST", p, headers, body)
  end
end

function request()
  counter = counter + 1
  return requests[(counter %% #requests) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"status_errors":%%d,"connect":%%d,'
    .. '"read":%%d,"write":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,'
    .. '"p999_us":%%d,"max_us":%%d,"mean_us":%%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(paths: Sequence[str], directory: Path) -> Path:
    """A Lua script that POSTs :data:`BODY` as JSON, round-robin over ``paths``."""
    script = directory / "post.lua"
    script.write_text(
        _LUA % {"paths": ", ".join(_lua_string(p) for p in paths), "body": _lua_string(BODY)}
    )
    return script


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return math.nan
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    url: str,
    script: Path,
    *,
    duration: float,
    threads: int = 2,
    connections: int = 32,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Run wrk; return req/s, latency percentiles (ms), counts and errors."""
    argv = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        f"--timeout={timeout:g}s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()}")
    text = out.stdout
    result: dict[str, Any] = {"raw": text}
    match = re.search(r"Requests/sec:\s*([\d.]+)", text)
    result["rps"] = float(match.group(1)) if match else math.nan
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+(\S+)", text, re.MULTILINE)
        result[f"p{pct}_ms"] = _ms(m.group(1)) if m else math.nan
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    result["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"^WRKJSON (.*)$", text, re.MULTILINE)
    if m:
        extra = json.loads(m.group(1))
        result["requests"] = extra["requests"]
        result["seconds"] = extra["duration_us"] / 1e6
        result["p999_ms"] = extra["p999_us"] / 1000
        result["max_ms"] = extra["max_us"] / 1000
        result["socket_errors"] = sum(extra[k] for k in ("connect", "read", "write", "timeout"))
    return result
