"""Google Drive against a local server that answers with Drive-shaped responses."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine import AuthError, PermanentError, RateLimited, TransientError
from engine.auth import AccountSession
from engine.http import HttpClient
from engine.poller import oldest_first
from engine.testing import poll_context, reaction_context
from integrations import gdrive
from tests.integrations.provider import FakeProvider, Reply, Seen, load_fixture, random_file, serve

TOKEN = "ya29.a0AfB_byC-test-token"
FOLDER_ID = "1dyUEebJaFnWa3Z4n0BFMVAXQ7mfUH11g"
FOLDER_URL = f"https://drive.google.com/drive/folders/{FOLDER_ID}?usp=sharing"
FILES = "/drive/v3/files"
UPLOAD = "/upload/drive/v3/files"


def fixture(name: str) -> Any:
    return load_fixture("gdrive", name)


@pytest.fixture
async def drive(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProvider]:
    fake = FakeProvider(not_found=Reply(fixture("error_not_found.json"), status=404))
    async with serve(fake.handle) as base:
        monkeypatch.setattr(gdrive.service, "api_base_url", base)
        yield fake


@pytest.fixture
def account(http: HttpClient) -> AccountSession:
    return AccountSession.for_token(gdrive.service, TOKEN, http, name="marta.kowal@example.org")


def poll(
    trigger: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = gdrive.service.triggers[trigger]
    ctx = poll_context(spec, params, http)
    ctx.account = account
    assert spec.poll is not None
    return spec.poll(ctx)


def react(
    reaction: str, params: dict[str, Any], http: HttpClient, account: AccountSession | None
) -> Any:
    spec = gdrive.service.reactions[reaction]
    ctx = reaction_context(spec, params, http)
    ctx.account = account
    return spec.run(ctx)


# ---------------------------------------------------------------------- triggers


async def test_new_file_in_folder_asks_for_the_folders_files_newest_first(
    drive: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    drive.on("GET", FILES, Reply(fixture("files_in_folder.json")))

    result = await poll("new_file_in_folder", {"folder": FOLDER_URL}, http, account)

    [seen] = drive.seen
    assert (seen.method, seen.path) == ("GET", FILES)
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.query["q"] == (
        f"'{FOLDER_ID}' in parents and trashed = false "
        "and mimeType != 'application/vnd.google-apps.folder'"
    )
    assert seen.query["orderBy"] == "createdTime desc"
    assert seen.query["pageSize"] == "50"
    assert "files(id,name,mimeType,createdTime,modifiedTime" in seen.query["fields"]
    assert [i.key for i in result.items] == [
        "1Kx9Jq3dV1qYd7bXK2pR8sLw0aN4mE5tF",
        "1BqT5mNc8uR2wE6yH0jK4lP7sX9vZ3aD1fG2hJ4kL5",
    ]
    assert result.items[0].data == {
        "id": "1Kx9Jq3dV1qYd7bXK2pR8sLw0aN4mE5tF",
        "name": "Invoice 2025-03.pdf",
        "mime_type": "application/pdf",
        "url": "https://drive.google.com/file/d/1Kx9Jq3dV1qYd7bXK2pR8sLw0aN4mE5tF/view?usp=drivesdk",
        "size": 48213,
        "created_at": "2025-03-14T09:26:53.000Z",
        "modified_at": "2025-03-14T09:26:53.000Z",
        "modified_by": "Marta Kowal",
    }
    assert result.items[1].data["size"] is None  # a Google Sheet has no size


async def test_file_changed_keys_each_modification(
    drive: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    drive.on("GET", FILES, Reply(fixture("files_in_folder.json")))
    result = await poll("file_changed", {"folder": FOLDER_ID}, http, account)
    assert drive.seen[0].query["orderBy"] == "modifiedTime desc"
    assert f"'{FOLDER_ID}' in parents" in drive.seen[0].query["q"]
    assert (
        result.items[1].key == "1BqT5mNc8uR2wE6yH0jK4lP7sX9vZ3aD1fG2hJ4kL5@2025-03-15T08:11:42.512Z"
    )
    assert result.items[1].data["modified_by"] == "Jonas Eberle"
    await poll("file_changed", {"folder": "root"}, http, account)
    assert drive.seen[1].query["q"].startswith("'root' in parents and")


async def test_new_and_changed_files_fire_oldest_first_whatever_the_listing_order(
    drive: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    listing = fixture("files_in_folder.json")  # by creation, newest first
    created_last, changed_last = (f["id"] for f in listing["files"])
    drive.on("GET", FILES, Reply(listing))
    changed = await poll("file_changed", {"folder": FOLDER_ID}, http, account)
    assert [i.data["id"] for i in oldest_first(changed.items)] == [created_last, changed_last]
    listing["files"].reverse()
    drive.on("GET", FILES, Reply(listing))
    created = await poll("new_file_in_folder", {"folder": FOLDER_ID}, http, account)
    assert [i.key for i in oldest_first(created.items)] == [changed_last, created_last]


async def test_shared_with_me(
    drive: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    drive.on("GET", FILES, Reply(fixture("shared_with_me.json")))
    result = await poll("shared_with_me", {}, http, account)
    [seen] = drive.seen
    assert seen.query["q"] == "sharedWithMe and trashed = false"
    assert seen.query["orderBy"] == "sharedWithMeTime desc"
    assert "sharingUser(displayName,emailAddress)" in seen.query["fields"]
    [item] = result.items
    assert item.key == "1Zp0oI9uY8tR7eW6qA5sD4fG3hJ2kL1mN"
    assert item.data["name"] == "Trip photos"
    assert item.data["shared_by"] == "Jonas Eberle"
    assert item.data["shared_by_email"] == "jonas.eberle@example.org"
    assert item.data["shared_at"] == "2025-03-14T10:02:11.000Z"


# ---------------------------------------------------------------------- reactions


async def test_upload_file_is_a_multipart_upload(
    drive: FakeProvider, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = tmp_path / "scan.pdf"
    local.write_bytes(b"%PDF-1.7 scan \x00\xff\n")
    drive.on("POST", UPLOAD, Reply(fixture("file_created.json")))

    out = await react(
        "upload_file",
        {"file": str(local), "folder": FOLDER_URL, "name": "Scan 2025-03-14.pdf"},
        http,
        account,
    )

    [seen] = drive.seen
    assert (seen.method, seen.path) == ("POST", UPLOAD)
    assert seen.query["uploadType"] == "multipart"
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"].startswith("multipart/related; boundary=")
    meta, content = seen.parts()
    assert meta.get_content_type() == "application/json"
    assert json.loads(meta.get_payload()) == {  # type: ignore[arg-type]
        "name": "Scan 2025-03-14.pdf",
        "parents": [FOLDER_ID],
    }
    assert content.get_content_type() == "application/pdf"
    assert content.get_payload(decode=True) == local.read_bytes()
    assert out == {
        "id": "1Wq2Er3Ty4Ui5Op6As7Df8Gh9Jk0Lz1Xc",
        "name": "Scan 2025-03-14.pdf",
        "mime_type": "application/pdf",
        "url": "https://drive.google.com/file/d/1Wq2Er3Ty4Ui5Op6As7Df8Gh9Jk0Lz1Xc/view?usp=drivesdk",
        "size": 17,
        "created_at": "2025-03-14T10:00:02.000Z",
        "modified_at": "2025-03-14T10:00:02.000Z",
        "modified_by": "Marta Kowal",
    }
    assert gdrive.service.reactions["upload_file"].retry is False


async def test_upload_refuses_a_missing_file(
    drive: FakeProvider, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    with pytest.raises(PermanentError, match="is not a file on this computer"):
        await react("upload_file", {"file": str(tmp_path / "none.pdf")}, http, account)
    assert drive.seen == []


# ---------------------------------------------------------------------- resumable uploads

KIB = 1024
CHUNK = 256 * KIB
LIMIT = 1024 * KIB
SIZE = LIMIT + 300 * KIB + 7  # four whole chunks, one more, and a short last one


class ResumableDrive(FakeProvider):
    """The fake Drive, plus resumable upload sessions kept as Google keeps them.

    A session (``PUT /upload/drive/v3/files?uploadType=resumable&upload_id=…``) takes a
    chunk that starts where its bytes end, answers 308 Resume Incomplete with
    ``Range: bytes=0-N`` (no Range while it has nothing) until it has every byte, then
    200 with the file resource; ``Content-Range: bytes */total`` asks what it has. A
    chunk that is not the last and not a multiple of 256 KiB is refused (400).

    ``faults[offset]`` lists, in turn, how chunks starting at ``offset`` fail:
    ``("5xx", kept)`` keeps their first ``kept`` bytes and answers 503;
    ``("drop", kept)`` keeps them and drops the connection, as it does every chunk until
    the client asks what the session has; ``("gone", 0)`` answers 404, the session expired.
    """

    def __init__(self) -> None:
        super().__init__(not_found=Reply(fixture("error_not_found.json"), status=404))
        self.sessions: dict[str, bytearray] = {}
        self.faults: dict[int, list[tuple[str, int]]] = {}
        self.outage = False

    def session(self, upload_id: str) -> str:
        """The address Google's ``Location`` gives for a session."""
        return f"{self.base}{UPLOAD}?uploadType=resumable&upload_id={upload_id}"

    def opens(self, *upload_ids: str) -> None:
        """The initiating POSTs open these sessions in turn."""
        self.on("POST", UPLOAD, *(Reply(headers={"Location": self.session(u)}) for u in upload_ids))

    async def handle(self, request: web.Request) -> web.Response:
        if request.method != "PUT" or request.path != UPLOAD:
            return await super().handle(request)
        raw = await request.read()
        headers = dict(request.headers)
        self.seen.append(Seen(request.method, request.path, dict(request.query), headers, raw))
        have = self.sessions.setdefault(request.query["upload_id"], bytearray())
        asked = re.fullmatch(r"bytes \*/(\d+)", headers["Content-Range"])
        sent = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers["Content-Range"])
        if asked:
            self.outage = False
            total = int(asked[1])
        else:
            assert sent, headers["Content-Range"]
            start, end, total = (int(x) for x in sent.groups())
            last = end + 1 == total
            if start != len(have) or len(raw) != end - start + 1 or (not last and len(raw) % CHUNK):
                return web.Response(status=400, text=f"Invalid request: {sent[0]}")
            fault = self.faults.get(start, []).pop(0) if self.faults.get(start) else None
            if self.outage:
                fault = ("drop", 0)
            if fault is None:
                have += raw
            else:
                kind, kept = fault
                have += raw[:kept]
                if kind == "drop":
                    self.outage = True
                    assert request.transport is not None
                    request.transport.close()
                    return web.Response()
                if kind == "gone":
                    return web.Response(status=404, text="Not Found")
                return web.json_response(fixture("error_backend.json"), status=503)
        if len(have) == total:
            return web.json_response({**fixture("file_created.json"), "size": str(total)})
        return web.Response(
            status=308, headers={"Range": f"bytes=0-{len(have) - 1}"} if have else {}
        )


