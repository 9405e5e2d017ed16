"""Google Drive: new, changed and shared files; upload files and create text files."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urljoin, urlsplit

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
    iso_time,
    local_file,
    read_chunk,
)

if TYPE_CHECKING:
    from engine import HttpClient, HttpResponse

SCOPE_READ = "https://www.googleapis.com/auth/drive.readonly"
SCOPE_FILE = "https://www.googleapis.com/auth/drive.file"
FOLDER_MIME = "application/vnd.google-apps.folder"
PAGE_SIZE = 50
#: Files up to this size go up in one request (a multipart upload: Google's limit for
#: one); larger ones in a resumable upload, chunk by chunk.
MULTIPART_LIMIT = 5 * 1024 * 1024
#: The size of each chunk of a resumable upload (Google wants a multiple of 256 KiB);
#: one chunk at a time is read into memory.
CHUNK_SIZE = 8 * 1024 * 1024
#: Interruptions in a row (a 5xx or 429, a dropped connection) a resumable upload
#: survives by asking Google what it has and going on from there; the wait before each
#: resume doubles from RESUME_DELAY seconds.
MAX_RESUMES = 5
RESUME_DELAY = 1.0
#: Seconds for one request of an upload (one chunk), and for the whole upload.
REQUEST_TIMEOUT = 300
UPLOAD_TIMEOUT = 3 * 3600
_FILE_FIELDS = (
    "id,name,mimeType,createdTime,modifiedTime,size,webViewLink,parents,"
    "lastModifyingUser(displayName,emailAddress)"
)
_LIST_FIELDS = (
    f"nextPageToken,files({_FILE_FIELDS},sharedWithMeTime,sharingUser(displayName,emailAddress))"
)
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{10,}$")
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "sharingRateLimitExceeded"}
_SCOPE_REASONS = {"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}


async def _whoami(http: HttpClient, token: str) -> str:
    """The e-mail address of the account a token belongs to."""
    resp = await http.get(
        _url("/drive/v3/about?fields=user"),
        headers={"Authorization": f"Bearer {token}"},
        check=False,
    )
    _check(resp, "your account")
    user = resp.json().get("user") or {}
    return str(user.get("emailAddress") or user.get("displayName"))


service = Service(
    "gdrive",
    "Google Drive",
    "New, changed and shared files in Google Drive; upload files and create text files "
    "as your Google account.",
    icon="gdrive.svg",
    account_label="Google account",
    auth=AuthKind.OAUTH2,
    api_base_url="https://www.googleapis.com",
    oauth=OAuth2Spec(
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",  # noqa: S106 - an address
        scopes=(SCOPE_READ, SCOPE_FILE),
        revoke_url="https://oauth2.googleapis.com/revoke",
        # Google ends the app's whole grant: revoking the token a reconnect replaces
        # would end the new one too.
        revoke_ends_every_sign_in=True,
        apps_url="https://myaccount.google.com/permissions",
        extra_authorize_params={"access_type": "offline", "prompt": "consent"},
        client_secret_required=True,
        userinfo=_whoami,
        register_url="https://console.cloud.google.com/apis/credentials",
        client_id_pattern=r"[0-9]+-[0-9a-z]+\.apps\.googleusercontent\.com",
        client_id_shape="a Google client ID ends with .apps.googleusercontent.com",
        client_help="(Google Cloud console → APIs & Services: enable the Google Drive API; "
        "on the OAuth consent screen add the scopes drive.readonly (the triggers need it "
        "to see files you did not make with Hookline) and drive.file (uploads), and add "
        "yourself as a test user — or publish the app, as an app left in “Testing” gets "
        "tokens that stop working after 7 days; then Credentials → Create credentials → "
        "OAuth client ID → Desktop app, and paste its client id and secret. Google accepts "
        "any port on 127.0.0.1)",
    ),
)

_FOLDER = Param(
    "folder",
    ParamType.TEXT,
    "Folder",
    help="The folder's address as the browser shows it "
    "(https://drive.google.com/drive/folders/…), or just its id; root for the top of "
    "My Drive.",
    example="https://drive.google.com/drive/folders/1dyUEebJaFnWa3Z4n0BFMVAXQ7mfUH11g",
)
_FIELDS = [
    Field("id", "File id", "1Kx9Jq3dV1qYd7bXK2pR8sLw0aN4mE5tF"),
    Field("name", "Name", "Invoice 2025-03.pdf"),
    Field("mime_type", "Type (MIME)", "application/pdf"),
    Field(
        "url", "Address", "https://drive.google.com/file/d/1Kx9Jq3dV1qYd7bXK2pR8sLw0aN4mE5tF/view"
    ),
    Field("size", "Size (bytes; none for Google Docs)", 48213),
    Field("created_at", "Created at (UTC, ISO 8601)", "2025-03-14T09:26:53.000Z"),
    Field("modified_at", "Changed at (UTC, ISO 8601)", "2025-03-14T09:26:53.000Z"),
    Field("modified_by", "Last changed by", "Marta Kowal"),
]


# ---------------------------------------------------------------------- the API


def _url(path: str) -> str:
    return service.api_base_url.rstrip("/") + path


def _folder_id(value: Any) -> str:
    """A folder id, from an id or a drive.google.com address."""
    text = str(value or "").strip()
    if text.startswith(("https://", "http://")):
        parts = urlsplit(text)
        segments = [s for s in parts.path.split("/") if s]
        if "folders" in segments and segments.index("folders") + 1 < len(segments):
            text = segments[segments.index("folders") + 1]
        else:
            match = re.search(r"[?&]id=([A-Za-z0-9_-]+)", text)
            text = match[1] if match else ""
    if text.lower() in ("root", "my drive"):
        return "root"  # Drive's alias for the top of My Drive
    if not _ID_RE.match(text):
        raise PermanentError(
            f"{value!r} is not a Google Drive folder: paste the folder's address, e.g. "
            "https://drive.google.com/drive/folders/1dyUEebJaFnWa3Z4n0BFMVAXQ7mfUH11g"
        )
    return text


def _error(resp: HttpResponse) -> tuple[str, set[str]]:
    """Google's message and the reasons (``notFound``, ``rateLimitExceeded``...)."""
    try:
        data = json.loads(resp.body)
    except ValueError:
        return resp.text()[:200].strip(), set()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", set()
    reasons = {str(e.get("reason")) for e in error.get("errors") or [] if isinstance(e, dict)}
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            reasons.add(str(detail["reason"]))
    return str(error.get("message") or "").rstrip("."), reasons


