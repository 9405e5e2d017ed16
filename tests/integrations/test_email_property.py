"""The mailbox window's promise as a property, against a real Dovecot and the real
engine: whatever arrives between checks (more than a check takes, messages deleted or
moved away, restarts, the mailbox renumbered), every message that arrives fires exactly
once, in arrival order, none is lost past a page, and nothing fires after a restart.

What does not fire, by design: what was there at the first check, a message deleted or
moved away before a check reached it, and, at the first check after the server
renumbered the mailbox (UIDVALIDITY changed: every key changed), the copies of what
the checks had looked at (a copy keeps its received time), and what arrived since but
does not fit in one check's window (the log says so)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from engine.app import Engine
from engine.areas import AreaSpec
from engine.secrets import MemorySecretStore
from engine.settings import Settings
from integrations import email as email_module
from tests.engine import probe
from tests.engine.conftest import FAST, registry
from tests.fixtures.mail import Dovecot, ImapAccount

#: What one check takes in this test (lowered from 200 so pages are quick to pass).
PAGE = 3
#: How many messages arrive at once: up to more than two pages.
ARRIVALS = st.integers(0, 2 * PAGE + 1)
WATCHED = "Watched"
ELSEWHERE = "Elsewhere"
#: Message n is received at BASE + n seconds (the server's clock: its INTERNALDATE).
BASE = int(time.time()) - 86_400


def mail(number: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice Example <alice@example.org>"
    message["To"] = "me@example.org"
    message["Subject"] = f"Message {number}"
    message["Date"] = "Tue, 05 Mar 2024 09:12:44 +0100"
    message["Message-ID"] = f"<m{number}@property.test>"
    message.set_content(f"Body of message {number}")
    return message


class MailboxMachine(RuleBasedStateMachine):
    """The real engine watching a real mailbox, against a model: the messages in the
    mailbox in arrival order, and the arrival index from which a check reports them."""

    def __init__(self, account: ImapAccount) -> None:
        super().__init__()
        self.account = account
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="hookline-mail-property-"))
        self.engine: Engine | None = None
        self.area_id = ""
        self.numbers = 0  # messages made so far; a message's number is its arrival order
        self.present: dict[int, Path] = {}  # number -> its file, in arrival order
        self.floor = 0  # the lowest number a check may still report
        self.looked = False  # a first look since the start or the last renumbering
        self.since = 0  # the first number that arrived after that first look
        self.renumbered = False
        self.renumber_pending = False  # the next check is the first since renumbering
        self.newest: int | None = None  # the newest message a check has looked at
        self.skipped: set[int] = set()  # new when renumbered, past that check's window
        self.expected: list[str] = []  # Message-IDs in the order they must have fired

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _start(self) -> None:
        self.engine = Engine(self.folder, settings=Settings.from_mapping(
            {**FAST, "listener_enabled": False}), registry=registry(),
            secrets=MemorySecretStore())
        await self.engine.start()

    @initialize(there=ARRIVALS)
    def start(self, there: int) -> None:
        """The area starts on a mailbox with ``there`` messages (more than a page, at
        times) and looks at it once."""
        probe.controls.__init__()  # type: ignore[misc]
        self._make_mailbox()
        self.run(self._start())
        assert self.engine is not None
        area = self.run(self.engine.create_area(AreaSpec.from_dict({
            "name": "Mail to record",
            "trigger": {"service": "email", "trigger": "new_message",
                        "params": self.account.params(mailbox=WATCHED)},
            "reactions": [{"service": "probe", "reaction": "record",
                           "params": {"text": "{{ trigger.message_id }}"}}],
        })))
        self.area_id = area.id
        self.engine.scheduler.remove(area.id)  # checks happen when the rules say
        self.deliver(there)
        self.check()  # the first look: fires none of them

    def teardown(self) -> None:
        if self.engine is not None:
            self.run(self.engine.aclose())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ the mailbox

    def _make_mailbox(self) -> None:
        box = self.account.maildir / f".{WATCHED}"
        for sub in ("cur", "new", "tmp"):
            (box / sub).mkdir(parents=True)
        self.account.server.give_to_mail_user(box)

    def _deliver(self) -> int:
        number = self.numbers
        self.numbers += 1
        self.present[number] = self.account.deliver(mail(number), WATCHED,
                                                    received=BASE + number)
        return number

    def _looked(self, numbers: list[int]) -> None:
        if numbers:
            self.newest = max(numbers[-1], -1 if self.newest is None else self.newest)

    @rule(count=ARRIVALS)
    def deliver(self, count: int) -> None:
        for _ in range(count):
            self._deliver()

    @precondition(lambda self: bool(self.present))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from(sorted(self.present)))
        self.account.remove(self.present.pop(number))

    @precondition(lambda self: bool(self.present))
    @rule(data=st.data())
    def move_away(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from(sorted(self.present)))
        del self.present[number]
        self.account.move(f"<m{number}@property.test>", WATCHED, ELSEWHERE)

    @precondition(lambda self: not self.renumbered)  # rare: once an example at most
    @rule(data=st.data())
    def renumber(self, data: st.DataObject) -> None:
        """The mailbox is made again (a new UIDVALIDITY) and some messages copied back
        (in their order, each keeping the time it was received)."""
        self.renumbered = True
        kept = data.draw(st.lists(st.sampled_from(sorted(self.present)), unique=True)
                         if self.present else st.just([]))
        shutil.rmtree(self.account.maildir / f".{WATCHED}")
        self._make_mailbox()
        self.present.clear()
        for number in sorted(kept):
            self.present[number] = self.account.deliver(mail(number), WATCHED,
                                                        received=BASE + number)
        self.renumber_pending = self.looked

    # ------------------------------------------------------------------ the engine

    async def _check(self) -> None:
        assert self.engine is not None
        area = self.engine.area(self.area_id)
        spec = self.engine.registry.trigger("email", "new_message")
        params = {**area.spec.trigger.params, "password": self.account.password}
        await self.engine.poller.poll(area, spec, params, 120)
        await self.engine.wait_idle()
        assert self.engine.poller.failing(self.area_id) is None

    @rule(arrived=ARRIVALS)
    def check(self, arrived: int = 0) -> None:
        """``arrived`` messages arrive, then a check."""
        self.deliver(arrived)
        self.run(self._check())
        if not self.looked:  # a first look: what is there now is not new
            self.floor = self.since = self.numbers
            self.looked = True
            self._looked(sorted(self.present)[-PAGE:])
            return
        if self.renumber_pending:  # the newest window: what came after all it had seen
            self.renumber_pending = False
            window = sorted(self.present)[-PAGE:]
            later = [n for n in sorted(self.present)
                     if self.newest is not None and n > self.newest]
            self.expected += [f"<m{n}@property.test>" for n in later if n in window]
            self.skipped |= {n for n in later if n not in window}
            self.floor = self.numbers
            if self.newest is None:  # nothing looked at to tell new from old by
                self.since = self.numbers
            self._looked(window)
            return
        waiting = [n for n in sorted(self.present) if n >= self.floor]
        page = waiting[:PAGE]  # the oldest; more wait for the next check
        self.expected += [f"<m{n}@property.test>" for n in page]
        if page:
            self.floor = page[-1] + 1
        self._looked(page)

    @precondition(lambda self: self.looked)
    @rule()
    def check_until_quiet(self) -> None:
        """Checks until one finds nothing: then every message that arrived since the
        first look and is still there has fired — none lost past a page."""
        while True:
            before = len(probe.controls.received)
            self.check()
            if len(probe.controls.received) == before:
                break
        fired = {r["text"] for r in probe.controls.received}
        assert {f"<m{n}@property.test>" for n in self.present
                if n >= self.since and n not in self.skipped} <= fired

    @rule()
    def clean_up(self) -> None:
        assert self.engine is not None
        self.run(self.engine.store.prune(14, 90, 1000, seen_per_area=2))

    @rule(arrived=ARRIVALS)
    def restart(self, arrived: int) -> None:
        """Hookline stops, ``arrived`` messages arrive meanwhile, it starts again."""
        assert self.engine is not None
        self.run(self.engine.aclose())
        self.deliver(arrived)
        self.run(self._start())
        self.engine.scheduler.remove(self.area_id)

    # ------------------------------------------------------------------ the promise

    @invariant()
    def each_message_fired_once_in_arrival_order(self) -> None:
        assert [r["text"] for r in probe.controls.received] == self.expected


def test_the_mailbox_window_fires_each_message_once_in_order(
    dovecot: Dovecot, trust_test_ca: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(email_module, "NEWEST_MESSAGES", PAGE)

    class OnItsOwnAccount(MailboxMachine):
        def __init__(self) -> None:
            super().__init__(dovecot.add_account())

    run_state_machine_as_test(
        OnItsOwnAccount,
        settings=settings(max_examples=40, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture]))
