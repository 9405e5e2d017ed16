"""Dropbox against a local server that answers with Dropbox-shaped responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine import AuthError, OAuthClient, PermanentError, RateLimited, TransientError
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.testing import poll_context, reaction_context
from integrations import dropbox
from tests.integrations.provider import FakeProvider, Reply, Seen, load_fixture, random_file, serve

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


# ---------------------------------------------------------------------- upload sessions

KIB = 1024
CHUNK = 256 * KIB  # stands in for Dropbox's 4 MiB multiples
LIMIT = 1024 * KIB
SIZE = LIMIT + 300 * KIB + 7  # four whole chunks, one more, and a short last one
SESSION = "/2/files/upload_session/"


class SessionDropbox(FakeProvider):
    """The fake Dropbox, plus upload sessions kept as Dropbox keeps them.

    ``start`` opens a session with the first chunk and answers its ``session_id``;
    ``append_v2`` adds a chunk at the cursor's offset (answer: ``null``); ``finish`` adds
    the last and answers the saved file's metadata. A cursor whose offset is not where the
    session's data ends gets 409 ``incorrect_offset`` with the correct offset; a chunk that
    is not the last and not a multiple of ``CHUNK`` is refused (400).

    ``faults[offset]`` lists, in turn, how requests whose chunk starts at ``offset`` fail:
    ``("5xx", took)`` answers 503 and ``("drop", took)`` drops the connection, after
    taking the chunk (the answer was lost on the way) when ``took``; ``("gone", False)``
    answers that the session does not exist (it expired).
    """

    def __init__(self) -> None:
        super().__init__(not_found=Reply("Unknown API function", status=404))
        self.sessions: dict[str, bytearray] = {}
        self.committed: set[str] = set()
        self.faults: dict[int, list[tuple[str, bool]]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        step = request.path.removeprefix(SESSION)
        if step == request.path:
            return await super().handle(request)
        raw = await request.read()
        headers = dict(request.headers)
        self.seen.append(Seen(request.method, request.path, dict(request.query), headers, raw))
        arg = json.loads(headers["Dropbox-API-Arg"])
        if step == "start":
            session_id, offset = f"1234faaf0678bcd{len(self.sessions)}", 0
            self.sessions[session_id] = bytearray()
        else:
            session_id, offset = arg["cursor"]["session_id"], arg["cursor"]["offset"]
        have = self.sessions[session_id]
        lookup = "lookup_failed/" if step == "finish" else ""
        faults = self.faults.get(offset)
        kind, took = faults.pop(0) if faults else ("", True)
        if kind == "gone":
            return self.error(lookup, {".tag": "not_found"})
        if session_id in self.committed:
            return self.error(lookup, {".tag": "closed"})
        if offset != len(have):
            return self.error(lookup, {".tag": "incorrect_offset", "correct_offset": len(have)})
        if step != "finish" and len(raw) % CHUNK:
            return web.Response(status=400, text="Error in call to API function: chunk size")
        if took:
            have += raw
            if step == "finish":
                self.committed.add(session_id)
        if kind == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if kind == "5xx":
            return web.Response(status=503, text="")
        if step == "start":
            return web.json_response({"session_id": session_id})
        if step == "finish":
            return web.json_response({**fixture("upload.json"), "size": len(have)})
        return web.json_response(None)

    @staticmethod
    def error(lookup: str, error: dict[str, Any]) -> web.Response:
        """A 409 with Dropbox's error shape; finish wraps it in ``lookup_failed``."""
        summary = f"{lookup}{error['.tag']}/.."
        if lookup:
            error = {".tag": "lookup_failed", "lookup_failed": error}
        return web.json_response({"error_summary": summary, "error": error}, status=409)


@pytest.fixture
async def sessions(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SessionDropbox]:
    """The fake Dropbox with small limits: files over 1 MiB go in 256 KiB chunks."""
    fake = SessionDropbox()
    async with serve(fake.handle, client_max_size=2 * LIMIT) as fake.base:
        monkeypatch.setattr(dropbox.service, "api_base_url", fake.base)
        monkeypatch.setattr(dropbox, "CONTENT_URL", fake.base)
        monkeypatch.setattr(dropbox, "SINGLE_UPLOAD_LIMIT", LIMIT)
        monkeypatch.setattr(dropbox, "CHUNK_SIZE", CHUNK)
        monkeypatch.setattr(dropbox, "RESUME_DELAY", 0)
        yield fake


def large_file(tmp_path: Path, size: int = SIZE) -> Path:
    return random_file(tmp_path / "2025-03-14.pdf", size)


def steps(fake: FakeProvider) -> list[tuple[str, int]]:
    """Each session call as (step, offset of its chunk)."""
    calls = []
    for seen in fake.seen:
        arg = json.loads(seen.headers["Dropbox-API-Arg"])
        calls.append((seen.path.removeprefix(SESSION), arg.get("cursor", {}).get("offset", 0)))
    return calls


def in_order(start: int = CHUNK, size: int = SIZE) -> list[tuple[str, int]]:
    """The appends from ``start`` on and the finish of a file."""
    offsets = list(range(start, size, CHUNK))
    return [*(("append_v2", o) for o in offsets[:-1]), ("finish", offsets[-1])]