def _check(resp: HttpResponse, what: str) -> None:
    """Raise the engine error for a Google answer that is not a success."""
    status = resp.status
    if status < 300:
        return
    message, reasons = _error(resp)
    said = f": {message}" if message else ""
    if status == 429 or (status == 403 and reasons & _RATE_REASONS):
        wait = resp.retry_after()
        when = f"; try again in {wait:.0f} s" if wait is not None else ""
        raise RateLimited(f"Google Drive asks this account to slow down{when}", wait)
    if status == 401:
        raise AuthError(f"Google refused the account's token{said}: reconnect the account")
    if status == 403 and reasons & _SCOPE_REASONS:
        raise AuthError(
            f"the account was connected without the permission to reach {what}{said}: "
            "reconnect it and tick every Google Drive box on Google's consent page"
        )
    if status == 403 and "storageQuotaExceeded" in reasons:
        raise PermanentError("the Google account's storage is full: free some space")
    if status == 403:
        raise AuthError(f"Google Drive does not let this account reach {what}{said}")
    if status == 404:
        raise PermanentError(
            f"Google Drive has no {what}, or this account cannot see it: check the address"
        )
    if status >= 500:
        raise TransientError(f"Google Drive had a problem answering for {what} (HTTP {status})")
    raise PermanentError(f"Google Drive refused the request for {what} (HTTP {status}){said}")


def _file(data: Mapping[str, Any]) -> dict[str, Any]:
    user = data.get("lastModifyingUser") or {}
    size = data.get("size")
    return {
        "id": data.get("id"),
        "name": data.get("name"),
        "mime_type": data.get("mimeType"),
        "url": data.get("webViewLink"),
        "size": int(size) if isinstance(size, str) and size.isdigit() else size,
        "created_at": data.get("createdTime"),
        "modified_at": data.get("modifiedTime"),
        "modified_by": user.get("displayName") if isinstance(user, dict) else None,
    }