@pytest.fixture
async def resumable(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ResumableDrive]:
    """The fake Drive with small limits: files over 1 MiB go in 256 KiB chunks."""
    fake = ResumableDrive()
    async with serve(fake.handle, client_max_size=2 * LIMIT) as fake.base:
        monkeypatch.setattr(gdrive.service, "api_base_url", fake.base)
        monkeypatch.setattr(gdrive, "MULTIPART_LIMIT", LIMIT)
        monkeypatch.setattr(gdrive, "CHUNK_SIZE", CHUNK)
        monkeypatch.setattr(gdrive, "RESUME_DELAY", 0)
        yield fake


def large_file(tmp_path: Path, size: int = SIZE) -> Path:
    return random_file(tmp_path / "Scan 2025-03-14.pdf", size)


def chunk_ranges(start: int, size: int = SIZE) -> list[str]:
    """The Content-Range of each chunk of a file from ``start`` to its end."""
    return [f"bytes {a}-{min(a + CHUNK, size) - 1}/{size}" for a in range(start, size, CHUNK)]


def puts(fake: FakeProvider) -> list[str]:
    return [s.headers["Content-Range"] for s in fake.seen if s.method == "PUT"]


async def test_a_large_file_goes_up_in_a_resumable_upload(
    resumable: ResumableDrive, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path)
    resumable.opens("ADPycdvajyoK8ZpJYAs1vQ")

    out = await react("upload_file", {"file": str(local), "folder": FOLDER_URL}, http, account)

    start, *chunks = resumable.seen
    assert (start.method, start.path) == ("POST", UPLOAD)
    assert start.query == {
        "uploadType": "resumable",
        "fields": gdrive._FILE_FIELDS,
        "supportsAllDrives": "true",
    }
    assert start.headers["Authorization"] == f"Bearer {TOKEN}"
    assert start.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert start.headers["X-Upload-Content-Type"] == "application/pdf"
    assert start.headers["X-Upload-Content-Length"] == str(SIZE)
    assert start.json() == {"name": "Scan 2025-03-14.pdf", "parents": [FOLDER_ID]}
    assert puts(resumable) == chunk_ranges(0)
    assert len(chunks) == 6
    for seen in chunks:
        assert seen.query == {"uploadType": "resumable", "upload_id": "ADPycdvajyoK8ZpJYAs1vQ"}
        assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
        assert seen.headers["Content-Length"] == str(len(seen.body))
    assert [len(s.body) for s in chunks] == [CHUNK] * 5 + [SIZE - 5 * CHUNK]
    assert resumable.sessions["ADPycdvajyoK8ZpJYAs1vQ"] == local.read_bytes()
    assert out["id"] == "1Wq2Er3Ty4Ui5Op6As7Df8Gh9Jk0Lz1Xc"
    assert out["size"] == SIZE