async def test_a_large_file_goes_up_in_an_upload_session(
    sessions: SessionDropbox, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path)

    out = await react(
        "upload_file", {"file": str(local), "destination": "/Reports/"}, http, account
    )

    assert steps(sessions) == [("start", 0), *in_order()]
    for seen in sessions.seen:
        assert seen.method == "POST"
        assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
        assert seen.headers["Content-Type"] == "application/octet-stream"
    start, *appends, finish = sessions.seen
    assert json.loads(start.headers["Dropbox-API-Arg"]) == {"close": False}
    assert json.loads(appends[0].headers["Dropbox-API-Arg"]) == {
        "cursor": {"session_id": "1234faaf0678bcd0", "offset": CHUNK},
        "close": False,
    }
    assert json.loads(finish.headers["Dropbox-API-Arg"]) == {
        "cursor": {"session_id": "1234faaf0678bcd0", "offset": 5 * CHUNK},
        "commit": {
            "path": "/Reports/2025-03-14.pdf",
            "mode": "add",
            "autorename": True,
            "mute": False,
        },
    }
    assert [len(s.body) for s in sessions.seen] == [CHUNK] * 5 + [SIZE - 5 * CHUNK]
    assert sessions.sessions["1234faaf0678bcd0"] == local.read_bytes()
    assert sessions.committed == {"1234faaf0678bcd0"}
    assert out == {
        "name": "2025-03-14.pdf",
        "path": "/Reports/2025-03-14.pdf",
        "id": "id:a4ayc_80_OEAAAAAAAAAYc",
        "rev": "a1c10ce0dd7c",
        "size": SIZE,
    }


async def test_a_file_at_the_limit_still_goes_in_one_request(
    sessions: SessionDropbox, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path, LIMIT)
    sessions.on("POST", "/2/files/upload", Reply(fixture("upload.json")))
    await react("upload_file", {"file": str(local), "destination": "/Reports/"}, http, account)
    [seen] = sessions.seen
    assert seen.path == "/2/files/upload"
    assert seen.body == local.read_bytes()


async def test_a_lost_answer_is_resumed_at_the_correct_offset(
    sessions: SessionDropbox, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path)
    sessions.faults = {2 * CHUNK: [("5xx", True)]}  # Dropbox took the chunk, then failed

    out = await react("upload_file", {"file": str(local), "destination": "/"}, http, account)

    assert steps(sessions) == [
        ("start", 0),
        ("append_v2", CHUNK),
        ("append_v2", 2 * CHUNK),  # 503
        ("append_v2", 2 * CHUNK),  # 409 incorrect_offset, correct_offset 3 * CHUNK
        *in_order(3 * CHUNK),
    ]
    assert sessions.sessions["1234faaf0678bcd0"] == local.read_bytes()
    assert out["size"] == SIZE


async def test_a_dropped_connection_mid_upload_is_resumed(
    sessions: SessionDropbox, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path)
    sessions.faults = {CHUNK: [("drop", False)], 3 * CHUNK: [("drop", True)]}

    out = await react("upload_file", {"file": str(local), "destination": "/"}, http, account)

    calls = steps(sessions)
    assert calls[:3] == [("start", 0), ("append_v2", CHUNK), ("append_v2", CHUNK)]
    after = calls.index(("append_v2", 4 * CHUNK))
    assert set(calls[3:after]) == {("append_v2", 2 * CHUNK), ("append_v2", 3 * CHUNK)}
    assert calls[after:] == in_order(4 * CHUNK)
    assert sessions.sessions["1234faaf0678bcd0"] == local.read_bytes()
    assert out["size"] == SIZE


async def test_an_expired_session_and_an_interrupted_finish_fail_clearly(
    sessions: SessionDropbox, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path)
    sessions.faults = {2 * CHUNK: [("gone", False)]}
    with pytest.raises(PermanentError, match=r"no longer knows the upload session .* 7 days"):
        await react("upload_file", {"file": str(local), "destination": "/"}, http, account)

    sessions.seen.clear()
    sessions.faults = {5 * CHUNK: [("5xx", True)]}  # saved, but the answer was lost
    with pytest.raises(PermanentError, match=r"Dropbox may have saved the file then .*closed"):
        await react("upload_file", {"file": str(local), "destination": "/"}, http, account)
    assert steps(sessions)[-2:] == [("finish", 5 * CHUNK)] * 2
    assert sessions.committed == {"1234faaf0678bcd1"}


async def test_an_upload_session_gives_up_after_errors_in_a_row(
    sessions: SessionDropbox,
    http: HttpClient,
    account: AccountSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dropbox, "MAX_RESUMES", 2)
    local = large_file(tmp_path)
    sessions.faults = {CHUNK: [("5xx", False)] * 5}
    with pytest.raises(TransientError, match=r"interrupted 3 times in a row \(HTTP 503\)"):
        await react("upload_file", {"file": str(local), "destination": "/"}, http, account)
    assert steps(sessions).count(("append_v2", CHUNK)) == 3


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