async def _list(ctx: PollContext, q: str, order_by: str, what: str) -> list[dict[str, Any]]:
    """One page of ``files.list`` (the newest ``PAGE_SIZE`` by ``order_by``)."""
    query = {
        "q": q,
        "orderBy": order_by,
        "pageSize": str(PAGE_SIZE),
        "fields": _LIST_FIELDS,
        "spaces": "drive",
        "supportsAllDrives": "true",
        "includeItemsFromAllDrives": "true",
    }
    resp = await ctx.require_account(service).get(_url("/drive/v3/files"), params=query,
                                                  check=False)
    _check(resp, what)
    data = resp.json()
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise PermanentError(f"Google Drive answered {what} with something unexpected")
    return [f for f in files if isinstance(f, dict) and f.get("id")]


def _in_folder(folder: str) -> str:
    return f"'{folder}' in parents and trashed = false and mimeType != '{FOLDER_MIME}'"


# ---------------------------------------------------------------------- triggers


@service.poll_trigger(
    "new_file_in_folder",
    "New file in a folder",
    "Fires once for each file that appears in a Google Drive folder (subfolders are not "
    "looked into).",
    params=[_FOLDER],
    fields=_FIELDS,
    default_interval=300,
    min_interval=30,
)
async def new_file_in_folder(ctx: PollContext) -> PollResult:
    folder = _folder_id(ctx.params.get("folder"))
    files = await _list(ctx, _in_folder(folder), "createdTime desc", f"folder {folder}")
    return PollResult([Item(str(f["id"]), _file(f), at=iso_time(f.get("createdTime")))
                       for f in files])


@service.poll_trigger(
    "file_changed",
    "File added or changed",
    "Fires for each file in a Google Drive folder that is added or saved again "
    "(each new version once).",
    params=[_FOLDER],
    fields=_FIELDS,
    default_interval=300,
    min_interval=30,
)
async def file_changed(ctx: PollContext) -> PollResult:
    folder = _folder_id(ctx.params.get("folder"))
    files = await _list(ctx, _in_folder(folder), "modifiedTime desc", f"folder {folder}")
    return PollResult([
        Item(f"{f['id']}@{f.get('modifiedTime')}", _file(f), at=iso_time(f.get("modifiedTime")))
        for f in files
    ])


@service.poll_trigger(
    "shared_with_me",
    "File shared with me",
    "Fires when someone shares a file or folder with your Google account.",
    fields=[
        *_FIELDS,
        Field("shared_by", "Shared by", "Jonas Eberle"),
        Field("shared_by_email", "Sharer's e-mail address", "jonas.eberle@example.org"),
        Field("shared_at", "Shared at (UTC, ISO 8601)", "2025-03-14T10:02:11.000Z"),
    ],
    default_interval=600,
    min_interval=60,
)
async def shared_with_me(ctx: PollContext) -> PollResult:
    files = await _list(
        ctx, "sharedWithMe and trashed = false", "sharedWithMeTime desc", "files shared with you"
    )
    items = []
    for f in files:
        sharer = f.get("sharingUser") or {}
        data = {
            **_file(f),
            "shared_by": sharer.get("displayName"),
            "shared_by_email": sharer.get("emailAddress"),
            "shared_at": f.get("sharedWithMeTime"),
        }
        items.append(Item(str(f["id"]), data, at=iso_time(f.get("sharedWithMeTime"))))
    return PollResult(items)


# ---------------------------------------------------------------------- reactions


