"""Unsplash against a local server that answers with Unsplash-shaped responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine import AuthError, PermanentError, RateLimited, TransientError
from engine.auth import NEEDS_RECONNECT, AccountSession
from engine.http import HttpClient
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import unsplash
from tests.integrations.provider import FakeProvider, Reply, Seen, load_fixture, serve

FIXTURES = Path(__file__).parent / "fixtures" / "unsplash"
KEY = "Hj3xq0V9sLwT2pYbN7cRkD5mFgA1eZuQ8iOtWvS4nKo"
UTM = "utm_source=hookline&utm_medium=referral"


def fixture(name: str) -> Any:
    return load_fixture("unsplash", name)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(not_found=Reply(fixture("error_not_found.json"), status=404))
    async with serve(fake.handle) as base:
        monkeypatch.setattr(unsplash.service, "api_base_url", base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(unsplash.service, KEY, http, name="Unsplash app")


def poll(params: dict[str, Any], http: HttpClient, account: AccountSession | None) -> Any:
    spec = unsplash.service.triggers["new_photo"]
    ctx = poll_context(spec, params, http)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(params: dict[str, Any], http: HttpClient, account: AccountSession | None) -> Any:
    spec = unsplash.service.reactions["track_download"]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


def assert_api_headers(seen: Seen) -> None:
    assert seen.headers["Authorization"] == f"Client-ID {KEY}"
    assert seen.headers["Accept-Version"] == "v1"


async def test_new_photo_searches_latest_first_with_attribution(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/search/photos", Reply(fixture("search.json")))
    result = await poll({"query": "basil plant"}, http, account)
    [seen] = api.seen
    assert (seen.method, seen.path) == ("GET", "/search/photos")
    assert seen.query == {"query": "basil plant", "order_by": "latest", "per_page": "30"}
    assert_api_headers(seen)
    assert [i.key for i in result.items] == ["Dwu85P9SOIk", "yC-Yzbqy7PY"]
    photo = fixture("photo_a.json")
    assert result.items[0].data == {
        "id": "Dwu85P9SOIk",
        "description": "Basil seedlings on a windowsill",
        "alt_description": "green plant in white pot",
        "url": f"https://unsplash.com/photos/basil-seedlings-on-a-windowsill-Dwu85P9SOIk?{UTM}",
        "image_url": photo["urls"]["regular"],
        "full_url": photo["urls"]["full"],
        "raw_url": photo["urls"]["raw"],
        "thumb_url": photo["urls"]["thumb"],
        "width": 4000,
        "height": 6000,
        "color": "#60544D",
        "likes": 24,
        "photographer": "Marta Kowal",
        "photographer_username": "marta_kowal",
        "photographer_url": f"https://unsplash.com/@marta_kowal?{UTM}",
        "attribution": "Photo by Marta Kowal on Unsplash",
        "attribution_html": (
            'Photo by <a href="https://unsplash.com/@marta_kowal?utm_source=hookline&amp;'
            'utm_medium=referral">Marta Kowal</a> on <a href="https://unsplash.com/?'
            'utm_source=hookline&amp;utm_medium=referral">Unsplash</a>'
        ),
        "download_location": "https://api.unsplash.com/photos/Dwu85P9SOIk/download?ixid=M3w1MDk2",
        "created_at": "2025-03-15T08:10:12Z",
    }
    other = result.items[1].data
    assert other["description"] == "person holding a pot of herbs"  # no description: alt text
    assert ">Jonas &lt;Eberle&gt;</a>" in other["attribution_html"]


async def test_new_photo_from_a_photographer(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/users/marta_kowal/photos", Reply(fixture("user_photos.json")))
    result = await poll({"username": "@marta_kowal"}, http, account)
    [seen] = api.seen
    assert seen.query == {"order_by": "latest", "per_page": "30"}
    assert_api_headers(seen)
    assert [i.key for i in result.items] == ["Dwu85P9SOIk"]

    with pytest.raises(PermanentError, match="Unsplash has no photographer 'nobody_here'"):
        await poll({"username": "nobody_here"}, http, account)


async def test_new_photos_fire_oldest_first_whatever_the_listing_order(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    found = fixture("search.json")
    newer, older = found["results"]
    older["created_at"] = "2025-03-14T13:40:02-04:00"  # Unsplash gives the uploader's offset
    found["results"] = [older, newer]
    api.on("GET", "/search/photos", Reply(found))
    result = await poll({"query": "basil"}, http, account)
    assert [i.key for i in oldest_first(result.items)] == ["yC-Yzbqy7PY", "Dwu85P9SOIk"]


async def test_track_download(api: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    api.on("GET", "/photos/Dwu85P9SOIk/download", Reply(fixture("download.json")))
    out = await react({"photo_id": "Dwu85P9SOIk"}, http, account)
    assert_api_headers(api.seen[0])
    assert out == {"url": fixture("photo_a.json")["urls"]["raw"]}
    with pytest.raises(PermanentError, match="is not a photo id"):
        await react({"photo_id": "a/b"}, http, account)


async def test_bad_input_and_a_missing_key(http: HttpClient, account: AccountSession) -> None:
    with pytest.raises(PermanentError, match="one of the two, not both"):
        await poll({}, http, account)
    with pytest.raises(PermanentError, match="one of the two, not both"):
        await poll({"query": "basil", "username": "marta_kowal"}, http, account)
    with pytest.raises(AuthError, match="choose the Unsplash Access Key"):
        await poll({"query": "basil"}, http, None)


async def test_the_account_check_uses_the_key(api: FakeProvider, http: HttpClient) -> None:
    api.on("GET", "/photos", Reply(fixture("user_photos.json")))
    assert unsplash.service.api_key is not None and unsplash.service.api_key.userinfo is not None
    assert await unsplash.service.api_key.userinfo(http, KEY) == "Unsplash app"
    assert api.seen[0].query == {"per_page": "1"}
    assert_api_headers(api.seen[0])


async def test_a_refused_key_marks_the_account_for_reconnecting(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    api.on("GET", "/search/photos", Reply(fixture("error_unauthorized.json"), status=401))
    with pytest.raises(
        AuthError, match=r"needs reconnecting.*reconnect the account in Hookline \(Accounts, "
        r"or `hookline accounts token unsplash`\)"
    ):
        await poll({"query": "basil"}, http, account)
    assert account.account.status == NEEDS_RECONNECT
    assert len(api.seen) == 1  # a key cannot be renewed: not retried
    assert_api_headers(api.seen[0])
    with pytest.raises(AuthError, match="needs reconnecting"):
        await react({"photo_id": "Dwu85P9SOIk"}, http, account)
    assert len(api.seen) == 1


async def test_rate_limit_and_server_errors(
    api: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    limit = (FIXTURES / "error_rate_limit.txt").read_text()
    api.on(
        "GET",
        "/search/photos",
        Reply(
            limit,
            status=403,
            headers={"X-Ratelimit-Limit": "50", "X-Ratelimit-Remaining": "0"},
        ),
    )
    with pytest.raises(RateLimited, match="hourly request limit") as caught:
        await poll({"query": "basil"}, http, account)
    assert caught.value.retry_after == 3600

    api.on("GET", "/search/photos", Reply(limit, status=429, headers={"Retry-After": "90"}))
    with pytest.raises(RateLimited) as caught:
        await poll({"query": "basil"}, http, account)
    assert caught.value.retry_after == 90

    api.on("GET", "/search/photos", Reply(fixture("error_server.json"), status=503))
    with pytest.raises(TransientError, match=r"Unsplash had a problem .* \(HTTP 503\)"):
        await poll({"query": "basil"}, http, account)


def test_the_declaration() -> None:
    assert unsplash.service.api_base_url == "https://api.unsplash.com"
    assert unsplash.service.oauth is None and unsplash.service.api_key is not None
    assert set(unsplash.service.triggers) == {"new_photo"}
    assert set(unsplash.service.reactions) == {"track_download"}
    icon = Path(__file__).parents[2] / "resources" / "icons" / unsplash.service.icon
    assert icon.is_file()
