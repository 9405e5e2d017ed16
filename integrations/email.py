"""Email: send messages over SMTP and react to new messages in an IMAP mailbox."""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import email.errors
import email.policy
import email.utils
import logging
import re
import ssl
from base64 import b64decode, b64encode
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.headerregistry import AddressHeader
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from functools import cached_property
from html.parser import HTMLParser
from typing import Any, TypeVar

import aioimaplib
import aiosmtplib

from engine import (
    AuthError,
    Field,
    Item,
    Param,
    ParamType,
    PermanentError,
    PollContext,
    PollResult,
    ReactionContext,
    Service,
    ServiceError,
    TransientError,
)

#: Seconds one SMTP or IMAP command may take before the server counts as unreachable.
COMMAND_TIMEOUT = 20.0
#: Seconds from connecting to the last accepted recipient; past it nothing was sent yet.
SMTP_SETUP_TIMEOUT = 45.0
#: How many of the newest messages a poll looks at (the engine remembers which it saw).
NEWEST_MESSAGES = 200
#: Bytes of each message's text fetched for the preview, and characters kept.
PREVIEW_BYTES = 2000
PREVIEW_CHARS = 500

# aioimaplib logs every line it sends and receives at DEBUG, including LOGIN (its scrubbing
# misses passwords that need quoting) and whole messages: never let that reach a log file.
logging.getLogger("aioimaplib.aioimaplib").setLevel(logging.INFO)

service = Service(
    "email",
    "Email",
    "Send email through your SMTP server and react to new messages in an IMAP mailbox.",
    icon="email.svg",
)

# 7bit: non-ASCII bodies go quoted-printable or base64, so no server needs 8BITMIME.
_SMTP_POLICY = email.policy.SMTP.clone(cte_type="7bit")

_SMTP_SECURITY = (
    ("starttls", "STARTTLS (usually port 587)"),
    ("ssl", "SSL/TLS (usually port 465)"),
    ("none", "None: unencrypted (usually port 25)"),
)
_IMAP_SECURITY = (
    ("ssl", "SSL/TLS (usually port 993)"),
    ("starttls", "STARTTLS (usually port 143)"),
    ("none", "None: unencrypted (usually port 143)"),
)


# --- sending -------------------------------------------------------------------------------


@service.reaction(
    "send",
    "Send an email",
    "Send a message through your mail provider's SMTP server.",
    params=[
        Param(
            "host",
            ParamType.TEXT,
            "SMTP server",
            help="Your provider's outgoing mail server.",
            example="smtp.example.org",
        ),
        Param(
            "port",
            ParamType.INTEGER,
            "Port",
            help="587 for STARTTLS, 465 for SSL/TLS, 25 for an unencrypted server.",
            default=587,
            minimum=1,
            maximum=65535,
            example=587,
        ),
        Param(
            "security",
            ParamType.CHOICE,
            "Encryption",
            help="How the connection is encrypted; your provider's settings page says "
            "which (STARTTLS on 587 is the most common).",
            choices=_SMTP_SECURITY,
            default="starttls",
            example="starttls",
        ),
        Param(
            "username",
            ParamType.TEXT,
            "User name",
            required=False,
            help="Usually your full email address. Leave empty if the server needs no login.",
            example="me@example.org",
        ),
        Param(
            "password",
            ParamType.SECRET,
            "Password",
            required=False,
            help="Your email password, or an app password if your provider asks for one "
            "(Gmail, Outlook, iCloud do).",
            example="abcd efgh ijkl mnop",
        ),
        Param(
            "from_address",
            ParamType.EMAIL,
            "From",
            help="One sender address; most servers only accept the account's own.",
            example="me@example.org",
        ),
        Param(
            "to",
            ParamType.EMAIL,
            "To",
            help="One or more addresses, separated by commas.",
            example="friend@example.org, other@example.org",
        ),
        Param(
            "cc",
            ParamType.EMAIL,
            "Cc",
            required=False,
            help="Addresses that get a copy, separated by commas.",
            example="boss@example.org",
        ),
        Param(
            "subject",
            ParamType.TEXT,
            "Subject",
            help="One line; a template may fill it in.",
            example="New post: {{ trigger.title }}",
        ),
        Param(
            "body",
            ParamType.MULTILINE,
            "Body",
            help="The message. With the HTML format, write HTML: the values a template "
            "inserts are escaped (a title with < or & shows as written), and a plain-text "
            "copy is made for mail programs that do not show HTML.",
            html_when=("format", "html"),
            example="Hello,\n\n{{ trigger.title }} was just published: {{ trigger.link }}",
        ),
        Param(
            "format",
            ParamType.CHOICE,
            "Format",
            help="Plain text, or HTML (sent together with a plain-text copy).",
            choices=(("text", "Plain text"), ("html", "HTML")),
            default="text",
            example="text",
        ),
    ],
    fields=[
        Field("message_id", "Message-ID", "<171234.5678.1234@example.org>"),
        Field("recipients", "Recipients", "friend@example.org, other@example.org"),
    ],
    # Generous on purpose: SMTP_SETUP_TIMEOUT plus two DATA replies fit inside, so the
    # engine's own timeout should never cut an attempt off in the middle of DATA.
    timeout=SMTP_SETUP_TIMEOUT + 3 * COMMAND_TIMEOUT,
)
async def send(ctx: ReactionContext) -> Mapping[str, Any]:
    params = ctx.params
    if params.get("password") and not params.get("username"):
        raise PermanentError(
            "A password is set but no user name: fill in the user name "
            "(usually your email address)."
        )
    message = _build_message(params)
    recipients = _unique(_split(params["to"]) + _split(params.get("cc")))
    await _deliver(params, message, recipients)
    return {"message_id": message["Message-ID"], "recipients": ", ".join(recipients)}


