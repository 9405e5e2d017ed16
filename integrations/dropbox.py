"""Dropbox: new and changed files in a folder; upload files and share links."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from engine import (
    AuthError,
    AuthKind,
    Field,
    Item,
    OAuth2Spec,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    RateLimited,
    ReactionContext,
    Service,
    TransientError,
    local_file,
    read_chunk,
)

if TYPE_CHECKING:
    from engine import AccountSession, HttpClient, HttpResponse, OAuthClient

#: Where file contents go up and down (the RPC calls go to ``service.api_base_url``);
#: tests point both at a local server.
CONTENT_URL = "https://content.dropboxapi.com"
#: Entries per list_folder page; pages of changes read per poll (the rest on the next
#: poll, from the cursor kept); pages of a first listing, which must be read whole for
#: the engine to learn every file there is (else older files would fire as new).
PAGE_LIMIT = 500
MAX_PAGES = 20
MAX_LISTING_PAGES = 100
#: Files up to this size go up in one request (/2/files/upload: Dropbox takes up to
#: 150 MB so, but the whole file would sit in memory and a failure would start it
#: again from nothing); larger ones in an upload session, chunk by chunk.
SINGLE_UPLOAD_LIMIT = 16 * 1024 * 1024
#: The size of each chunk of an upload session (Dropbox wants a multiple of 4 MiB, at
#: most 150 MB); one chunk at a time is read into memory.
CHUNK_SIZE = 16 * 1024 * 1024
#: Interruptions in a row (a 5xx or 429, a dropped connection) an upload session
#: survives by sending the chunk again (Dropbox says where to go on from if it had it);
#: the wait before each attempt doubles from RESUME_DELAY seconds.
MAX_RESUMES = 5
RESUME_DELAY = 1.0
#: Seconds for one request of an upload (one chunk), and for the whole upload.
REQUEST_TIMEOUT = 300
UPLOAD_TIMEOUT = 3 * 3600


async def _whoami(http: HttpClient, token: str) -> str:
    """The e-mail address of the account a token belongs to."""
    resp = await http.post(
        _url("/2/users/get_current_account"),
        headers={"Authorization": f"Bearer {token}"},
        check=False,
    )
    _check(resp, "your account")
    data = resp.json()
    name = data.get("name") or {}
    return str(data.get("email") or name.get("display_name") or data.get("account_id"))


async def _revoke(session: AccountSession, client: OAuthClient) -> bool:
    """/2/auth/token/revoke: disables the access token it is called with, its refresh
    token and every other access token of that refresh token."""
    token = await session.token()
    resp = await session.http.post(
        _url("/2/auth/token/revoke"), headers={"Authorization": f"Bearer {token}"}, check=False
    )
    return resp.ok


service = Service(
    "dropbox",
    "Dropbox",
    "New and changed files in Dropbox folders; upload files and create shared links as "
    "your Dropbox account.",
    icon="dropbox.svg",
    auth=AuthKind.OAUTH2,
    api_base_url="https://api.dropboxapi.com",
    oauth=OAuth2Spec(
        authorize_url="https://www.dropbox.com/oauth2/authorize",
        token_url="https://api.dropboxapi.com/oauth2/token",  # noqa: S106 - an address
        scopes=(
            "account_info.read",
            "files.metadata.read",
            "files.content.read",
            "files.content.write",
            "sharing.write",
        ),
        extra_authorize_params={"token_access_type": "offline"},
        revoke=_revoke,
        apps_url="https://www.dropbox.com/account/connected_apps",
        pkce=True,
        userinfo=_whoami,
        register_url="https://www.dropbox.com/developers/apps",
        client_help="(Dropbox: https://www.dropbox.com/developers/apps → Create app → "
        "Scoped access; on its Permissions tab tick account_info.read, "
        "files.metadata.read, files.content.read, files.content.write and sharing.write, "
        "then Submit; on Settings add this address under “Redirect URIs”. The app key is "
        "the client id; with PKCE no secret is needed)",
    ),
)

_FOLDER = Param(
    "folder",
    ParamType.TEXT,
    "Folder",
    help="The Dropbox folder to watch, as a path from the top of your Dropbox "
    "(/ for the top itself). An app with “App folder” access sees only its own folder.",
    example="/Camera Uploads",
)
_RECURSIVE = Param(
    "recursive",
    ParamType.BOOL,
    "Include subfolders",
    help="Also watch files in the folder's subfolders, however deep.",
    required=False,
    default=False,
    example=True,
)
_FILE_FIELDS = [
    Field("name", "File name", "IMG_2041.jpg"),
    Field("path", "Path in Dropbox", "/Camera Uploads/IMG_2041.jpg"),
    Field("id", "File id", "id:a4ayc_80_OEAAAAAAAAAXw"),
    Field("rev", "Revision", "a1c10ce0dd78"),
    Field("size", "Size (bytes)", 2484391),
    Field("modified_at", "Saved in Dropbox at (UTC, ISO 8601)", "2025-03-14T09:26:53Z"),
    Field(
        "client_modified_at", "Changed on the computer at (UTC, ISO 8601)", "2025-03-14T09:26:40Z"
    ),
    Field(
        "content_hash",
        "Content hash (Dropbox's)",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    Field("folder", "Watched folder", "/Camera Uploads"),
]


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _dropbox_path(value: Any, what: str) -> str:
    """A path as the API wants it: ``""`` for the top, else ``/a/b`` (or an ``id:``)."""
    text = str(value or "").strip().replace("\\", "/")
    if text.startswith(("id:", "rev:", "ns:")):
        return text
    if text.startswith(("https://", "http://")):
        raise PermanentError(
            f"{what} {text!r} is an address: write the path inside Dropbox instead, "
            "e.g. /Documents/report.pdf"
        )
    text = "/" + text.strip("/")
    return "" if text == "/" else text


def _summary(resp: HttpResponse) -> tuple[str, Any]:
    """Dropbox's ``error_summary`` (e.g. ``path/not_found/..``) and ``error`` object."""
    try:
        data = json.loads(resp.body)
    except ValueError:
        return resp.text()[:200].strip(), None
    if not isinstance(data, dict):
        return "", None
    return str(data.get("error_summary") or ""), data.get("error")


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Dropbox answer that is not a success."""
    status = resp.status
    if status < 300:
        return
    summary, error = _summary(resp)
    said = f" ({summary.rstrip('./')})" if summary else ""
    if status == 429:
        wait = resp.retry_after()
        if wait is None and isinstance(error, dict) and error.get("retry_after"):
            wait = float(error["retry_after"])
        when = f"; try again in {wait:.0f} s" if wait is not None else ""
        raise RateLimited(f"Dropbox asks this account to slow down{when}", wait)
    if status == 401:
        if summary.startswith("missing_scope"):
            needed = error.get("required_scope") if isinstance(error, dict) else None
            raise AuthError(
                f"the Dropbox app lacks the permission {needed or 'this step needs'}: tick it "
                "on the app's Permissions tab, then reconnect the account in Hookline"
            )
        raise AuthError(f"Dropbox refused the account's token{said}: reconnect the account")
    if status == 403:
        raise AuthError(f"Dropbox does not let this account reach {what}{said}")
    if status == 409:
        if "not_found" in summary:
            raise PermanentError(f"Dropbox has no {what}{said}: check the path")
        if "insufficient_space" in summary:
            raise PermanentError("the Dropbox account is full: free some space")
        raise PermanentError(f"Dropbox refused the request for {what}{said}")
    if status >= 500:
        raise TransientError(f"Dropbox had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"Dropbox answered {status} for {what}{said}")


async def _rpc(
    account: AccountSession, path: str, body: Mapping[str, Any], what: str, check: bool = True
) -> HttpResponse:
    resp = await account.request("POST", _url(path), json_body=body, check=False)
    if check:
        _check(resp, what)
    return resp


def _object(resp: HttpResponse, what: str) -> dict[str, Any]:
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"Dropbox answered {what} with something unexpected")
    return data


# ---------------------------------------------------------------------- triggers


async def _changed_files(ctx: PollContext) -> list[dict[str, Any]]:
    """The folder's files, the first time; then the files added or changed since the
    cursor kept in ``ctx.state`` (list_folder, then list_folder/continue)."""
    folder = _dropbox_path(ctx.params.get("folder"), "folder")
    recursive = bool(ctx.params.get("recursive"))
    account = ctx.require_account(service)
    what = f"folder {folder or '/'}"
    where = {"folder": folder, "recursive": recursive}
    cursor = ctx.state.get("cursor") if ctx.state.get("for") == where else None
    entries: list[dict[str, Any]] = []
    pages = MAX_PAGES if cursor else MAX_LISTING_PAGES
    for _page in range(pages):
        if cursor:
            resp = await _rpc(
                account, "/2/files/list_folder/continue", {"cursor": cursor}, what, check=False
            )
            if resp.status == 409 and _summary(resp)[0].startswith("reset"):
                cursor = None  # Dropbox dropped the cursor: list the folder afresh
                continue
            _check(resp, what)
        else:
            body = {
                "path": folder,
                "recursive": recursive,
                "include_deleted": False,
                "limit": PAGE_LIMIT,
            }
            resp = await _rpc(account, "/2/files/list_folder", body, what)
        data = _object(resp, what)
        entries += [e for e in data.get("entries") or [] if isinstance(e, dict)]
        cursor = str(data.get("cursor") or "") or None
        if not data.get("has_more"):
            break
    else:
        if pages == MAX_LISTING_PAGES:
            raise PermanentError(
                f"the {what} holds more than {PAGE_LIMIT * MAX_LISTING_PAGES} files and "
                "folders: watch a smaller folder, or turn off “Include subfolders”"
            )
    ctx.state["cursor"] = cursor
    ctx.state["for"] = where
    files = [e for e in entries if e.get(".tag") == "file"]
    files.sort(key=lambda e: str(e.get("server_modified") or ""), reverse=True)
    return files


def _file(entry: Mapping[str, Any], folder: str) -> dict[str, Any]:
    return {
        "name": entry.get("name"),
        "path": entry.get("path_display") or entry.get("path_lower"),
        "id": entry.get("id"),
        "rev": entry.get("rev"),
        "size": entry.get("size"),
        "modified_at": entry.get("server_modified"),
        "client_modified_at": entry.get("client_modified"),
        "content_hash": entry.get("content_hash"),
        "folder": folder or "/",
    }


@service.poll_trigger(
    "new_file",
    "New file in a folder",
    "Fires once for each file that appears in a Dropbox folder (uploaded, or moved or "
    "copied in). Later edits of the same file do not fire it again: use “File added or "
    "changed” for those.",
    params=[_FOLDER, _RECURSIVE],
    fields=_FILE_FIELDS,
    default_interval=300,
    min_interval=30,
)
async def new_file(ctx: PollContext) -> PollResult:
    folder = _dropbox_path(ctx.params.get("folder"), "folder")
    files = await _changed_files(ctx)
    return PollResult([Item(str(e["id"]), _file(e, folder)) for e in files if e.get("id")])


@service.poll_trigger(
    "file_changed",
    "File added or changed",
    "Fires for each new version of a file in a Dropbox folder: when a file is added "
    "and each time its contents are saved again.",
    params=[_FOLDER, _RECURSIVE],
    fields=_FILE_FIELDS,
    default_interval=300,
    min_interval=30,
)
async def file_changed(ctx: PollContext) -> PollResult:
    folder = _dropbox_path(ctx.params.get("folder"), "folder")
    files = await _changed_files(ctx)
    return PollResult(
        [Item(f"{e['id']}@{e.get('rev')}", _file(e, folder)) for e in files if e.get("id")]
    )


# ---------------------------------------------------------------------- reactions


async def _send_content(
    account: AccountSession, path: str, arg: Mapping[str, Any], data: bytes
) -> HttpResponse:
    """POST bytes to a content endpoint, its arguments in the Dropbox-API-Arg header
    (json.dumps escapes non-ASCII as \\uXXXX, as Dropbox wants in a header)."""
    return await account.request(
        "POST",
        CONTENT_URL.rstrip("/") + path,
        headers={"Dropbox-API-Arg": json.dumps(arg), "Content-Type": "application/octet-stream"},
        data=data,
        timeout=REQUEST_TIMEOUT,
        check=False,
    )


def _correct_offset(resp: HttpResponse) -> int | None:
    """Where Dropbox says an upload session's data ends, from an ``incorrect_offset``
    error (of append_v2, or ``lookup_failed/incorrect_offset`` of finish)."""
    if resp.status != 409:
        return None
    summary, error = _summary(resp)
    if summary.startswith("lookup_failed/") and isinstance(error, dict):
        error = error.get("lookup_failed")
    if not isinstance(error, dict) or error.get(".tag") != "incorrect_offset":
        return None
    correct = error.get("correct_offset")
    return correct if isinstance(correct, int) else None


async def _upload_session(
    ctx: ReactionContext, file: BinaryIO, size: int, commit: Mapping[str, Any], what: str
) -> dict[str, Any]:
    """Send the file through an upload session chunk by chunk (start, append_v2, and
    finish with the last chunk); Dropbox's metadata of the saved file.

    After an interruption (a 5xx or 429, a dropped connection) the chunk is sent again;
    if Dropbox had it already it answers ``incorrect_offset`` with where its data ends,
    and the upload goes on from there.
    """
    account = ctx.require_account(service)
    session_id: str | None = None
    offset = best = 0  # where the next chunk starts; the furthest Dropbox confirmed
    failures = 0
    finish_interrupted = False
    while True:
        length = min(CHUNK_SIZE, size - offset)
        chunk = await read_chunk(file, offset, length, what)
        cursor = {"session_id": session_id, "offset": offset}
        finishing = session_id is not None and offset + length >= size
        arg: dict[str, Any]
        if session_id is None:
            step, arg = "start", {"close": False}
        elif finishing:
            step, arg = "finish", {"cursor": cursor, "commit": commit}
        else:
            step, arg = "append_v2", {"cursor": cursor, "close": False}
        try:
            resp = await _send_content(account, f"/2/files/upload_session/{step}", arg, chunk)
        except TransientError as exc:
            problem, wait = str(exc), 0.0
        else:
            correct = _correct_offset(resp)
            if resp.ok and finishing:
                return _object(resp, what)
            if resp.ok or correct is not None:
                if correct is not None:
                    if not 0 <= correct <= size:
                        raise PermanentError(
                            f"Dropbox answered {what} with an odd offset ({correct})"
                        )
                    ctx.log.info("Dropbox has %s of %s bytes of %s", correct, size, what)
                    offset = correct
                else:
                    if step == "start":
                        session_id = str(_object(resp, what).get("session_id") or "") or None
                        if session_id is None:
                            raise PermanentError(f"Dropbox did not open a session for {what}")
                    offset += length
                if offset > best:
                    best, failures = offset, 0
                    continue
                problem, wait = f"Dropbox still has {offset} bytes", 0.0
            elif resp.status >= 500 or resp.status == 429:
                problem, wait = f"HTTP {resp.status}", resp.retry_after() or 0.0
            else:
                summary = _summary(resp)[0]
                if finish_interrupted and summary.startswith("lookup_failed/"):
                    raise PermanentError(
                        f"{what} was interrupted as it finished, and Dropbox may have saved "
                        f"the file then ({summary.rstrip('./')}): check {commit.get('path')} "
                        "before trying again"
                    )
                if summary.startswith(("not_found", "lookup_failed/not_found")):
                    raise PermanentError(
                        f"Dropbox no longer knows the upload session of {what} (sessions "
                        "last 7 days): try again"
                    )
                _check(resp, what)
                raise PermanentError(f"Dropbox answered {what} with HTTP {resp.status}")
        finish_interrupted = finish_interrupted or finishing
        failures += 1
        if failures > MAX_RESUMES:
            raise TransientError(
                f"{what} was interrupted {MAX_RESUMES + 1} times in a row ({problem}): "
                "try again later"
            )
        delay = max(RESUME_DELAY * 2 ** (failures - 1), wait)
        ctx.log.warning("%s was interrupted (%s); sending again in %g s", what, problem, delay)
        await asyncio.sleep(delay)


@service.reaction(
    "upload_file",
    "Upload a file",
    "Uploads a file from this computer to Dropbox (up to 350 GB). A file over "
    f"{SINGLE_UPLOAD_LIMIT // 2**20} MB goes up in {CHUNK_SIZE // 2**20} MB pieces, and an "
    "upload cut off by a dropped connection or a server error goes on from where it "
    f"stopped. An upload may take up to {UPLOAD_TIMEOUT // 3600} hours.",
    params=[
        Param(
            "file",
            ParamType.PATH,
            "File on this computer",
            help="The local file to upload.",
            example="~/Reports/{{ now[:10] }}.pdf",
        ),
        Param(
            "destination",
            ParamType.TEXT,
            "Path in Dropbox",
            help="Where it goes, from the top of your Dropbox. Ending in / puts it in that "
            "folder under its own name.",
            example="/Reports/",
        ),
        Param(
            "mode",
            ParamType.CHOICE,
            "If the file exists",
            help="Keep both (Dropbox renames the new one, e.g. “report (1).pdf”) or "
            "replace the existing file with a new version.",
            required=False,
            default="add",
            choices=(("add", "Keep both"), ("overwrite", "Replace it")),
            example="overwrite",
        ),
    ],
    fields=[
        Field("name", "File name", "2025-03-14.pdf"),
        Field("path", "Path in Dropbox", "/Reports/2025-03-14.pdf"),
        Field("id", "File id", "id:a4ayc_80_OEAAAAAAAAAYa"),
        Field("rev", "Revision", "a1c10ce0dd79"),
        Field("size", "Size (bytes)", 48213),
    ],
    timeout=UPLOAD_TIMEOUT,
    retry=False,
)
async def upload_file(ctx: ReactionContext) -> Mapping[str, Any]:
    local = Path(str(ctx.params["file"]))
    local, size = await local_file(local)
    destination = str(ctx.params["destination"]).strip()
    target = _dropbox_path(destination, "destination")
    if destination.endswith(("/", "\\")) or not target:
        target = f"{target}/{local.name}"
    mode = str(ctx.params.get("mode") or "add")
    arg = {"path": target, "mode": mode, "autorename": mode == "add", "mute": False}
    what = f"the upload to {target}"
    if size > SINGLE_UPLOAD_LIMIT:
        file = await asyncio.to_thread(local.open, "rb")
        try:
            data = await _upload_session(ctx, file, size, arg, what)
        finally:
            file.close()
    else:
        content = await asyncio.to_thread(local.read_bytes)
        resp = await _send_content(ctx.require_account(service), "/2/files/upload", arg, content)
        _check(resp, what)
        data = _object(resp, "the upload")
    return {
        "name": data.get("name"),
        "path": data.get("path_display"),
        "id": data.get("id"),
        "rev": data.get("rev"),
        "size": data.get("size"),
    }


def _link(data: Mapping[str, Any]) -> dict[str, Any]:
    url = str(data.get("url") or "")
    download = url.replace("dl=0", "dl=1") if "dl=0" in url else url
    return {
        "url": url,
        "download_url": download,
        "name": data.get("name"),
        "path": data.get("path_lower"),
    }


@service.reaction(
    "create_shared_link",
    "Create a shared link",
    "Makes a link to a file or folder that anyone with it can open (the existing link "
    "when there is one).",
    params=[
        Param(
            "path",
            ParamType.TEXT,
            "Path in Dropbox",
            help="The file or folder to share, from the top of your Dropbox.",
            example="{{ trigger.path }}",
        ),
    ],
    fields=[
        Field("url", "Link", "https://www.dropbox.com/scl/fi/x1y2z3/report.pdf?rlkey=ab12&dl=0"),
        Field(
            "download_url",
            "Direct download link",
            "https://www.dropbox.com/scl/fi/x1y2z3/report.pdf?rlkey=ab12&dl=1",
        ),
        Field("name", "Name", "report.pdf"),
        Field("path", "Path (lower case)", "/reports/report.pdf"),
    ],
)
async def create_shared_link(ctx: ReactionContext) -> Mapping[str, Any]:
    path = _dropbox_path(ctx.params["path"], "path")
    if not path:
        raise PermanentError("the top of a Dropbox cannot be shared: name a file or folder")
    account = ctx.require_account(service)
    what = f"file or folder {path}"
    resp = await _rpc(
        account, "/2/sharing/create_shared_link_with_settings", {"path": path}, what, check=False
    )
    if resp.status == 409 and _summary(resp)[0].startswith("shared_link_already_exists"):
        error = _summary(resp)[1] or {}
        existing = (error.get("shared_link_already_exists") or {}).get("metadata")
        if isinstance(existing, dict) and existing.get("url"):
            return _link(existing)
        listed = await _rpc(
            account, "/2/sharing/list_shared_links", {"path": path, "direct_only": True}, what
        )
        links = [x for x in _object(listed, what).get("links") or [] if isinstance(x, dict)]
        if not links:
            raise PermanentError(f"Dropbox says {path} is shared but lists no link for it")
        return _link(links[0])
    _check(resp, what)
    return _link(_object(resp, what))