async def _upload(
    ctx: ReactionContext, metadata: Mapping[str, Any], content: bytes, mime: str, what: str
) -> Mapping[str, Any]:
    """A multipart upload: the metadata as JSON, then the content."""
    boundary = "hookline" + secrets.token_hex(12)
    body = b"".join(
        [
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(metadata).encode(),
            f"\r\n--{boundary}\r\nContent-Type: {mime}\r\n\r\n".encode(),
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    resp = await ctx.require_account(service).request(
        "POST",
        _url("/upload/drive/v3/files"),
        params={
            "uploadType": "multipart",
            "fields": _FILE_FIELDS,
            "supportsAllDrives": "true",
        },
        headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        data=body,
        timeout=300,
        check=False,
    )
    _check(resp, what)
    data = resp.json()
    if not isinstance(data, dict):
        raise PermanentError(f"Google Drive answered {what} with something unexpected")
    return _file(data)


_TARGET = Param(
    "folder",
    ParamType.TEXT,
    "Into folder",
    help="The folder's address (https://drive.google.com/drive/folders/…) or id. "
    "Empty: the top of My Drive.",
    required=False,
    example="https://drive.google.com/drive/folders/1dyUEebJaFnWa3Z4n0BFMVAXQ7mfUH11g",
)


def _metadata(ctx: ReactionContext, name: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if ctx.params.get("folder"):
        metadata["parents"] = [_folder_id(ctx.params["folder"])]
    return metadata


class _SessionGone(Exception):
    """Google no longer knows the upload session (404/410): it expired."""


async def _open_session(
    ctx: ReactionContext, metadata: Mapping[str, Any], size: int, mime: str, what: str
) -> str:
    """Start a resumable upload; the session's address (Google's ``Location``)."""
    resp = await ctx.require_account(service).request(
        "POST",
        _url("/upload/drive/v3/files"),
        params={"uploadType": "resumable", "fields": _FILE_FIELDS, "supportsAllDrives": "true"},
        headers={
            "Content-Type": "application/json; charset=UTF-8",
            "X-Upload-Content-Type": mime,
            "X-Upload-Content-Length": str(size),
        },
        data=json.dumps(metadata).encode(),
        timeout=REQUEST_TIMEOUT,
        check=False,
    )
    _check(resp, what)
    location = resp.header("Location")
    if not location:
        raise PermanentError(f"Google Drive did not open an upload session for {what}")
    return urljoin(resp.url, location)


def _received(resp: HttpResponse, size: int, what: str) -> int:
    """How many bytes Google has, from a 308's ``Range: bytes=0-N`` (none: nothing)."""
    value = resp.header("Range")
    if not value:
        return 0
    match = re.fullmatch(r"\s*bytes=0-(\d+)\s*", value)
    if not match or int(match[1]) >= size:
        raise PermanentError(f"Google Drive answered {what} with an odd range ({value})")
    return int(match[1]) + 1


async def _send_chunks(
    ctx: ReactionContext, session: str, file: BinaryIO, size: int, what: str
) -> Mapping[str, Any]:
    """Send the file to an upload session chunk by chunk; Google's file resource.

    After an interruption (a 5xx, a dropped connection) Google is asked what it has
    (``Content-Range: bytes */size``) and the upload goes on from there.
    """
    account = ctx.require_account(service)
    best = 0  # the most Google ever said it had: what counts as progress
    offset: int | None = 0  # where the next chunk starts; None: ask Google first
    failures = 0
    while True:
        asked = offset is None
        if offset is None or offset >= size:
            chunk, content_range = b"", f"bytes */{size}"
        else:
            length = min(CHUNK_SIZE, size - offset)
            chunk = await read_chunk(file, offset, length, what)
            content_range = f"bytes {offset}-{offset + length - 1}/{size}"
        try:
            resp = await account.request(
                "PUT",
                session,
                headers={"Content-Range": content_range},
                data=chunk,
                timeout=REQUEST_TIMEOUT,
                check=False,
            )
        except TransientError as exc:
            problem, offset = str(exc), None
        else:
            if resp.status in (200, 201):
                data = resp.json()
                if not isinstance(data, dict):
                    raise PermanentError(f"Google Drive answered {what} with something unexpected")
                return data
            if resp.status in (404, 410):
                raise _SessionGone
            if resp.status == 308:
                offset = _received(resp, size, what)
                if offset > best:
                    best, failures = offset, 0
                    continue
                if asked:
                    continue  # the answer to our question; not a step back
                problem = "Google Drive kept none of the last chunk"
            elif resp.status >= 500 or resp.status == 429:
                problem, offset = f"HTTP {resp.status}", None
            else:
                _check(resp, what)
                raise PermanentError(f"Google Drive answered {what} with HTTP {resp.status}")
        failures += 1
        if failures > MAX_RESUMES:
            raise TransientError(
                f"{what} was interrupted {MAX_RESUMES + 1} times in a row ({problem}): "
                "try again later"
            )
        delay = RESUME_DELAY * 2 ** (failures - 1)
        ctx.log.warning("%s was interrupted (%s); resuming in %g s", what, problem, delay)
        await asyncio.sleep(delay)


@service.reaction(
    "upload_file",
    "Upload a file",
    "Uploads a file from this computer to Google Drive (up to 5 TB). A file over "
    f"{MULTIPART_LIMIT // 2**20} MB goes up in {CHUNK_SIZE // 2**20} MB pieces, and an upload "
    "cut off by a dropped connection or a server error goes on from where it stopped. An "
    f"upload may take up to {UPLOAD_TIMEOUT // 3600} hours.",
    params=[
        Param(
            "file",
            ParamType.PATH,
            "File on this computer",
            help="The local file to upload.",
            example="~/Scans/{{ now[:10] }}.pdf",
        ),
        _TARGET,
        Param(
            "name",
            ParamType.TEXT,
            "Name in Drive",
            help="The file's name in Google Drive. Empty: the local file's name. Drive "
            "allows several files with the same name; a new one is added each time.",
            required=False,
            example="Scan {{ now[:10] }}.pdf",
        ),
    ],
    fields=_FIELDS,
    timeout=UPLOAD_TIMEOUT,
    retry=False,
)
async def upload_file(ctx: ReactionContext) -> Mapping[str, Any]:
    local, size = await local_file(Path(str(ctx.params["file"])))
    name = str(ctx.params.get("name") or local.name).strip()
    mime = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
    metadata, what = _metadata(ctx, name), f"the upload of {name}"
    if size <= MULTIPART_LIMIT:
        content = await asyncio.to_thread(local.read_bytes)
        return await _upload(ctx, metadata, content, mime, what)
    file = await asyncio.to_thread(local.open, "rb")
    try:
        session = await _open_session(ctx, metadata, size, mime, what)
        try:
            data = await _send_chunks(ctx, session, file, size, what)
        except _SessionGone:
            # Sessions last about a week; one that vanished mid-upload is started afresh once.
            ctx.log.warning("Google Drive forgot the session of %s; starting it again", what)
            session = await _open_session(ctx, metadata, size, mime, what)
            try:
                data = await _send_chunks(ctx, session, file, size, what)
            except _SessionGone:
                raise PermanentError(
                    f"Google Drive dropped the upload session of {name} twice (HTTP 404): "
                    "try again later"
                ) from None
    finally:
        file.close()
    return _file(data)


@service.reaction(
    "create_text_file",
    "Create a text file",
    "Saves text as a new file in Google Drive, or as a Google Doc.",
    params=[
        Param(
            "name",
            ParamType.TEXT,
            "Name",
            help="The new file's name.",
            example="Notes {{ now[:10] }}.txt",
        ),
        Param(
            "content",
            ParamType.MULTILINE,
            "Text",
            help="What the file holds.",
            example="{{ trigger.title }}\n{{ trigger.url }}",
        ),
        _TARGET,
        Param(
            "google_doc",
            ParamType.BOOL,
            "As a Google Doc",
            help="Convert the text into a Google Doc that can be edited in the browser.",
            required=False,
            default=False,
            example=True,
        ),
    ],
    fields=_FIELDS,
    retry=False,
)
async def create_text_file(ctx: ReactionContext) -> Mapping[str, Any]:
    name = str(ctx.params["name"]).strip()
    metadata = _metadata(ctx, name)
    if ctx.params.get("google_doc"):
        metadata["mimeType"] = "application/vnd.google-apps.document"
    content = str(ctx.params.get("content") or "").encode("utf-8")
    return await _upload(ctx, metadata, content, "text/plain; charset=UTF-8", f"the file {name}")