async def test_a_file_at_the_limit_still_goes_in_one_request(
    resumable: ResumableDrive, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path, LIMIT)
    resumable.on("POST", UPLOAD, Reply(fixture("file_created.json")))
    await react("upload_file", {"file": str(local)}, http, account)
    [seen] = resumable.seen
    assert seen.query["uploadType"] == "multipart"
    assert seen.parts()[1].get_payload(decode=True) == local.read_bytes()


async def test_a_server_error_mid_upload_resumes_from_what_google_has(
    resumable: ResumableDrive, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path)
    resumable.opens("ADPycdvajyoK8ZpJYAs1vQ")
    resumable.faults = {2 * CHUNK: [("5xx", 100 * KIB)]}  # Google kept part of the chunk

    out = await react("upload_file", {"file": str(local)}, http, account)

    kept = 2 * CHUNK + 100 * KIB
    assert puts(resumable) == [*chunk_ranges(0)[:3], f"bytes */{SIZE}", *chunk_ranges(kept)]
    [status] = [s for s in resumable.seen if s.headers.get("Content-Range") == f"bytes */{SIZE}"]
    assert status.body == b"" and status.headers["Content-Length"] == "0"
    assert resumable.sessions["ADPycdvajyoK8ZpJYAs1vQ"] == local.read_bytes()
    assert out["size"] == SIZE


