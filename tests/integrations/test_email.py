"""Tests for integrations.email against real local servers: aiosmtpd (SMTP), Dovecot (IMAP)."""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from engine import AuthError, HttpClient, PermanentError, PollResult, TransientError
from engine.testing import poll_context, reaction_context
from integrations import email as email_module
from integrations.email import service
from tests.fixtures.mail import Dovecot, ImapAccount, SmtpServer, StartSmtp

SEND = service.reactions["send"]
NEW_MESSAGE = service.triggers["new_message"]


async def send(http: HttpClient, params: Mapping[str, Any]) -> Mapping[str, Any]:
    result = await SEND.run(reaction_context(SEND, params, http))
    assert result is not None
    return result


async def poll(
    http: HttpClient, params: Mapping[str, Any], state: dict[str, Any] | None = None
) -> PollResult:
    assert NEW_MESSAGE.poll is not None
    return await NEW_MESSAGE.poll(
        poll_context(NEW_MESSAGE, params, http, state=state if state is not None else {})
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_declaration() -> None:
    assert service.id == "email"
    assert service.icon == "email.svg"
    assert (Path(__file__).parents[2] / "resources" / "icons" / "email.svg").is_file()
    assert NEW_MESSAGE.default_interval == 120
    assert NEW_MESSAGE.min_interval == 30
    # The engine retries a send that times out: its timeout must never fall inside DATA.
    assert SEND.retry
    assert SEND.timeout > email_module.SMTP_SETUP_TIMEOUT + 2 * email_module.COMMAND_TIMEOUT + 5
    for spec in (SEND, NEW_MESSAGE):
        for param in spec.params:
            assert param.label
            assert param.help
            assert param.example is not None, param.name


# --- send ----------------------------------------------------------------------------------


async def test_send_delivers_over_starttls_with_login(
    smtp_server: SmtpServer, trust_test_ca: Path, http: HttpClient
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    out = await send(
        http,
        smtp_server.params(
            to="bob@example.org, carol@example.org",
            cc="dave@example.org, BOB@example.org",
            subject="Grüße from Hookline",
        ),
    )

    [mail] = smtp_server.received
    assert mail.tls
    assert mail.login == "alice"
    assert mail.mail_from == "alice@example.org"
    assert mail.rcpt_tos == ["bob@example.org", "carol@example.org", "dave@example.org"]
    message = mail.message
    assert message["From"] == "alice@example.org"
    assert message["To"] == "bob@example.org, carol@example.org"
    assert message["Cc"] == "dave@example.org, BOB@example.org"
    assert message["Subject"] == "Grüße from Hookline"
    assert before <= message["Date"].datetime <= datetime.now(UTC) + timedelta(seconds=1)
    assert message["Message-ID"] == out["message_id"]
    assert re.fullmatch(r"<[^<>@\s]+@example\.org>", out["message_id"])
    assert "Bcc" not in message
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "Hi Bob,\nthis is a test.\n"
    assert out["recipients"] == "bob@example.org, carol@example.org, dave@example.org"


async def test_send_html_as_multipart_alternative_with_a_plain_copy(
    smtp_server: SmtpServer, trust_test_ca: Path, http: HttpClient
) -> None:
    body = (
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        "<h1>Weekly  report</h1>\n<p>Hello&nbsp;<b>Bob</b>,<br>see <a "
        'href="https://example.org/r/1">the report</a> or <a href="mailto:me@example.org">'
        "me@example.org</a>.</p><ul><li>one</li><li>two &amp; three</li></ul>"
        "<script>alert('x')</script></body></html>"
    )
    await send(http, smtp_server.params(body=body, format="html"))

    message = smtp_server.received[0].message
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content() == (
        "Weekly report\n\nHello Bob,\nsee the report (https://example.org/r/1) or "
        "me@example.org.\n\n- one\n- two & three\n"
    )
    assert html.get_content_type() == "text/html"
    assert html.get_content().rstrip("\n") == body


async def test_html_bodies_escape_what_templates_insert(
    smtp_server: SmtpServer, trust_test_ca: Path, tmp_path: Path
) -> None:
    """A file named ``a&b <c>.txt`` (or a feed's title) went into an HTML body raw: the
    ``<c>`` became a tag. Values a template inserts into HTML are escaped now, the plain
    copy reads as written, and the subject (not HTML) is left alone."""
    from engine.app import Engine
    from engine.areas import AreaSpec
    from engine.secrets import MemorySecretStore
    from engine.settings import Settings

    engine = Engine(tmp_path / "data", settings=Settings.from_mapping(
        {"listener_enabled": False}), secrets=MemorySecretStore())
    await engine.start()
    try:
        spec = AreaSpec.from_dict({
            "name": "Mail a new file",
            "trigger": {"service": "webhook", "trigger": "incoming"},
            "reactions": [{"service": "email", "reaction": "send", "params": smtp_server.params(
                subject="New: {{ trigger.body.name }}",
                body="<p>New file: <b>{{ trigger.body.name }}</b></p>", format="html")}]})
        result = await engine.test_area(spec, {"body": {"name": "a&b <c>.txt"}}, live=True)
    finally:
        await engine.aclose()
    assert result["reactions"][0]["status"] == "succeeded", result
    message = smtp_server.received[0].message
    plain, html = message.iter_parts()
    assert html.get_content().rstrip("\n") == "<p>New file: <b>a&amp;b &lt;c&gt;.txt</b></p>"
    assert plain.get_content() == "New file: a&b <c>.txt\n"
    assert message["Subject"] == "New: a&b <c>.txt"


async def test_send_over_implicit_tls(
    start_smtp_server: StartSmtp, trust_test_ca: Path, http: HttpClient
) -> None:
    server = await start_smtp_server("ssl")
    await send(http, server.params())
    [mail] = server.received
    assert mail.tls
    assert mail.login == "alice"


async def test_send_unencrypted_without_login(
    start_smtp_server: StartSmtp, http: HttpClient
) -> None:
    server = await start_smtp_server("none")
    await send(http, server.params())
    [mail] = server.received
    assert not mail.tls
    assert mail.login is None
    assert mail.message["Subject"] == "Hello"


async def test_send_with_wrong_password_is_an_auth_error(
    smtp_server: SmtpServer, trust_test_ca: Path, http: HttpClient
) -> None:
    with pytest.raises(AuthError, match=r"^SMTP server refused the user name or password"):
        await send(http, smtp_server.params(password="wrong"))
    assert smtp_server.received == []


async def test_subject_with_a_line_break_is_refused_and_nothing_is_sent(
    smtp_server: SmtpServer, http: HttpClient
) -> None:
    with pytest.raises(PermanentError, match="line break") as info:
        await send(http, smtp_server.params(subject="Hi\r\nBcc: eve@example.org"))
    assert "nothing was sent" in str(info.value)
    assert smtp_server.connections == 0


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"from_address": "a@example.org, b@example.org"}, "From must be exactly one address"),
        ({"username": None}, "no user name"),
    ],
)
async def test_unusable_settings_are_refused_before_connecting(
    smtp_server: SmtpServer, http: HttpClient, changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(PermanentError, match=problem):
        await send(http, smtp_server.params(**changes))
    assert smtp_server.connections == 0


async def test_refused_recipients_are_listed_and_nothing_is_sent(
    smtp_server: SmtpServer, trust_test_ca: Path, http: HttpClient
) -> None:
    smtp_server.refuse_recipients = {"nobody@example.org", "ghost@example.org"}
    with pytest.raises(PermanentError) as info:
        await send(
            http,
            smtp_server.params(to="bob@example.org, nobody@example.org", cc="ghost@example.org"),
        )
    text = str(info.value)
    assert "nobody@example.org (550" in text
    assert "ghost@example.org (550" in text
    assert "bob@example.org" not in text
    assert "Nothing was sent" in text
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("reply", "error"),
    [("451 4.3.0 Try again later", TransientError), ("554 5.7.1 Looks like spam", PermanentError)],
)
async def test_a_refused_message_is_retried_only_on_a_temporary_reply(
    smtp_server: SmtpServer,
    trust_test_ca: Path,
    http: HttpClient,
    reply: str,
    error: type[Exception],
) -> None:
    smtp_server.data_reply = reply
    with pytest.raises(error, match=re.escape(reply)):
        await send(http, smtp_server.params())


