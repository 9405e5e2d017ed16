"""Weather against a local server that answers with Open-Meteo-shaped responses."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from engine import PermanentError, PollResult, RateLimited, TransientError
from engine.http import HttpClient
from engine.testing import poll_context
from integrations import weather
from tests.integrations.provider import load_fixture, serve


def fixture(name: str) -> Any:
    return load_fixture("weather", name)


@dataclass
class FakeOpenMeteo:
    """Answers /v1/search and /v1/forecast; records every request's path and query."""

    base: str = ""
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    geocoding: Any = None
    forecast: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, dict(request.query)))
        body = self.geocoding if request.path == "/v1/search" else self.forecast
        return web.json_response(body, status=self.status, headers=self.headers)

    def temperature(self, value: float) -> None:
        self.forecast = copy.deepcopy(fixture("forecast_current.json"))
        self.forecast["current"]["temperature_2m"] = value


@pytest.fixture
async def om(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenMeteo]:
    fake = FakeOpenMeteo(geocoding=fixture("geocoding_berlin.json"))
    fake.forecast = fixture("forecast_current.json")
    async with serve(fake.handle) as fake.base:
        monkeypatch.setattr(weather.service, "api_base_url", fake.base)
        monkeypatch.setattr(weather, "GEOCODING_BASE_URL", fake.base)
        yield fake


PARAMS = {"place": "Berlin", "measure": "temperature", "direction": "below", "threshold": 2}


async def poll(params: dict[str, Any], http: HttpClient, state: dict[str, Any]) -> PollResult:
    spec = weather.service.triggers["threshold_crossed"]
    assert spec.poll is not None
    return await spec.poll(poll_context(spec, params, http, state=state))


async def test_place_name_is_geocoded_once_and_current_value_is_asked_for(
    om: FakeOpenMeteo, http: HttpClient
) -> None:
    state: dict[str, Any] = {}
    result = await poll(PARAMS, http, state)
    assert om.seen[0] == (
        "/v1/search",
        {"name": "Berlin", "count": "1", "language": "en", "format": "json"},
    )
    assert om.seen[1] == (
        "/v1/forecast",
        {
            "latitude": "52.5244",
            "longitude": "13.4105",
            "current": "temperature_2m",
            "timezone": "UTC",
        },
    )
    [item] = result.items
    assert item.data == {
        "place": "Berlin, Land Berlin, Germany",
        "measure": "temperature",
        "value": 1.6,
        "threshold": 2.0,
        "direction": "below",
        "observed_at": "2026-11-22T03:45:00+00:00",
    }
    await poll(PARAMS, http, state)
    assert [path for path, _q in om.seen] == ["/v1/search", "/v1/forecast", "/v1/forecast"]


async def test_fires_once_per_crossing(om: FakeOpenMeteo, http: HttpClient) -> None:
    state: dict[str, Any] = {}
    keys = []
    for value in (3.0, 1.5, 0.5, 2.5, 1.0):
        om.temperature(value)
        result = await poll(PARAMS, http, state)
        keys.append([item.key for item in result.items])
    # Above, below (crossing 1), still below (same key), back above, below again (crossing 2).
    assert keys == [
        [],
        ["temperature:below:2:1"],
        ["temperature:below:2:1"],
        [],
        ["temperature:below:2:2"],
    ]


async def test_rises_above_wind_speed_with_coordinates(om: FakeOpenMeteo, http: HttpClient) -> None:
    om.forecast = copy.deepcopy(fixture("forecast_current.json"))
    om.forecast["current"] = {"time": "2026-11-22T03:45", "interval": 900, "wind_speed_10m": 61.2}
    params = {"place": "48.85,2.35", "measure": "wind_speed", "direction": "above", "threshold": 50}
    result = await poll(params, http, {})
    assert om.seen == [
        (
            "/v1/forecast",
            {
                "latitude": "48.8500",
                "longitude": "2.3500",
                "current": "wind_speed_10m",
                "timezone": "UTC",
            },
        )
    ]
    [item] = result.items
    assert item.data["value"] == 61.2
    assert item.data["place"] == "48.85,2.35"


async def test_unknown_place_says_what_to_do(om: FakeOpenMeteo, http: HttpClient) -> None:
    om.geocoding = fixture("geocoding_no_results.json")
    with pytest.raises(PermanentError, match=r"no place called 'Atlantis'.*LAT,LON"):
        await poll({**PARAMS, "place": "Atlantis"}, http, {})


async def test_coordinates_out_of_range_are_refused_without_a_request(
    om: FakeOpenMeteo, http: HttpClient
) -> None:
    with pytest.raises(PermanentError, match="out of range"):
        await poll({**PARAMS, "place": "95,13"}, http, {})
    assert om.seen == []


async def test_open_meteo_reason_is_shown_on_400(om: FakeOpenMeteo, http: HttpClient) -> None:
    om.forecast, om.status = fixture("error_bad_request.json"), 400
    with pytest.raises(PermanentError, match="Latitude must be in range"):
        await poll({**PARAMS, "place": "52.5,13.4"}, http, {})


async def test_rate_limit_and_server_errors(om: FakeOpenMeteo, http: HttpClient) -> None:
    om.forecast = {"error": True, "reason": "Minutely API request limit exceeded."}
    om.status, om.headers = 429, {"Retry-After": "60"}
    with pytest.raises(RateLimited) as caught:
        await poll({**PARAMS, "place": "52.5,13.4"}, http, {})
    assert caught.value.retry_after == 60
    om.status, om.headers = 502, {}
    with pytest.raises(TransientError, match="HTTP 502"):
        await poll({**PARAMS, "place": "52.5,13.4"}, http, {})


async def test_missing_current_value_is_transient(om: FakeOpenMeteo, http: HttpClient) -> None:
    om.forecast = {"latitude": 52.52, "longitude": 13.42, "current": {"time": "2026-11-22T03:45"}}
    with pytest.raises(TransientError, match="no current temperature"):
        await poll({**PARAMS, "place": "52.5,13.4"}, http, {})
