"""Weather: current conditions from Open-Meteo (no account), fired when a threshold is crossed."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from engine import (
    Field,
    Item,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    RateLimited,
    Service,
    TransientError,
)

if TYPE_CHECKING:
    from engine import HttpResponse

#: Where a place name is turned into coordinates (tests point it at a local server).
GEOCODING_BASE_URL = "https://geocoding-api.open-meteo.com"

#: measure -> (Open-Meteo ``current=`` variable, unit, label)
MEASURES: dict[str, tuple[str, str, str]] = {
    "temperature": ("temperature_2m", "°C", "Temperature (°C)"),
    "precipitation": ("precipitation", "mm", "Precipitation (mm)"),
    "wind_speed": ("wind_speed_10m", "km/h", "Wind speed (km/h)"),
}

_LATLON_RE = re.compile(r"^\s*(-?\d{1,2}(?:\.\d+)?)\s*,\s*(-?\d{1,3}(?:\.\d+)?)\s*$")

service = Service(
    "weather",
    "Weather",
    "Current temperature, precipitation and wind anywhere, from Open-Meteo (no account).",
    icon="weather.svg",
    api_base_url="https://api.open-meteo.com",
)


def _check(resp: HttpResponse, what: str) -> Any:
    """The JSON of an Open-Meteo answer, or the engine error for a failed one."""
    status = resp.status
    reason = ""
    try:
        data = json.loads(resp.body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("error"):
        reason = str(data.get("reason") or "")
    said = f": {reason}" if reason else ""
    if status == 429:
        raise RateLimited(f"Open-Meteo's free limit is used up for now{said}", resp.retry_after())
    if status >= 500:
        raise TransientError(f"Open-Meteo had a problem answering {what} (HTTP {status})")
    if status >= 400:
        raise PermanentError(f"Open-Meteo refused {what}{said}")
    if not isinstance(data, dict):
        raise PermanentError(f"Open-Meteo answered {what} with something that is not JSON")
    return data


async def _locate(ctx: PollContext) -> tuple[float, float, str]:
    """Coordinates and a display name for the ``place`` param (cached in the state)."""
    place = str(ctx.params["place"]).strip()
    if not place:
        raise PermanentError("write a place name (Berlin) or coordinates (52.52,13.41)")
    match = _LATLON_RE.match(place)
    if match:
        lat, lon = float(match.group(1)), float(match.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise PermanentError(
                f"{place!r} is out of range: latitude is -90..90 and longitude -180..180"
            )
        return lat, lon, place
    cached = ctx.state.get("location")
    if isinstance(cached, dict) and cached.get("query") == place:
        return float(cached["latitude"]), float(cached["longitude"]), str(cached["name"])
    query = urlencode({"name": place, "count": "1", "language": "en", "format": "json"})
    resp = await ctx.http.get(f"{GEOCODING_BASE_URL.rstrip('/')}/v1/search?{query}", check=False)
    data = _check(resp, f"the place search for {place!r}")
    results = data.get("results") or []
    if not results:
        raise PermanentError(
            f"Open-Meteo knows no place called {place!r}: check the spelling, or give "
            "coordinates as LAT,LON (52.52,13.41)"
        )
    first = results[0]
    name = ", ".join(str(first[k]) for k in ("name", "admin1", "country") if first.get(k))
    lat, lon = float(first["latitude"]), float(first["longitude"])
    ctx.state["location"] = {"query": place, "latitude": lat, "longitude": lon, "name": name}
    return lat, lon, name


def _crossed(value: float, threshold: float, direction: str) -> bool:
    return value > threshold if direction == "above" else value < threshold


@service.poll_trigger(
    "threshold_crossed",
    "Weather crosses a threshold",
    "Fires once each time the current temperature, precipitation or wind speed at a "
    "place rises above or falls below a value (again only after it went back).",
    params=[
        Param(
            "place",
            ParamType.TEXT,
            "Place",
            help="A city or place name, or coordinates as LAT,LON in decimal degrees.",
            example="Berlin",
        ),
        Param(
            "measure",
            ParamType.CHOICE,
            "Measure",
            help="Which current value to watch.",
            choices=tuple((key, label) for key, (_v, _u, label) in MEASURES.items()),
            default="temperature",
            example="temperature",
        ),
        Param(
            "direction",
            ParamType.CHOICE,
            "When it",
            help="Fire when the value goes above the threshold, or when it goes below it.",
            choices=(("above", "rises above"), ("below", "falls below")),
            default="below",
            example="below",
        ),
        Param(
            "threshold",
            ParamType.NUMBER,
            "Threshold",
            help="In the measure's unit: °C, mm of precipitation (last 15 minutes), or km/h.",
            example=0,
        ),
    ],
    fields=[
        Field("place", "Place", "Berlin, Land Berlin, Germany"),
        Field("measure", "Measure", "temperature"),
        Field("value", "Current value", -1.2),
        Field("threshold", "Threshold", 0),
        Field("direction", "Direction (above or below)", "below"),
        Field("observed_at", "Observed at (UTC, ISO 8601)", "2026-11-22T03:45:00+00:00"),
    ],
    default_interval=900.0,
    min_interval=300.0,
)
async def threshold_crossed(ctx: PollContext) -> PollResult:
    """One item while the value is past the threshold, keyed by a crossing counter."""
    measure = str(ctx.params["measure"])
    variable = MEASURES[measure][0]
    direction = str(ctx.params["direction"])
    threshold = float(ctx.params["threshold"])
    lat, lon, name = await _locate(ctx)
    query = urlencode(
        {
            "latitude": f"{lat:.4f}",
            "longitude": f"{lon:.4f}",
            "current": variable,
            "timezone": "UTC",
        }
    )
    url = f"{service.api_base_url.rstrip('/')}/v1/forecast?{query}"
    data = _check(await ctx.http.get(url, check=False), f"the weather for {name}")
    current = data.get("current")
    if not isinstance(current, dict) or not isinstance(current.get(variable), int | float):
        raise TransientError(f"Open-Meteo gave no current {measure} for {name}")
    value = float(current[variable])
    past = _crossed(value, threshold, direction)
    # A new crossing only when the value comes from the other side (or on the first look).
    if past and ctx.state.get("past") is not True:
        ctx.state["crossings"] = int(ctx.state.get("crossings") or 0) + 1
    ctx.state["past"] = past
    if not past:
        return PollResult()
    observed = str(current.get("time") or "")
    if observed and len(observed) == 16:  # Open-Meteo's "2026-11-22T03:45" in UTC
        observed += ":00+00:00"
    item = {
        "place": name,
        "measure": measure,
        "value": value,
        "threshold": threshold,
        "direction": direction,
        "observed_at": observed,
    }
    key = f"{measure}:{direction}:{threshold:g}:{ctx.state['crossings']}"
    return PollResult(items=[Item(key=key, data=item)])