async def test_hang_up_during_data_is_not_retried(
    smtp_server: SmtpServer, trust_test_ca: Path, http: HttpClient
) -> None:
    smtp_server.drop_during_data = True
    with pytest.raises(PermanentError, match="may or may not have been delivered"):
        await send(http, smtp_server.params())


async def test_unreachable_smtp_server_is_transient(http: HttpClient) -> None:
    port = closed_port()
    with pytest.raises(TransientError, match=f"SMTP server 127.0.0.1:{port}"):
        await send(
            http,
            {
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "from_address": "a@example.org",
                "to": "b@example.org",
                "subject": "s",
                "body": "b",
            },
        )


async def test_untrusted_smtp_certificate_is_permanent(
    smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, http: HttpClient
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(PermanentError, match="does not trust"):
        await send(http, smtp_server.params())
    assert smtp_server.received == []


async def test_starttls_missing_on_the_server_is_permanent(
    start_smtp_server: StartSmtp, trust_test_ca: Path, http: HttpClient
) -> None:
    server = await start_smtp_server("none")
    with pytest.raises(PermanentError, match="does not offer STARTTLS"):
        await send(http, server.params(security="starttls"))
    assert server.received == []


# --- new_message -----------------------------------------------------------------------------


def make_mail(
    subject: str,
    sender: str = "Alice Example <alice@example.org>",
    body: str = "Hello there",
    **headers: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "me@example.org"
    message["Subject"] = subject
    message["Date"] = headers.pop("date", "Tue, 05 Mar 2024 09:12:44 +0100")
    message["Message-ID"] = headers.pop("message_id", f"<{abs(hash(subject))}@example.org>")
    message.set_content(body)
    return message


def subjects(result: PollResult) -> list[str]:
    return [item.data["subject"] for item in result.items]


async def test_poll_returns_messages_with_stable_keys(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    imap_account.deliver(
        make_mail(
            "Invoice for March",
            sender="Zoë Müller <zoe@example.org>",
            body="Please find attached the invoice.\n\nRegards",
            message_id="<inv-1@shop.example>",
        )
    )
    imap_account.deliver(make_mail("Second", date="Wed, 06 Mar 2024 10:00:00 -0000"))
    state: dict[str, Any] = {}

    first = await poll(http, imap_account.params(), state)
    again = await poll(http, imap_account.params(), state)
    fresh = await poll(http, imap_account.params(), {})  # another area's first look

    assert subjects(first) == ["Second", "Invoice for March"]  # newest first
    keys = [item.key for item in first.items]
    assert all(re.fullmatch(r"[0-9]+:[12]", str(key)) for key in keys)
    assert len({str(key).split(":")[0] for key in keys}) == 1
    assert again.items == []  # nothing arrived since
    assert [item.key for item in fresh.items] == keys
    assert first.items[1].data == {
        "uid": 1,
        "message_id": "<inv-1@shop.example>",
        "from": "Zoë Müller <zoe@example.org>",
        "from_address": "zoe@example.org",
        "to": "me@example.org",
        "subject": "Invoice for March",
        "date": "2024-03-05T09:12:44+01:00",
        "preview": "Please find attached the invoice. Regards",
        "mailbox": "INBOX",
    }
    assert first.items[0].data["date"] == "2024-03-06T10:00:00+00:00"
    assert {f.name for f in NEW_MESSAGE.fields} == set(first.items[0].data)


async def test_second_poll_includes_a_new_delivery(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    imap_account.deliver(make_mail("Old"))
    state: dict[str, Any] = {}
    first = await poll(http, imap_account.params(), state)
    imap_account.deliver(make_mail("New"))

    second = await poll(http, imap_account.params(), state)

    assert subjects(second) == ["New"]  # what arrived since the first look
    assert second.items[0].key not in {item.key for item in first.items}


async def test_empty_mailbox_has_no_items(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    assert (await poll(http, imap_account.params())).items == []


async def test_filters_ignore_case(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    shop = "Shop News <newsletter@shop.example>"
    imap_account.deliver(make_mail("Weekly DEALS", sender=shop))
    imap_account.deliver(make_mail("Invoice 42", sender="Boss <boss@work.example>"))
    imap_account.deliver(make_mail("Your INVOICE is ready", sender=shop))

    result = await poll(
        http, imap_account.params(from_contains="NEWSLETTER@Shop", subject_contains="invoice")
    )
    assert subjects(result) == ["Your INVOICE is ready"]
    by_name = await poll(http, imap_account.params(from_contains="shop news"))
    assert subjects(by_name) == ["Your INVOICE is ready", "Weekly DEALS"]


async def test_polling_leaves_messages_unread(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    imap_account.deliver(make_mail("One"))
    imap_account.deliver(make_mail("Two"))
    imap_account.deliver(make_mail("Already read"), seen=True)

    await poll(http, imap_account.params())
    await poll(http, imap_account.params(subject_contains="o"))

    flags = await asyncio.to_thread(imap_account.flags)
    assert len(flags) == 3
    assert "\\Seen" not in flags[1]
    assert "\\Seen" not in flags[2]
    assert "\\Seen" in flags[3]  # the check itself can see the flag


async def test_previews_of_multipart_html_and_long_messages(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    alternative = make_mail("Alternative", body="")
    alternative.set_content("Grüße aus Köln!\nZweite Zeile.", cte="base64")
    alternative.add_alternative("<p>Grüße <b>HTML</b></p>", subtype="html")
    imap_account.deliver(alternative)
    html_only = make_mail("HTML only")
    html_only.set_content("<style>p {}</style><p>Hello <b>HTML</b>&nbsp;world</p>", subtype="html")
    imap_account.deliver(html_only)
    imap_account.deliver(make_mail("Long", body="word " * 1000))

    items = (await poll(http, imap_account.params())).items
    previews = {item.data["subject"]: item.data["preview"] for item in items}

    assert previews["Alternative"] == "Grüße aus Köln! Zweite Zeile."
    assert previews["HTML only"] == "Hello HTML world"
    assert len(previews["Long"]) == email_module.PREVIEW_CHARS
    assert previews["Long"].startswith("word word ")
    assert previews["Long"].endswith("…")


async def test_preview_of_base64_cut_off_mid_group(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    text = "".join(f"Zeile {n}: Grüße. " for n in range(200))
    encoded = base64.encodebytes(text.encode()).decode().splitlines()  # lines of 76
    part_head = (
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    # The preview reads the first 2000 bytes of the text: 83 bytes of part header, then
    # 24 lines of 78 bytes and 45 characters, a length the email package cannot decode.
    assert len(part_head) == 83
    raw = (
        "From: a@example.org\r\nSubject: Report\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + part_head
        + "\r\n".join(encoded)
        + "\r\n--b--\r\n"
    )
    imap_account.deliver(raw.encode())

    [item] = (await poll(http, imap_account.params())).items

    assert item.data["preview"] == text[: email_module.PREVIEW_CHARS - 1].strip() + "…"


def test_a_preview_never_fails_the_poll() -> None:
    # Dovecot turns NULs into other bytes, but a server that passed one in a charset name
    # made the preview raise: the poll would then fail on every try, and no later message
    # would fire. The text is read as UTF-8 instead; deeper breakage gives no preview.
    head = b'From: a@example.org\r\nContent-Type: text/plain; charset="utf-\x008"\r\n'
    assert email_module._preview(head, b"Hello\r\n") == "Hello"
    head = b'From: a@b\r\nContent-Type: text/plain; charset="utf-\x008"\r\n' \
           b"Content-Transfer-Encoding: base64\r\n"
    assert email_module._preview(head, b"--b1\r\nHello ther\xff\r\n--") == ""


async def test_watches_another_mailbox_by_its_display_name(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    imap_account.deliver(make_mail("In the inbox"))
    # Dovecot keeps folder names in IMAP's modified UTF-7 on disk: "Entwürfe".
    imap_account.deliver(make_mail("A draft"), folder="Entw&APw-rfe")

    result = await poll(http, imap_account.params(mailbox="Entwürfe"))

    assert subjects(result) == ["A draft"]
    assert result.items[0].data["mailbox"] == "Entwürfe"


async def test_unknown_mailbox_is_named_with_the_existing_ones(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    imap_account.deliver(make_mail("Kept"), folder="Archive")
    imap_account.deliver(make_mail("Draft"), folder="Entw&APw-rfe")
    with pytest.raises(PermanentError, match="'Archiv'") as info:
        await poll(http, imap_account.params(mailbox="Archiv"))
    assert "Mailboxes on this account: Archive, Entwürfe, INBOX." in str(info.value)


async def test_deleting_messages_does_not_bring_back_older_ones(
    imap_account: ImapAccount,
    trust_test_ca: Path,
    http: HttpClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(email_module, "NEWEST_MESSAGES", 3)
    files = [imap_account.deliver(make_mail(f"m{n}")) for n in range(1, 6)]
    state: dict[str, Any] = {}
    assert subjects(await poll(http, imap_account.params(), state)) == ["m5", "m4", "m3"]

    imap_account.remove(files[4])  # m5 deleted: m2 slides into the newest three
    assert subjects(await poll(http, imap_account.params(), state)) == []
    imap_account.deliver(make_mail("m6"))
    assert subjects(await poll(http, imap_account.params(), state)) == ["m6"]


async def test_more_new_messages_than_one_check_takes_all_fire_over_the_next_checks(
    imap_account: ImapAccount,
    trust_test_ca: Path,
    http: HttpClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """230 messages between two checks (a check takes 200) lost the oldest 30 without a
    word; past the page, they come at the next check, oldest first, each once."""
    monkeypatch.setattr(email_module, "NEWEST_MESSAGES", 20)
    imap_account.deliver(make_mail("already there"))
    state: dict[str, Any] = {}
    await poll(http, imap_account.params(), state)
    for n in range(23):
        imap_account.deliver(make_mail(f"m{n:02}"))
    got: list[str] = []
    for _ in range(3):
        got += reversed(subjects(await poll(http, imap_account.params(), state)))
    assert got == [f"m{n:02}" for n in range(23)]


async def test_renumbered_mailbox_fires_what_arrived_since_the_last_check_only(
    imap_account: ImapAccount, trust_test_ca: Path, http: HttpClient
) -> None:
    params = imap_account.params(mailbox="Archive")
    when = time.time() - 3600  # an hour ago
    imap_account.deliver(make_mail("Old"), folder="Archive", received=when)
    state: dict[str, Any] = {}
    first = await poll(http, params, state)
    # Deleted and made again: the server numbers it afresh (a new UIDVALIDITY), so every
    # key changes. What the user copies back keeps its date and is not new to them;
    # mail that arrived meanwhile is (a second later, as the server's clock says).
    shutil.rmtree(imap_account.maildir / ".Archive")
    imap_account.deliver(make_mail("Old, copied back"), folder="Archive", received=when)
    imap_account.deliver(make_mail("Came meanwhile"), folder="Archive", received=when + 1)

    renumbered = await poll(http, params, state)
    imap_account.deliver(make_mail("New"), folder="Archive")
    later = await poll(http, params, state)

    assert subjects(first) == ["Old"]
    assert subjects(renumbered) == ["Came meanwhile"]
    assert subjects(later) == ["New"]
    assert later.items[0].key != first.items[0].key
    assert (await poll(http, params, state)).items == []


@pytest.mark.parametrize("security", ["starttls", "none"])
async def test_poll_over_the_plain_port(
    dovecot: Dovecot,
    imap_account: ImapAccount,
    trust_test_ca: Path,
    http: HttpClient,
    security: str,
) -> None:
    imap_account.deliver(make_mail("Hello"))
    result = await poll(http, imap_account.params(port=dovecot.imap_port, security=security))
    assert subjects(result) == ["Hello"]


async def test_imap_wrong_password_is_an_auth_error(
    dovecot_for_bad_logins: Dovecot, trust_test_ca: Path, http: HttpClient
) -> None:
    account = dovecot_for_bad_logins.add_account()
    with pytest.raises(AuthError, match="refused the user name or password") as info:
        await poll(http, account.params(password="not-the-password"))
    assert "not-the-password" not in str(info.value)


async def test_unreachable_imap_server_is_transient(http: HttpClient) -> None:
    port = closed_port()
    with pytest.raises(TransientError, match=f"IMAP server 127.0.0.1:{port}"):
        await poll(
            http,
            {
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "username": "u",
                "password": "p",
            },
        )


async def test_untrusted_imap_certificate_is_permanent(
    imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch, http: HttpClient
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(PermanentError, match="does not trust"):
        await poll(http, imap_account.params())


def test_html_to_text_keeps_structure() -> None:
    assert (
        email_module.html_to_text(
            "<div>a<br/>b</div><pre>x\ny</pre><p>c <a href='https://e.org'>https://e.org</a></p>"
        )
        == "a\nb\n\nx\ny\n\nc https://e.org"
    )