def _build_message(params: Mapping[str, Any]) -> EmailMessage:
    senders = _split(params["from_address"])
    if len(senders) != 1:
        raise PermanentError("From must be exactly one address, e.g. me@example.org.")
    subject: str = params["subject"]
    if "\r" in subject or "\n" in subject:
        # A line break would start a new header (e.g. "Bcc: ..."): refuse, do not repair.
        raise PermanentError(
            "The subject contains a line break, which could add hidden mail headers; "
            "nothing was sent. Keep the subject on one line (in a template: "
            "{{ trigger.title | replace('\\n', ' ') }})."
        )
    message = EmailMessage(policy=_SMTP_POLICY)
    message["From"] = senders[0]
    message["To"] = params["to"]
    if params.get("cc"):
        message["Cc"] = params["cc"]
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(datetime.now().astimezone())
    message["Message-ID"] = email.utils.make_msgid(domain=_ascii_domain(senders[0]))
    body: str = params["body"]
    if params["format"] == "html":
        message.set_content(html_to_text(body))
        message.add_alternative(body, subtype="html")
    else:
        message.set_content(body)
    return message


async def _deliver(params: Mapping[str, Any], message: EmailMessage, recipients: list[str]) -> None:
    host: str = params["host"].strip()
    port: int = params["port"]
    security: str = params["security"]
    where = f"{host}:{port}"
    client = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        use_tls=security == "ssl",
        start_tls=False,
        tls_context=None if security == "none" else await _tls_context(),
        timeout=COMMAND_TIMEOUT,
    )
    try:
        # Until DATA starts nothing has been sent: every failure may be retried.
        try:
            async with asyncio.timeout(SMTP_SETUP_TIMEOUT):
                await _smtp_setup(client, params, recipients, where)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AuthError(
                f"SMTP server refused the user name or password ({exc.code} {exc.message})"
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _smtp_reply_error(exc, where, "answered") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise _network_error(exc, where, "SMTP") from exc
        try:
            await client.data(message.as_bytes())
        except aiosmtplib.SMTPResponseException as exc:
            # The server answered: the message was certainly not accepted.
            raise _smtp_reply_error(exc, where, "refused the message") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise PermanentError(
                f"The connection to {where} broke while the message was being sent "
                f"({_describe(exc)}). It may or may not have been delivered; Hookline does "
                "not retry it, so that it is never sent twice."
            ) from exc
        # The message is accepted; a failed goodbye changes nothing, and a short one keeps
        # the attempt well inside the reaction's timeout.
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await client.quit(timeout=5.0)
    finally:
        client.close()


async def _smtp_setup(
    client: aiosmtplib.SMTP, params: Mapping[str, Any], recipients: list[str], where: str
) -> None:
    await client.connect()
    if params["security"] == "starttls":
        await client.ehlo()
        if not client.supports_extension("starttls"):
            raise PermanentError(
                f"{where} does not offer STARTTLS. Choose SSL/TLS (usually port 465), or "
                "no encryption only for a server on a network you trust."
            )
        await client.starttls()
    username = params.get("username")
    if username:
        await client.ehlo()
        if not client.supports_extension("auth"):
            raise PermanentError(
                f"{where} does not offer a login on this connection. Leave the user name "
                "empty, or turn on encryption (many servers only offer a login over it)."
            )
        await client.login(username, params.get("password") or "")
    sender = _split(params["from_address"])[0]
    try:
        await client.mail(sender)
    except aiosmtplib.SMTPSenderRefused as exc:
        raise _smtp_reply_error(exc, where, f"refused the sender {sender}") from exc
    refused: list[aiosmtplib.SMTPRecipientRefused] = []
    for recipient in recipients:
        try:
            await client.rcpt(recipient)
        except aiosmtplib.SMTPRecipientRefused as exc:
            refused.append(exc)
    if refused:
        listing = "; ".join(f"{exc.recipient} ({exc.code} {exc.message})" for exc in refused)
        text = f"The SMTP server {where} refused these recipients: {listing}. Nothing was sent."
        if all(400 <= exc.code < 500 for exc in refused):
            raise TransientError(text)
        raise PermanentError(text)


def _smtp_reply_error(exc: aiosmtplib.SMTPResponseException, where: str, what: str) -> ServiceError:
    """An error for a reply the server gave: 4xx is worth retrying, 5xx is not."""
    text = f"The SMTP server {where} {what}: {exc.code} {exc.message}"
    if 400 <= exc.code < 500:
        return TransientError(text)
    return PermanentError(text)


# --- watching a mailbox --------------------------------------------------------------------


@service.poll_trigger(
    "new_message",
    "New email",
    "Fires for each new message in an IMAP mailbox. Messages are read without being "
    "marked as read.",
    params=[
        Param(
            "host",
            ParamType.TEXT,
            "IMAP server",
            help="Your provider's incoming (IMAP) mail server.",
            example="imap.example.org",
        ),
        Param(
            "port",
            ParamType.INTEGER,
            "Port",
            help="993 for SSL/TLS, 143 for STARTTLS or an unencrypted server.",
            default=993,
            minimum=1,
            maximum=65535,
            example=993,
        ),
        Param(
            "security",
            ParamType.CHOICE,
            "Encryption",
            help="How the connection is encrypted; your provider's settings page says "
            "which (SSL/TLS on 993 is the most common).",
            choices=_IMAP_SECURITY,
            default="ssl",
            example="ssl",
        ),
        Param(
            "username",
            ParamType.TEXT,
            "User name",
            help="Usually your full email address.",
            example="me@example.org",
        ),
        Param(
            "password",
            ParamType.SECRET,
            "Password",
            help="Your email password, or an app password if your provider asks for one "
            "(Gmail, Outlook, iCloud do).",
            example="abcd efgh ijkl mnop",
        ),
        Param(
            "mailbox",
            ParamType.TEXT,
            "Mailbox",
            help="The folder to watch, as the server names it (sub-folders look like "
            "Work/Reports or Work.Reports).",
            default="INBOX",
            example="INBOX",
        ),
        Param(
            "from_contains",
            ParamType.TEXT,
            "Sender contains",
            required=False,
            help="Only messages whose sender (name or address) contains this text, ignoring case.",
            example="newsletter@example.org",
        ),
        Param(
            "subject_contains",
            ParamType.TEXT,
            "Subject contains",
            required=False,
            help="Only messages whose subject contains this text, ignoring case.",
            example="invoice",
        ),
    ],
    fields=[
        Field("uid", "UID in the mailbox", 4217),
        Field("message_id", "Message-ID", "<CAF=1234@mail.example.org>"),
        Field("from", "From", "Alice Example <alice@example.org>"),
        Field("from_address", "Sender address", "alice@example.org"),
        Field("to", "To", "me@example.org"),
        Field("subject", "Subject", "Invoice for March"),
        Field("date", "Date (ISO 8601)", "2024-03-05T09:12:44+01:00"),
        Field("preview", "Start of the text", "Hello, please find attached the invoice…"),
        Field("mailbox", "Mailbox", "INBOX"),
    ],
    default_interval=120.0,
    min_interval=30.0,
)
async def new_message(ctx: PollContext) -> PollResult:
    params = ctx.params
    mailbox: str = params["mailbox"].strip()
    where = f"{params['host'].strip()}:{params['port']}"
    async with _imap_session(params, where) as imap:
        box = await _examine(imap, mailbox, where)
        floor, renumbered = _floor(ctx, mailbox, box)
        if floor and not renumbered:
            # Everything that arrived since the last check, oldest first, a page at a
            # time: more than a page waits for the next check, never dropped.
            arrived = await _uids_from(imap, floor, where)
            page = arrived[:NEWEST_MESSAGES]
            if len(arrived) > len(page):
                ctx.log.info("%d new messages in %s: the oldest %d now, the rest at the "
                             "next checks", len(arrived), mailbox, len(page))
            window = await _fetch_headers_by_uid(imap, page, where)
            next_floor = page[-1] + 1 if page else floor
        else:  # a first look (or one after renumbering): the newest messages
            window = await _fetch_headers(imap, box.exists, where)
            next_floor = max([box.uidnext or 1, *(m.uid + 1 for m in window)])
        if renumbered:
            wanted = _arrived_since_renumbering(ctx, mailbox, box, window)
        else:
            wanted = [m for m in window if m.uid >= floor]
        wanted = [m for m in wanted if _matches(m, params)]
        previews = await _fetch_previews(imap, [m.uid for m in wanted], where)
    newest = [t for m in window if (t := _received(m.internaldate)) is not None]
    if (floor or renumbered) and ctx.state.get("newest") is not None:  # same mailbox
        newest.append(int(ctx.state["newest"]))
    ctx.state.update({"mailbox": mailbox, "uidvalidity": box.uidvalidity,
                      "floor": next_floor, "newest": max(newest, default=None)})
    items = [
        Item(
            key=f"{box.uidvalidity}:{m.uid}",
            data=m.data(mailbox, _preview(m.header_bytes, previews.get(m.uid, b""))),
        )
        for m in sorted(wanted, key=lambda m: m.uid, reverse=True)  # newest first
    ]
    return PollResult(items=items)


@dataclass(frozen=True)
class _Mailbox:
    exists: int
    uidvalidity: int
    uidnext: int | None


@dataclass(frozen=True)
class _Headers:
    uid: int
    header_bytes: bytes
    internaldate: str

    @cached_property
    def parsed(self) -> EmailMessage:
        return _HEADER_PARSER.parsebytes(self.header_bytes, headersonly=True)

    def data(self, mailbox: str, preview: str) -> dict[str, Any]:
        message = self.parsed
        return {
            "uid": self.uid,
            "message_id": _header(message, "Message-ID"),
            "from": _header(message, "From"),
            "from_address": _first_address(message, "From"),
            "to": _header(message, "To"),
            "subject": _header(message, "Subject"),
            "date": _date(_header(message, "Date"), self.internaldate),
            "preview": preview,
            "mailbox": mailbox,
        }


_HEADER_PARSER = BytesParser(policy=email.policy.default)
_FIELDS = "FROM TO SUBJECT DATE MESSAGE-ID CONTENT-TYPE CONTENT-TRANSFER-ENCODING"


def _floor(ctx: PollContext, mailbox: str, box: _Mailbox) -> tuple[int, bool]:
    """The lowest UID this poll may report (0: a first look at the mailbox), and whether
    the server renumbered the mailbox since the last check (UIDVALIDITY changed: every
    UID, and so every key, changed).

    Deleting or archiving messages pulls older ones into the newest-N window; they were
    never new, so they must not fire.
    """
    state = ctx.state
    if state.get("mailbox") != mailbox:
        return 0, False
    if state.get("uidvalidity") == box.uidvalidity:
        return int(state.get("floor", 0)), False
    return box.uidnext or 0, True


def _arrived_since_renumbering(
    ctx: PollContext, mailbox: str, box: _Mailbox, window: Sequence[_Headers]
) -> list[_Headers]:
    """After the server renumbered the mailbox, the messages of the newest window that
    arrived after every message the last checks looked at: received (INTERNALDATE, the
    server's own clock, kept by a copy or a move) in a later second. What the user had
    before, copied back into the mailbox made again, keeps its old date and does not
    fire; mail that came meanwhile does."""
    newest = ctx.state.get("newest")
    if newest is None:  # saved by a version that did not keep it
        ctx.log.info(
            "The server renumbered mailbox %s; only messages arriving from now on fire",
            mailbox,
        )
        return []
    later = [m for m in window if (_received(m.internaldate) or 0) > int(newest)]
    ctx.log.info(
        "The server renumbered mailbox %s; %d message(s) received since the last check "
        "fire, the %d there before do not",
        mailbox,
        len(later),
        box.exists - len(later),
    )
    if later and len(later) == len(window) < box.exists:
        ctx.log.warning(
            "Mailbox %s: more than %d messages arrived while the server renumbered it; "
            "only the newest %d fire",
            mailbox,
            len(window),
            len(window),
        )
    return later


def _matches(message: _Headers, params: Mapping[str, Any]) -> bool:
    parsed = message.parsed
    for param, header in (("from_contains", "From"), ("subject_contains", "Subject")):
        needle = params.get(param)
        if needle and needle.strip().casefold() not in _header(parsed, header).casefold():
            return False
    return True


@contextlib.asynccontextmanager
async def _imap_session(params: Mapping[str, Any], where: str) -> AsyncIterator[Any]:
    """A logged-in IMAP connection that is always logged out and closed afterwards."""
    host: str = params["host"].strip()
    port: int = params["port"]
    security: str = params["security"]
    if security == "ssl":
        imap = aioimaplib.IMAP4_SSL(
            host=host, port=port, timeout=COMMAND_TIMEOUT, ssl_context=await _tls_context()
        )
    else:
        imap = aioimaplib.IMAP4(host=host, port=port, timeout=COMMAND_TIMEOUT)
    try:
        await imap.wait_hello_from_server()
        if security == "starttls":
            await _imap_starttls(imap, host, where)
        await _imap_login(imap, params["username"], params["password"], where)
        yield imap
    except (aioimaplib.AioImapException, OSError, TimeoutError) as exc:
        raise _network_error(exc, where, "IMAP") from exc
    finally:
        await _imap_close(imap)


async def _imap_starttls(imap: Any, host: str, where: str) -> None:
    # aioimaplib knows the STARTTLS command but cannot upgrade the connection itself.
    protocol = imap.protocol
    if "STARTTLS" not in protocol.capabilities:
        raise PermanentError(
            f"{where} does not offer STARTTLS. Choose SSL/TLS (usually "
            "port 993), or no encryption only on a network you trust."
        )
    command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    response = await asyncio.wait_for(protocol.execute(command), COMMAND_TIMEOUT)
    if response.result != "OK":
        raise PermanentError(f"{where} refused STARTTLS: {_status_text(response)}")
    protocol.transport = await asyncio.get_running_loop().start_tls(
        protocol.transport,
        protocol,
        await _tls_context(),
        server_hostname=host,
        ssl_handshake_timeout=COMMAND_TIMEOUT,
    )
    # What the server said before encryption no longer counts (RFC 3501 6.2.1).
    await asyncio.wait_for(protocol.capability(), COMMAND_TIMEOUT)


async def _imap_login(imap: Any, username: str, password: str, where: str) -> None:
    if "LOGINDISABLED" in imap.protocol.capabilities:
        raise PermanentError(
            f"{where} refuses logins over an unencrypted connection. "
            "Choose SSL/TLS (usually port 993) or STARTTLS (port 143)."
        )
    try:
        response = await imap.login(_imap_string(username), password)
    except ValueError:  # aioimaplib refuses CR, LF and NUL in arguments
        raise PermanentError(
            "The user name or password contains a line break; remove it."
        ) from None
    if response.result == "OK":
        return
    reason = _status_text(response)
    if any(b"[UNAVAILABLE]" in bytes(line) for line in response.lines):
        raise TransientError(f"{where} cannot log you in right now: {reason}")
    raise AuthError(
        f"The IMAP server {where} refused the user name or password ({reason}). "
        "Many providers need an app password for IMAP."
    )


async def _imap_close(imap: Any) -> None:
    protocol = imap.protocol
    transport = protocol.transport
    if transport is None:
        return
    if not transport.is_closing() and imap.get_state() in (
        aioimaplib.NONAUTH,
        aioimaplib.AUTH,
        aioimaplib.SELECTED,
    ):
        # The poll's outcome is decided by now; a failed goodbye must not change it.
        with contextlib.suppress(aioimaplib.AioImapException, OSError, TimeoutError):
            await asyncio.wait_for(imap.logout(), 5.0)
    transport.close()


async def _examine(imap: Any, mailbox: str, where: str) -> _Mailbox:
    """Open ``mailbox`` read-only (EXAMINE), so nothing in it changes."""
    response = await imap.examine(_imap_string(_utf7_encode(mailbox)))
    if response.result != "OK":
        reason = _status_text(response)
        known = await _list_mailboxes(imap) if response.result == "NO" else []
        listing = f" Mailboxes on this account: {', '.join(known)}." if known else ""
        raise PermanentError(f"Cannot open mailbox {mailbox!r} on {where}: {reason}.{listing}")
    # EXAMINE selects the mailbox (RFC 3501 6.3.2) but aioimaplib only tracks that for SELECT.
    imap.protocol.state = aioimaplib.SELECTED
    text = b"\n".join(bytes(line) for line in response.lines)
    exists = re.search(rb"^(\d+) EXISTS", text, re.MULTILINE)
    validity = re.search(rb"\[UIDVALIDITY (\d+)\]", text)
    uidnext = re.search(rb"\[UIDNEXT (\d+)\]", text)
    if exists is None or validity is None:
        raise PermanentError(
            f"{where} did not say how many messages {mailbox!r} holds or "
            "how they are numbered (EXISTS, UIDVALIDITY)"
        )
    return _Mailbox(int(exists[1]), int(validity[1]), int(uidnext[1]) if uidnext else None)


async def _list_mailboxes(imap: Any, limit: int = 40) -> list[str]:
    response = await imap.list('""', '"*"')
    if response.result != "OK":
        return []
    names: list[str] = []
    tokens = _tokens(response.lines[:-1])
    i = 0
    while i < len(tokens):
        if tokens[i][0] == "(":  # (flags) delimiter name
            _, i = _parse_list(tokens, i)
            if i + 1 < len(tokens):
                name = tokens[i + 1][1]
                if isinstance(name, bytes):
                    name = name.decode("utf-8", "replace")
                if isinstance(name, str):
                    names.append(_utf7_decode(name))
            i += 2
        else:
            i += 1
    names.sort(key=str.casefold)
    if len(names) > limit:
        return [*names[:limit], f"… and {len(names) - limit} more"]
    return names


async def _fetch_headers(imap: Any, exists: int, where: str) -> list[_Headers]:
    if exists == 0:
        return []
    first = max(1, exists - NEWEST_MESSAGES + 1)
    response = await imap.fetch(
        f"{first}:{exists}", f"(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({_FIELDS})])"
    )
    _check(response, "FETCH", where)
    return _headers(response.lines)


def _headers(lines: Sequence[Any]) -> list[_Headers]:
    found: list[_Headers] = []
    for record in _fetch_records(lines):
        uid = record.get("UID")
        header = _section(record, "BODY[HEADER")
        if isinstance(uid, str) and uid.isdigit():
            date = record.get("INTERNALDATE")
            found.append(
                _Headers(
                    int(uid),
                    header or b"",
                    date.decode("ascii", "replace") if isinstance(date, bytes) else "",
                )
            )
    return found


async def _uids_from(imap: Any, floor: int, where: str) -> list[int]:
    """The UIDs from ``floor`` on, ascending (numbers only: cheap however many)."""
    response = await imap.uid_search(f"UID {floor}:*", charset=None)
    _check(response, "UID SEARCH", where)
    found: set[int] = set()
    for line in response.lines[:-1]:  # the last line is the command's completion
        words = bytes(line).decode("ascii", "replace").split()
        if words[:1] == ["SEARCH"]:  # as servers send it; aioimaplib drops the word
            words = words[1:]
        found.update(int(word) for word in words if word.isdigit())
    # "n:*" names the last message even when its UID is below n (RFC 3501 6.4.8)
    return sorted(uid for uid in found if uid >= floor)


async def _fetch_headers_by_uid(imap: Any, uids: Sequence[int], where: str) -> list[_Headers]:
    if not uids:
        return []
    response = await imap.uid(
        "fetch", _uid_set(uids), f"(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({_FIELDS})])")
    _check(response, "UID FETCH", where)
    return _headers(response.lines)


async def _fetch_previews(imap: Any, uids: Sequence[int], where: str) -> dict[int, bytes]:
    if not uids:
        return {}
    response = await imap.uid("fetch", _uid_set(uids), f"(BODY.PEEK[TEXT]<0.{PREVIEW_BYTES}>)")
    _check(response, "UID FETCH", where)
    previews: dict[int, bytes] = {}
    for record in _fetch_records(response.lines):
        uid = record.get("UID")
        if isinstance(uid, str) and uid.isdigit():
            previews[int(uid)] = _section(record, "BODY[TEXT]") or b""
    return previews


def _check(response: Any, command: str, where: str) -> None:
    if response.result != "OK":
        raise TransientError(
            f"{where} answered {response.result} to {command}: {_status_text(response)}"
        )


def _status_text(response: Any) -> str:
    """The human text of a command's final (tagged) reply, without codes and timings."""
    text = bytes(response.lines[-1]).decode("utf-8", "replace") if response.lines else ""
    text = re.sub(r"^\s*\[[^\]]*\]", "", text)  # a response code such as [NONEXISTENT]
    text = re.sub(r"\s*\([\d.]+(?: \+ [\d.]+)* secs\)", "", text)  # Dovecot's timings
    return text.strip().rstrip(".") or "no reason given"


# --- IMAP responses: a small reader for the parts of RFC 3501 syntax used here -------------

_TOKEN_RE = re.compile(
    rb'\s*(?:(?P<open>\()|(?P<close>\))|"(?P<quoted>(?:\\.|[^"\\])*)"|\{(?P<literal>\d+)\}\s*$'
    rb'|(?P<atom>[^\s()"{\[\]]+(?:\[[^\]]*\])?(?:<[\d.]+>)?))'
)
_Token = tuple[str, Any]


def _tokens(lines: Sequence[bytes | bytearray]) -> list[_Token]:
    """Tokens of response lines as aioimaplib hands them over (literals as bytearray)."""
    tokens: list[_Token] = []
    for line in lines:
        if isinstance(line, bytearray):  # the data of the literal announced before it
            tokens.append(("string", bytes(line)))
            continue
        position = 0
        while (match := _TOKEN_RE.match(line, position)) and match.end() > position:
            position = match.end()
            if match["open"]:
                tokens.append(("(", None))
            elif match["close"]:
                tokens.append((")", None))
            elif match["quoted"] is not None:
                tokens.append(("string", re.sub(rb"\\(.)", rb"\1", match["quoted"])))
            elif match["atom"]:
                tokens.append(("atom", match["atom"].decode("ascii", "replace")))
    return tokens


def _parse_list(tokens: Sequence[_Token], start: int) -> tuple[list[Any], int]:
    """The parenthesised list opening at ``start``, and the index after it."""
    items: list[Any] = []
    i = start + 1
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == ")":
            return items, i + 1
        if kind == "(":
            sublist, i = _parse_list(tokens, i)
            items.append(sublist)
            continue
        items.append(None if kind == "atom" and value.upper() == "NIL" else value)
        i += 1
    return items, i


def _fetch_records(lines: Sequence[bytes | bytearray]) -> list[dict[str, Any]]:
    """Each ``n FETCH (name value ...)`` response as {NAME: value}."""
    tokens = _tokens(lines[:-1])  # the last line is the tagged "Fetch completed" text
    records: list[dict[str, Any]] = []
    i = 0
    while i + 2 < len(tokens):
        if (
            tokens[i][0] == "atom"
            and tokens[i][1].isdigit()
            and tokens[i + 1] == ("atom", "FETCH")
            and tokens[i + 2][0] == "("
        ):
            values, i = _parse_list(tokens, i + 2)
            records.append(
                {
                    str(name).upper(): value
                    for name, value in zip(values[::2], values[1::2], strict=False)
                    if isinstance(name, str)
                }
            )
        else:
            i += 1
    return records


def _section(record: Mapping[str, Any], prefix: str) -> bytes | None:
    for name, value in record.items():
        if name.startswith(prefix) and isinstance(value, bytes):
            return value
    return None


def _uid_set(uids: Sequence[int]) -> str:
    """``1,2,3,7`` as ``1:3,7``."""
    ranges: list[list[int]] = []
    for uid in sorted(set(uids)):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


def _imap_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _utf7_encode(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + raw.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _utf7_decode(name: str) -> str:
    def decode(match: re.Match[str]) -> str:
        if not match[1]:
            return "&"
        raw = match[1].replace(",", "/")
        try:
            return b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-16-be")
        except ValueError:
            return match[0]

    return re.sub(r"&([A-Za-z0-9+,]*)-", decode, name)


# --- reading message headers and text ------------------------------------------------------


def _header(message: EmailMessage, name: str) -> str:
    """A header's decoded text; the raw text if it is too broken to decode."""
    try:
        value = message.get(name)
    except (email.errors.MessageError, ValueError, LookupError, TypeError, AttributeError):
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    return _clean(" ".join(str(value).split())) if value is not None else ""


def _first_address(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
        if isinstance(value, AddressHeader) and value.addresses:
            return _clean(value.addresses[0].addr_spec)
    except (email.errors.MessageError, ValueError, LookupError, TypeError, AttributeError):
        pass
    return _clean(email.utils.parseaddr(_header(message, name))[1])


def _clean(text: str) -> str:
    """Text safe to store as UTF-8: undecodable bytes read as Latin-1, not as surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return text


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_INTERNALDATE_RE = re.compile(
    r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)


def _date(header: str, internaldate: str) -> str:
    """ISO 8601 from the Date header, else from when the server received the message."""
    if header:
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
        else:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
    received = _internal_datetime(internaldate)
    return received.isoformat() if received is not None else ""


def _received(internaldate: str) -> int | None:
    """When the server received a message, in seconds since 1970 (None: unreadable)."""
    received = _internal_datetime(internaldate)
    return int(received.timestamp()) if received is not None else None


def _internal_datetime(internaldate: str) -> datetime | None:
    match = _INTERNALDATE_RE.fullmatch(internaldate)
    if match and match[2].title() in _MONTHS:
        day, month, year, hh, mm, ss, sign, oh, om = match.groups()
        offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
        with contextlib.suppress(ValueError):
            return datetime(
                int(year),
                _MONTHS[month.title()],
                int(day),
                int(hh),
                int(mm),
                int(ss),
                tzinfo=timezone(offset),
            )
    return None


def _preview(header_bytes: bytes, text: bytes) -> str:
    """The start of a message's readable text, from its first bytes (best effort: a
    message too broken to read has no preview, and still fires)."""
    if not text:
        return ""
    try:
        return _read_preview(header_bytes, text)
    except (email.errors.MessageError, ValueError, LookupError, TypeError, AttributeError,
            IndexError):
        return ""


def _read_preview(header_bytes: bytes, text: bytes) -> str:
    message = _HEADER_PARSER.parsebytes(header_bytes.rstrip(b"\r\n") + b"\r\n\r\n" + text)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    payload = _payload(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        decoded = payload.decode(charset, "replace")
    except (LookupError, ValueError):  # an unknown charset, or one with a NUL in its name
        decoded = payload.decode("utf-8", "replace")
    if part.get_content_subtype() == "html":
        decoded = html_to_text(decoded)
    words = " ".join(decoded.split()).rstrip("\ufffd")
    return words if len(words) <= PREVIEW_CHARS else words[: PREVIEW_CHARS - 1] + "…"


def _payload(part: MIMEPart) -> bytes:
    """A part's decoded bytes, even when its base64 was cut off mid-way."""
    if part.get("Content-Transfer-Encoding", "").strip().lower() == "base64":
        # The email package hands back the undecoded text for some cut-off lengths.
        encoded = re.sub(r"[^A-Za-z0-9+/=]", "", str(part.get_payload()))
        try:
            return b64decode(encoded[: len(encoded) - len(encoded) % 4])
        except binascii.Error:
            return b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def html_to_text(markup: str) -> str:
    """Readable plain text from HTML: paragraphs and line breaks kept, links spelled out."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    return parser.text()


class _HtmlText(HTMLParser):
    _BLOCKS = frozenset(
        {
            "address",
            "article",
            "aside",
            "blockquote",
            "div",
            "dl",
            "dt",
            "dd",
            "figure",
            "footer",
            "form",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "header",
            "hr",
            "main",
            "nav",
            "ol",
            "p",
            "pre",
            "section",
            "table",
            "tr",
            "ul",
        }
    )
    _HIDDEN = frozenset({"head", "script", "style", "template", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._hidden = 0
        self._pre = 0
        self._links: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self._out.append("\n")
        elif tag == "li":
            self._out.append("\n- ")
        elif tag in ("td", "th"):
            self._out.append(" ")
        elif tag in self._BLOCKS:
            self._out.append("\n\n")
        if tag == "pre":
            self._pre += 1
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self._out)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self._out.append("\n\n")
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            shown = "".join(self._out[start:])
            if (
                href
                and href.startswith(("http://", "https://", "mailto:"))
                and href.removeprefix("mailto:") not in shown
            ):
                self._out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._out.append(data if self._pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = (line.strip() for line in "".join(self._out).split("\n"))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- shared --------------------------------------------------------------------------------


async def _tls_context() -> ssl.SSLContext:
    """The system's trust store (honours SSL_CERT_FILE), loaded off the event loop."""
    return await asyncio.to_thread(ssl.create_default_context)


def _network_error(exc: BaseException, where: str, protocol: str) -> ServiceError:
    certificate = _cause(exc, ssl.SSLCertVerificationError)
    if certificate is not None:
        return PermanentError(
            f"The {protocol} server {where} showed a certificate this computer does not "
            f"trust ({certificate.verify_message}). Check the server name; a self-signed "
            "certificate must be added to the system's trusted certificates."
        )
    tls = _cause(exc, ssl.SSLError)
    if tls is not None:
        return PermanentError(
            f"Encryption with {where} failed ({tls.reason or tls}). Check that the port "
            "matches the encryption setting."
        )
    if isinstance(exc, TimeoutError | aioimaplib.CommandTimeout):
        return TransientError(
            f"The {protocol} server {where} did not answer in time. If it stays silent, "
            "check that the port matches the encryption setting."
        )
    return TransientError(f"Could not talk to the {protocol} server {where}: {_describe(exc)}")


_E = TypeVar("_E", bound=BaseException)


def _cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """``exc`` or the first exception in its chain that is a ``kind``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _split(addresses: str | None) -> list[str]:
    return [a.strip() for a in (addresses or "").split(",") if a.strip()]


def _unique(addresses: list[str]) -> list[str]:
    """The addresses without repeats (compared ignoring case), in their order."""
    unique: dict[str, str] = {}
    for address in addresses:
        unique.setdefault(address.lower(), address)
    return list(unique.values())


def _ascii_domain(address: str) -> str:
    domain = address.rpartition("@")[2]
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "hookline.invalid"