async def test_a_dropped_connection_mid_upload_is_resumed(
    resumable: ResumableDrive, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path)
    resumable.opens("ADPycdvajyoK8ZpJYAs1vQ")
    resumable.faults = {CHUNK: [("drop", 0)]}

    out = await react("upload_file", {"file": str(local)}, http, account)

    ranges = puts(resumable)
    asked = ranges.index(f"bytes */{SIZE}")
    assert set(ranges[1:asked]) == {chunk_ranges(0)[1]}  # the dropped chunk, maybe resent
    assert ranges[asked + 1 :] == chunk_ranges(CHUNK)
    assert resumable.sessions["ADPycdvajyoK8ZpJYAs1vQ"] == local.read_bytes()
    assert out["size"] == SIZE


async def test_an_expired_session_is_started_again_once(
    resumable: ResumableDrive, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path)
    resumable.opens("ADPycdvajyoK8ZpJYAs1vQ", "ADPycdsZ3VfdNxrCkPyGtw")
    resumable.faults = {3 * CHUNK: [("gone", 0)]}

    out = await react("upload_file", {"file": str(local)}, http, account)

    assert [s.method for s in resumable.seen].count("POST") == 2
    assert puts(resumable) == [*chunk_ranges(0)[:4], *chunk_ranges(0)]
    assert resumable.sessions["ADPycdsZ3VfdNxrCkPyGtw"] == local.read_bytes()
    assert out["size"] == SIZE


async def test_a_session_that_expires_twice_fails_clearly(
    resumable: ResumableDrive, http: HttpClient, account: AccountSession, tmp_path: Path
) -> None:
    local = large_file(tmp_path)
    resumable.opens("ADPycdvajyoK8ZpJYAs1vQ", "ADPycdsZ3VfdNxrCkPyGtw")
    resumable.faults = {CHUNK: [("gone", 0), ("gone", 0)]}
    with pytest.raises(PermanentError, match=r"dropped the upload session of Scan .* twice"):
        await react("upload_file", {"file": str(local)}, http, account)
    assert [s.method for s in resumable.seen].count("POST") == 2


async def test_a_resumable_upload_gives_up_after_errors_in_a_row(
    resumable: ResumableDrive,
    http: HttpClient,
    account: AccountSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gdrive, "MAX_RESUMES", 2)
    local = large_file(tmp_path)
    resumable.opens("ADPycdvajyoK8ZpJYAs1vQ")
    resumable.faults = {CHUNK: [("5xx", 0)] * 5}
    with pytest.raises(TransientError, match=r"interrupted 3 times in a row \(HTTP 503\)"):
        await react("upload_file", {"file": str(local)}, http, account)
    assert puts(resumable).count(chunk_ranges(0)[1]) == 3


