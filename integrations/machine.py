"""This computer: it woke from sleep, Hookline started, you went idle or came back,
the network changed. Each reading goes through a small reader function, so tests
(and platforms without a reader) can stand in for the OS."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine import (
    Field,
    Item,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    Service,
)

service = Service(
    "machine",
    "This computer",
    "Things that happen on this computer: waking from sleep, Hookline starting, you "
    "going idle or coming back, the network changing.",
    icon="machine.svg",
)

#: One id per Hookline process: "Hookline started" fires once per start.
STARTED_ID = uuid.uuid4().hex
STARTED_AT = datetime.now(UTC)


class Unavailable(Exception):
    """This system offers no way to read that (the message says why)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ----------------------------------------------------------------------- readers


def sleep_clocks() -> tuple[float, float]:
    """(seconds that include sleep, seconds that do not); their growth differs by the
    time the machine slept."""
    if hasattr(time, "CLOCK_BOOTTIME"):  # Linux: monotonic stops during suspend
        return time.clock_gettime(time.CLOCK_BOOTTIME), time.monotonic()
    return time.time(), time.monotonic()  # elsewhere the wall clock runs on


def idle_seconds() -> float:
    """Seconds since the last keyboard or mouse input, from the OS."""
    if sys.platform == "win32":
        class LastInput(ctypes.Structure):
            _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint)]

        info = LastInput()
        info.cbSize = ctypes.sizeof(info)
        if not ctypes.windll.user32.GetLastInputInfo(ctypes.byref(info)):  # type: ignore[attr-defined]
            raise Unavailable("Windows did not report the last input time")
        ticks = ctypes.windll.kernel32.GetTickCount()  # type: ignore[attr-defined]
        return float((ticks - info.dwTime) & 0xFFFFFFFF) / 1000.0
    if sys.platform == "darwin":
        out = _run(["ioreg", "-c", "IOHIDSystem"])
        for line in out.splitlines():
            if "HIDIdleTime" in line:
                return int(line.rsplit("=", 1)[1].strip()) / 1e9
        raise Unavailable("macOS did not report HIDIdleTime")
    return _linux_idle_seconds()


def _linux_idle_seconds() -> float:
    reasons = []
    if shutil.which("gdbus") and os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        try:  # GNOME (Wayland and X11)
            out = _run(["gdbus", "call", "--session", "--dest", "org.gnome.Mutter.IdleMonitor",
                        "--object-path", "/org/gnome/Mutter/IdleMonitor/Core",
                        "--method", "org.gnome.Mutter.IdleMonitor.GetIdletime"])
            return int(out.strip("()\n ,").split()[-1].rstrip(",")) / 1000.0
        except (Unavailable, ValueError, IndexError) as exc:
            reasons.append(f"GNOME idle monitor: {exc}")
    if os.environ.get("DISPLAY"):
        try:
            return _x_screensaver_idle()
        except Unavailable as exc:
            reasons.append(f"X screensaver: {exc}")
    else:
        reasons.append("no X display")
    raise Unavailable("this desktop does not report idle time (" + "; ".join(reasons) + ")")


def _x_screensaver_idle() -> float:
    xlib, xss = ctypes.util.find_library("X11"), ctypes.util.find_library("Xss")
    if not xlib or not xss:
        raise Unavailable("libX11/libXss not installed")

    class Info(ctypes.Structure):
        _fields_ = [("window", ctypes.c_ulong), ("state", ctypes.c_int),
                    ("kind", ctypes.c_int), ("til_or_since", ctypes.c_ulong),
                    ("idle", ctypes.c_ulong), ("event_mask", ctypes.c_ulong)]

    x11, scr = ctypes.cdll.LoadLibrary(xlib), ctypes.cdll.LoadLibrary(xss)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    display = x11.XOpenDisplay(None)
    if not display:
        raise Unavailable("cannot open the X display")
    try:
        scr.XScreenSaverAllocInfo.restype = ctypes.POINTER(Info)
        info = scr.XScreenSaverAllocInfo()
        root = x11.XDefaultRootWindow(ctypes.c_void_p(display))
        scr.XScreenSaverQueryInfo(ctypes.c_void_p(display), ctypes.c_ulong(root), info)
        return float(info.contents.idle) / 1000.0
    finally:
        x11.XCloseDisplay(ctypes.c_void_p(display))


