"""Dropbox against a local server that answers with Dropbox-shaped responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine import AuthError, OAuthClient, PermanentError, RateLimited, TransientError
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.testing import poll_context, reaction_context
from integrations import dropbox
from tests.integrations.provider import FakeProvider, Reply, load_fixture, serve

TOKEN = "sl.u.AF8kXq2yZ-test-token"
FOLDER = "/Camera Uploads"


def fixture(name: str) -> Any:
    return load_fixture("dropbox", name)


@pytest.fixture
async def dbx(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(not_found=Reply("Unknown API function", status=404))
    async with serve(fake.handle, client_max_size=4 * 1024 * 1024) as fake.base:
        monkeypatch.setattr(dropbox.service, "api_base_url", fake.base)
        monkeypatch.setattr(dropbox, "CONTENT_URL", fake.base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(dropbox.service, TOKEN, http, name="marta.kowal@example.org")


def poll(
    trigger: str,
    params: dict[str, Any],
    http: HttpClient,
    account: AccountSession | None,
    state: dict[str, Any] | None = None,
) -> Any:
    spec = dropbox.service.triggers[trigger]
    ctx = poll_context(spec, params, http, state=state)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(
    reaction: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = dropbox.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


def listing(dbx: FakeProvider) -> None:
    dbx.on("POST", "/2/files/list_folder", Reply(fixture("list_folder.json")))
    dbx.on(
        "POST",
        "/2/files/list_folder/continue",
        Reply(fixture("list_folder_page2.json")),
        Reply(fixture("list_folder_continue.json")),
    )


# ---------------------------------------------------------------------- triggers


async def test_new_file_lists_the_folder_then_follows_the_cursor(
    dbx: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    listing(dbx)
    state: dict[str, Any] = {}

    first = await poll("new_file", {"folder": "Camera Uploads/"}, http, account, state)

    listed, page2 = dbx.seen
    assert (listed.method, listed.path) == ("POST", "/2/files/list_folder")
    assert listed.headers["Authorization"] == f"Bearer {TOKEN}"
    assert listed.headers["Content-Type"].startswith("application/json")
    assert listed.json() == {
        "path": FOLDER,
        "recursive": False,
        "include_deleted": False,
        "limit": 500,
    }
    assert page2.path == "/2/files/list_folder/continue"
    assert page2.json() == {"cursor": fixture("list_folder.json")["cursor"]}
    # Files only (the subfolder is left out), newest first.
    assert [i.key for i in first.items] == [
        "id:a4ayc_80_OEAAAAAAAAAYa",
        "id:a4ayc_80_OEAAAAAAAAAXw",
    ]
    assert first.items[0].data == {
        "name": "IMG_2041.jpg",
        "path": "/Camera Uploads/IMG_2041.jpg",
        "id": "id:a4ayc_80_OEAAAAAAAAAYa",
        "rev": "a1c10ce0dd79",
        "size": 2311870,
        "modified_at": "2025-03-14T09:26:53Z",
        "client_modified_at": "2025-03-14T09:26:40Z",
        "content_hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "folder": FOLDER,
    }
    assert state["cursor"] == fixture("list_folder_page2.json")["cursor"]

    later = await poll("new_file", {"folder": "Camera Uploads/"}, http, account, state)

    assert dbx.seen[2].path == "/2/files/list_folder/continue"
    assert dbx.seen[2].json() == {"cursor": fixture("list_folder_page2.json")["cursor"]}
    # An edited file keeps its id (so it does not fire again); the deleted one is left out.
    assert [i.key for i in later.items] == [
        "id:a4ayc_80_OEAAAAAAAAAYb",
        "id:a4ayc_80_OEAAAAAAAAAXw",
    ]
    assert state["cursor"] == fixture("list_folder_continue.json")["cursor"]


async def test_file_changed_keys_each_revision(
    dbx: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    listing(dbx)
    state: dict[str, Any] = {}
    params = {"folder": "/", "recursive": True}
    first = await poll("file_changed", params, http, account, state)
    assert dbx.seen[0].json()["path"] == ""  # the top of the Dropbox
    assert dbx.seen[0].json()["recursive"] is True
    assert "id:a4ayc_80_OEAAAAAAAAAXw@a1c10ce0dd78" in {i.key for i in first.items}
    later = await poll("file_changed", params, http, account, state)
    assert [i.key for i in later.items] == [
        "id:a4ayc_80_OEAAAAAAAAAYb@a1c10ce0dd7b",
        "id:a4ayc_80_OEAAAAAAAAAXw@a1c10ce0dd7a",
    ]
    assert later.items[1].data["folder"] == "/"


async def test_an_expired_cursor_lists_the_folder_afresh(
    dbx: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    dbx.on("POST", "/2/files/list_folder/continue", Reply(fixture("error_reset.json"), status=409))
    dbx.on("POST", "/2/files/list_folder", Reply(fixture("list_folder_page2.json")))
    state: dict[str, Any] = {"cursor": "old", "for": {"folder": FOLDER, "recursive": False}}
    result = await poll("new_file", {"folder": FOLDER}, http, account, state)
    assert [s.path for s in dbx.seen] == ["/2/files/list_folder/continue", "/2/files/list_folder"]
    assert [i.data["name"] for i in result.items] == ["IMG_2041.jpg"]
    assert state["cursor"] == fixture("list_folder_page2.json")["cursor"]


async def test_a_cursor_for_another_folder_is_not_used(
    dbx: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    dbx.on("POST", "/2/files/list_folder", Reply(fixture("list_folder_page2.json")))
    state: dict[str, Any] = {"cursor": "old", "for": {"folder": "/Other", "recursive": False}}
    await poll("new_file", {"folder": FOLDER}, http, account, state)
    assert [s.path for s in dbx.seen] == ["/2/files/list_folder"]


async def test_a_folder_too_big_to_list_says_what_to_do(
    dbx: FakeProvider, http: HttpClient, account: AccountSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dropbox, "MAX_LISTING_PAGES", 1)
    listing(dbx)  # the first page says has_more
    state: dict[str, Any] = {}
    with pytest.raises(PermanentError, match=r"holds more than 500 files .* watch a smaller"):
        await poll("new_file", {"folder": FOLDER, "recursive": True}, http, account, state)
    assert len(dbx.seen) == 1 and state == {}


# ---------------------------------------------------------------------- reactions


async def test_upload_file_sends_the_bytes_and_the_api_arg(
    dbx: FakeProvider, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = tmp_path / "2025-03-14.pdf"
    local.write_bytes(b"%PDF-1.7 report \xe2\x9c\x93\n")
    dbx.on("POST", "/2/files/upload", Reply(fixture("upload.json")))

    out = await react(
        "upload_file", {"file": str(local), "destination": "/Reports/"}, http, account
    )

    [seen] = dbx.seen
    assert (seen.method, seen.path) == ("POST", "/2/files/upload")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"] == "application/octet-stream"
    assert json.loads(seen.headers["Dropbox-API-Arg"]) == {
        "path": "/Reports/2025-03-14.pdf",
        "mode": "add",
        "autorename": True,
        "mute": False,
    }
    assert seen.body == local.read_bytes()
    assert out == {
        "name": "2025-03-14.pdf",
        "path": "/Reports/2025-03-14.pdf",
        "id": "id:a4ayc_80_OEAAAAAAAAAYc",
        "rev": "a1c10ce0dd7c",
        "size": 23,
    }
    assert dropbox.service.reactions["upload_file"].retry is False


async def test_upload_overwrite_escapes_non_ascii_names_in_the_header(
    dbx: FakeProvider, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = tmp_path / "notes.txt"
    local.write_text("hello", encoding="utf-8")
    dbx.on("POST", "/2/files/upload", Reply(fixture("upload.json")))
    await react(
        "upload_file",
        {"file": str(local), "destination": "/Notizen/Übersicht.txt", "mode": "overwrite"},
        http,
        account,
    )
    header = dbx.seen[0].headers["Dropbox-API-Arg"]
    assert header.isascii() and "\\u00dc" in header
    assert json.loads(header) == {
        "path": "/Notizen/Übersicht.txt",
        "mode": "overwrite",
        "autorename": False,
        "mute": False,
    }


async def test_upload_refuses_a_missing_file_and_reports_a_conflict(
    dbx: FakeProvider, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    with pytest.raises(PermanentError, match="is not a file on this computer"):
        await react(
            "upload_file", {"file": str(tmp_path / "nope.pdf"), "destination": "/"}, http, account
        )
    assert dbx.seen == []
    local = tmp_path / "a.txt"
    local.write_text("a", encoding="utf-8")
    dbx.on("POST", "/2/files/upload", Reply(fixture("error_upload_conflict.json"), status=409))
    with pytest.raises(PermanentError, match=r"refused the request for the upload to /a.txt"):
        await react("upload_file", {"file": str(local), "destination": "/"}, http, account)
    assert json.loads(dbx.seen[0].headers["Dropbox-API-Arg"])["path"] == "/a.txt"


async def test_create_shared_link(
    dbx: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    dbx.on(
        "POST", "/2/sharing/create_shared_link_with_settings", Reply(fixture("shared_link.json"))
    )
    out = await react("create_shared_link", {"path": "/Reports/2025-03-14.pdf"}, http, account)
    assert dbx.seen[0].json() == {"path": "/Reports/2025-03-14.pdf"}
    url = "https://www.dropbox.com/scl/fi/x1y2z3ab4cd/2025-03-14.pdf?rlkey=ab12cd34ef56"
    assert out == {
        "url": f"{url}&dl=0",
        "download_url": f"{url}&dl=1",
        "name": "2025-03-14.pdf",
        "path": "/reports/2025-03-14.pdf",
    }


async def test_an_existing_shared_link_is_returned(
    dbx: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    dbx.on(
        "POST",
        "/2/sharing/create_shared_link_with_settings",
        Reply(fixture("error_shared_link_already_exists.json"), status=409),
    )
    out = await react("create_shared_link", {"path": "/Camera Uploads/IMG_2041.jpg"}, http, account)
    assert (
        out["url"] == "https://www.dropbox.com/scl/fi/q9w8e7r6t5/IMG_2041.jpg?rlkey=zz99yy88&dl=0"
    )
    assert len(dbx.seen) == 1

    # Without the link in the error, it is looked up.
    dbx.on(
        "POST",
        "/2/sharing/create_shared_link_with_settings",
        Reply(fixture("error_shared_link_already_exists_bare.json"), status=409),
    )
    dbx.on("POST", "/2/sharing/list_shared_links", Reply(fixture("list_shared_links.json")))
    out = await react("create_shared_link", {"path": "/Camera Uploads/2024"}, http, account)
    assert dbx.seen[-1].json() == {"path": "/Camera Uploads/2024", "direct_only": True}
    assert out["url"] == "https://www.dropbox.com/scl/fo/m1n2b3v4/h?rlkey=kk11jj22&dl=0"
    assert out["name"] == "2024"


async def test_the_account_name_comes_from_the_token(dbx: FakeProvider, http: HttpClient) -> None:
    dbx.on("POST", "/2/users/get_current_account", Reply(fixture("current_account.json")))
    spec = dropbox.service.oauth
    assert spec is not None and spec.userinfo is not None
    assert await spec.userinfo(http, TOKEN) == "marta.kowal@example.org"
    [seen] = dbx.seen
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.body == b""  # Dropbox refuses a body on calls without arguments


# ---------------------------------------------------------------------- errors


async def test_a_refused_token_asks_for_reconnecting(
    dbx: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    dbx.on("POST", "/2/files/list_folder", Reply(fixture("error_expired_token.json"), status=401))
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll("new_file", {"folder": FOLDER}, http, account)
    assert len(dbx.seen) == 1  # a token that cannot be renewed is not retried


async def test_a_missing_permission_says_which(dbx: FakeProvider, http: HttpClient) -> None:
    dbx.on(
        "POST",
        "/2/users/get_current_account",
        Reply(fixture("error_missing_scope.json"), status=401),
    )
    spec = dropbox.service.oauth
    assert spec is not None and spec.userinfo is not None
    with pytest.raises(AuthError, match=r"lacks the permission sharing\.write: tick it"):
        await spec.userinfo(http, TOKEN)


async def test_rate_limits_not_found_forbidden_and_server_errors(
    dbx: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    dbx.on(
        "POST",
        "/2/files/list_folder",
        Reply(fixture("error_too_many_requests.json"), status=429, headers={"Retry-After": "300"}),
    )
    with pytest.raises(RateLimited, match="try again in 300 s") as caught:
        await poll("new_file", {"folder": FOLDER}, http, account)
    assert caught.value.retry_after == 300

    dbx.on("POST", "/2/files/list_folder", Reply(fixture("error_path_not_found.json"), status=409))
    with pytest.raises(PermanentError, match=r"Dropbox has no folder /Camera Uploads .*check"):
        await poll("new_file", {"folder": FOLDER}, http, account)

    dbx.on(
        "POST",
        "/2/sharing/create_shared_link_with_settings",
        Reply({"error_summary": "no_permission/..", "error": {".tag": "no_permission"}}, 403),
    )
    with pytest.raises(AuthError, match=r"does not let this account reach file or folder /x"):
        await react("create_shared_link", {"path": "/x"}, http, account)

    dbx.on("POST", "/2/files/list_folder", Reply({"error": "internal"}, status=503))
    with pytest.raises(TransientError, match=r"Dropbox had a problem .* \(HTTP 503\)"):
        await poll("file_changed", {"folder": FOLDER}, http, account)


async def test_bad_paths_and_a_missing_account(http: HttpClient, account: AccountSession) -> None:
    with pytest.raises(PermanentError, match="is an address: write the path inside Dropbox"):
        await poll("new_file", {"folder": "https://www.dropbox.com/home/x"}, http, account)
    with pytest.raises(PermanentError, match="top of a Dropbox cannot be shared"):
        await react("create_shared_link", {"path": "/"}, http, account)
    with pytest.raises(AuthError, match="choose the Dropbox account"):
        await react("create_shared_link", {"path": "/a.txt"}, http, None)


def test_the_declaration() -> None:
    spec = dropbox.service.oauth
    assert spec is not None
    assert spec.authorize_url == "https://www.dropbox.com/oauth2/authorize"
    assert spec.token_url == "https://api.dropboxapi.com/oauth2/token"
    assert spec.extra_authorize_params == {"token_access_type": "offline"}
    assert spec.pkce and not spec.client_secret_required
    assert {"files.content.write", "sharing.write"} <= set(spec.scopes)
    assert set(dropbox.service.triggers) == {"new_file", "file_changed"}
    assert set(dropbox.service.reactions) == {"upload_file", "create_shared_link"}
    icon = Path(__file__).parents[2] / "resources" / "icons" / dropbox.service.icon
    assert icon.is_file()


async def test_removing_the_account_revokes_its_token_at_dropbox(
    dbx: FakeProvider, account: AccountSession
) -> None:
    # /2/auth/token/revoke takes no arguments and answers `null`.
    dbx.on("POST", "/2/auth/token/revoke",
           Reply("null", headers={"Content-Type": "application/json"}))
    revoke = dropbox.service.oauth.revoke  # type: ignore[union-attr]
    assert revoke is not None
    assert await revoke(account, OAuthClient("dropbox-app-key")) is True
    (seen,) = dbx.seen
    assert seen.path == "/2/auth/token/revoke"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}" and seen.body == b""


async def test_a_revocation_dropbox_refuses_is_reported(
    dbx: FakeProvider, account: AccountSession
) -> None:
    dbx.on("POST", "/2/auth/token/revoke",
           Reply({"error_summary": "invalid_access_token/...",
                  "error": {".tag": "invalid_access_token"}}, status=401))
    revoke = dropbox.service.oauth.revoke  # type: ignore[union-attr]
    assert revoke is not None and await revoke(account, OAuthClient("dropbox-app-key")) is False