async def test_create_text_file_as_a_google_doc_at_the_top(
    drive: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    drive.on("POST", UPLOAD, Reply(fixture("doc_created.json")))
    out = await react(
        "create_text_file",
        {"name": "Notes 2025-03-14", "content": "Grüße\nline 2", "google_doc": True},
        http,
        account,
    )
    meta, content = drive.seen[0].parts()
    assert json.loads(meta.get_payload()) == {  # type: ignore[arg-type]
        "name": "Notes 2025-03-14",
        "mimeType": "application/vnd.google-apps.document",
    }
    assert content.get_content_type() == "text/plain"
    assert content.get_payload(decode=True) == "Grüße\nline 2".encode()
    assert out["url"].startswith("https://docs.google.com/document/d/")
    assert out["mime_type"] == "application/vnd.google-apps.document"


async def test_the_account_name_comes_from_the_token(drive: FakeProvider, http: HttpClient) -> None:
    drive.on("GET", "/drive/v3/about", Reply(fixture("about.json")))
    spec = gdrive.service.oauth
    assert spec is not None and spec.userinfo is not None
    assert await spec.userinfo(http, TOKEN) == "marta.kowal@example.org"
    assert drive.seen[0].query == {"fields": "user"}
    assert drive.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


# ---------------------------------------------------------------------- errors


async def test_a_refused_token_asks_for_reconnecting(
    drive: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    drive.on("GET", FILES, Reply(fixture("error_unauthenticated.json"), status=401))
    with pytest.raises(AuthError, match="needs reconnecting"):
        await poll("shared_with_me", {}, http, account)
    assert len(drive.seen) == 1


async def test_rate_limits(drive: FakeProvider, http: HttpClient, account: AccountSession) -> None:
    drive.on("GET", FILES, Reply(fixture("error_user_rate_limit.json"), status=403))
    with pytest.raises(RateLimited, match="slow down") as caught:
        await poll("shared_with_me", {}, http, account)
    assert caught.value.retry_after is None
    drive.on(
        "GET",
        FILES,
        Reply(fixture("error_rate_limit_429.json"), status=429, headers={"Retry-After": "30"}),
    )
    with pytest.raises(RateLimited, match="try again in 30 s") as caught:
        await poll("new_file_in_folder", {"folder": FOLDER_ID}, http, account)
    assert caught.value.retry_after == 30


async def test_scopes_quota_not_found_and_server_errors(
    drive: FakeProvider, http: HttpClient, account: AccountSession
) -> None:
    drive.on("GET", FILES, Reply(fixture("error_insufficient_scopes.json"), status=403))
    with pytest.raises(AuthError, match=r"connected without the permission .* reconnect it"):
        await poll("new_file_in_folder", {"folder": FOLDER_ID}, http, account)

    drive.on("POST", UPLOAD, Reply(fixture("error_storage_quota.json"), status=403))
    with pytest.raises(PermanentError, match="storage is full"):
        await react("create_text_file", {"name": "a.txt", "content": "a"}, http, account)

    drive.on("GET", FILES, Reply(fixture("error_not_found.json"), status=404))
    with pytest.raises(PermanentError, match=f"Google Drive has no folder {FOLDER_ID}"):
        await poll("file_changed", {"folder": FOLDER_ID}, http, account)

    drive.on("GET", FILES, Reply(fixture("error_backend.json"), status=500))
    with pytest.raises(TransientError, match=r"Google Drive had a problem .* \(HTTP 500\)"):
        await poll("file_changed", {"folder": FOLDER_ID}, http, account)


async def test_bad_folders_and_a_missing_account(http: HttpClient, account: AccountSession) -> None:
    with pytest.raises(PermanentError, match="is not a Google Drive folder: paste the folder's"):
        await poll("new_file_in_folder", {"folder": "My Invoices"}, http, account)
    with pytest.raises(PermanentError, match="is not a Google Drive folder"):
        await poll("new_file_in_folder", {"folder": "https://drive.google.com/"}, http, account)
    with pytest.raises(PermanentError, match="is not a Google Drive folder"):
        await poll("file_changed", {"folder": "x' or '1'='1"}, http, account)
    with pytest.raises(AuthError, match="choose the Google account"):
        await react("create_text_file", {"name": "a", "content": "b"}, http, None)


def test_the_declaration() -> None:
    spec = gdrive.service.oauth
    assert spec is not None
    assert spec.authorize_url == "https://accounts.google.com/o/oauth2/v2/auth"
    assert spec.token_url == "https://oauth2.googleapis.com/token"
    assert spec.extra_authorize_params == {"access_type": "offline", "prompt": "consent"}
    assert set(spec.scopes) == {gdrive.SCOPE_READ, gdrive.SCOPE_FILE}
    assert set(gdrive.service.triggers) == {"new_file_in_folder", "file_changed", "shared_with_me"}
    assert set(gdrive.service.reactions) == {"upload_file", "create_text_file"}
    icon = Path(__file__).parents[2] / "resources" / "icons" / gdrive.service.icon
    assert icon.is_file()