@dataclass(frozen=True)
class NetworkState:
    """What the network looks like now."""

    connected: bool
    addresses: tuple[str, ...]
    wifi: str


def network_state() -> NetworkState:
    """Interfaces that are up (loopback aside), their addresses, and the Wi-Fi name when
    the OS tells it."""
    import psutil  # here, not at the top: listing the catalog need not load it

    stats = psutil.net_if_stats()
    addresses: list[str] = []
    for name, addrs in psutil.net_if_addrs().items():
        if not stats.get(name) or not stats[name].isup or name.startswith(("lo", "Loopback")):
            continue
        addresses += [a.address.split("%")[0] for a in addrs
                      if a.family.name in ("AF_INET", "AF_INET6")]
    return NetworkState(bool(addresses), tuple(sorted(addresses)), _wifi_name())


def _wifi_name() -> str:
    commands: list[list[str]] = []
    if sys.platform.startswith("linux"):
        commands = [["iwgetid", "-r"], ["nmcli", "-t", "-f", "active,ssid", "dev", "wifi"]]
    elif sys.platform == "win32":
        commands = [["netsh", "wlan", "show", "interfaces"]]
    for command in commands:
        if not shutil.which(command[0]):
            continue
        try:
            out = _run(command)
        except Unavailable:
            continue
        if command[0] == "nmcli":
            out = next((line.split(":", 1)[1] for line in out.splitlines()
                        if line.startswith("yes:")), "")
        elif command[0] == "netsh":
            out = next((line.split(":", 1)[1] for line in out.splitlines()
                        if line.strip().startswith("SSID") and "BSSID" not in line), "")
        if out.strip():
            return out.strip()
    return ""


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5,
                              check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"{command[0]}: {exc}") from None
    return done.stdout


def no_clipboard() -> str:
    raise Unavailable("the clipboard can be read only while the desktop app runs "
                      "(a headless `hookline serve` has no clipboard)")


#: The readers the triggers use; tests put stand-ins here, and the desktop app puts
#: its clipboard reader in ``"clipboard"``.
readers: dict[str, Callable[[], Any]] = {
    "clocks": sleep_clocks,
    "idle": idle_seconds,
    "network": network_state,
    "clipboard": no_clipboard,
}


def _read(name: str) -> Any:
    try:
        return readers[name]()
    except Unavailable as exc:
        raise PermanentError(str(exc)) from None


# ----------------------------------------------------------------------- triggers


@service.poll_trigger(
    "app_started", "Hookline started",
    "Fires each time Hookline starts (not when you create this automation).",
    fields=[Field("started_at", "When it started", "2026-11-22T08:00:00+00:00")],
    default_interval=30, min_interval=5,
)
async def app_started(ctx: PollContext) -> PollResult:
    return PollResult([Item(STARTED_ID, {"started_at": STARTED_AT.isoformat()})])


@service.poll_trigger(
    "woke", "Woke from sleep",
    "Fires when the computer wakes from sleep (noticed within the check interval).",
    params=[Param("min_sleep", ParamType.DURATION, "Slept at least",
                  help="Ignore naps shorter than this.", default=60, minimum=10)],
    fields=[Field("slept_seconds", "How long it slept", 3600),
            Field("woke_at", "When it woke", "2026-11-22T08:00:00+00:00")],
    default_interval=30, min_interval=5,
)
async def woke(ctx: PollContext) -> PollResult:
    with_sleep, without = _read("clocks")
    last = ctx.state.get("clocks")
    ctx.state["clocks"] = [with_sleep, without, STARTED_ID]
    if last and last[2] == STARTED_ID:
        slept = (with_sleep - last[0]) - (without - last[1])
        if slept >= float(ctx.params["min_sleep"]):
            ctx.state["wakes"] = int(ctx.state.get("wakes", 0)) + 1
            ctx.state["last_wake"] = {"slept_seconds": round(slept), "woke_at": _now()}
    wake = ctx.state.get("last_wake")
    if not wake:
        return PollResult([])
    return PollResult([Item(f"wake-{ctx.state['wakes']}", wake)])


def _transition(ctx: PollContext, name: str, now_on: bool, data: Mapping[str, Any]
                ) -> PollResult:
    """An item per change into the state this trigger watches (a counter keys it)."""
    was = ctx.state.get(name)
    ctx.state[name] = now_on
    if now_on and was is False:
        ctx.state[f"{name}_count"] = int(ctx.state.get(f"{name}_count", 0)) + 1
        ctx.state[f"{name}_data"] = dict(data)
    count = ctx.state.get(f"{name}_count")
    return PollResult([Item(f"{name}-{count}", ctx.state[f"{name}_data"])] if count else [])


_IDLE_PARAMS = [Param("after", ParamType.DURATION, "Idle after",
                      help="No keyboard or mouse input for this long counts as idle.",
                      default=300, minimum=10)]
_IDLE_FIELDS = [Field("idle_seconds", "Seconds without input", 300),
                Field("at", "When it was noticed", "2026-11-22T08:00:00+00:00")]


@service.poll_trigger(
    "became_idle", "You went idle",
    "Fires when there has been no keyboard or mouse input for a while. Needs a desktop "
    "session (Windows, macOS, GNOME, or X11 with the screensaver extension).",
    params=_IDLE_PARAMS, fields=_IDLE_FIELDS, default_interval=15, min_interval=5,
)
async def became_idle(ctx: PollContext) -> PollResult:
    idle = float(_read("idle"))
    return _transition(ctx, "idle", idle >= float(ctx.params["after"]),
                       {"idle_seconds": round(idle), "at": _now()})


@service.poll_trigger(
    "became_active", "You are back",
    "Fires when you use the keyboard or mouse again after being idle for a while.",
    params=_IDLE_PARAMS, fields=_IDLE_FIELDS, default_interval=10, min_interval=5,
)
async def became_active(ctx: PollContext) -> PollResult:
    idle = float(_read("idle"))
    return _transition(ctx, "active", idle < float(ctx.params["after"]),
                       {"idle_seconds": round(idle), "at": _now()})


@service.poll_trigger(
    "network_changed", "Network changed",
    "Fires when this computer connects, disconnects, or joins another Wi-Fi network "
    "(the Wi-Fi name where the system tells it).",
    params=[Param("only", ParamType.CHOICE, "Fire on", default="any",
                  choices=(("any", "Any change"), ("connected", "Connected"),
                           ("disconnected", "Disconnected")))],
    fields=[Field("connected", "Connected", True),
            Field("wifi", "Wi-Fi name", "Home"),
            Field("addresses", "Addresses", ["192.168.1.20"]),
            Field("change", "What changed", "connected")],
    default_interval=15, min_interval=5,
)
async def network_changed(ctx: PollContext) -> PollResult:
    state: NetworkState = _read("network")
    signature = [state.connected, state.wifi, list(state.addresses)]
    last = ctx.state.get("network")
    ctx.state["network"] = signature
    if last is not None and last != signature:
        change = ("connected" if state.connected and not last[0] else
                  "disconnected" if last[0] and not state.connected else "changed")
        wanted = ctx.params["only"]
        if wanted == "any" or wanted == change:
            ctx.state["changes"] = int(ctx.state.get("changes", 0)) + 1
            ctx.state["last_change"] = {"connected": state.connected, "wifi": state.wifi,
                                        "addresses": list(state.addresses), "change": change}
    if "last_change" not in ctx.state:
        return PollResult([])
    return PollResult([Item(f"net-{ctx.state['changes']}", ctx.state["last_change"])])


@service.poll_trigger(
    "clipboard_changed", "Clipboard changed",
    "Fires when you copy new text (desktop app only; checked every few seconds). "
    "The text is kept in the run history like any trigger data: avoid it where you "
    "copy passwords.",
    params=[Param("contains", ParamType.TEXT, "Only when it contains", required=False,
                  help="Fire only for text containing this (letter case ignored).")],
    fields=[Field("text", "The copied text", "https://example.org/article"),
            Field("length", "Its length", 27)],
    default_interval=3, min_interval=1,
)
async def clipboard_changed(ctx: PollContext) -> PollResult:
    text = str(_read("clipboard"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    if ctx.state.get("digest") != digest:
        first = "digest" not in ctx.state
        ctx.state["digest"] = digest
        wanted = str(ctx.params.get("contains") or "").lower()
        if not first and text and (not wanted or wanted in text.lower()):
            ctx.state["copies"] = int(ctx.state.get("copies", 0)) + 1
            ctx.state["last"] = {"text": text[:10000], "length": len(text)}
    if "last" not in ctx.state:
        return PollResult([])
    return PollResult([Item(f"copy-{ctx.state['copies']}", ctx.state["last"])])
