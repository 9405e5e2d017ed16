"""Areas that act as a connected account; the ``hookline accounts`` command; no token leaks."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import urllib.request
import webbrowser
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import ApiKeySpec, AuthKind, Field, ReactionContext, Service
from engine.app import Engine
from engine.areas import AreaSpec
from engine.auth import Accounts
from engine.bus import Bus, Message
from engine.cli import main
from engine.control import ControlClient
from engine.errors import AuthError, ValidationError
from engine.registry import BUILTIN_MODULES, Registry
from tests.engine import account_probe
from tests.engine.conftest import fast, stored_bytes
from tests.engine.oauth_provider import Provider, follow

_LOAD = Registry.load  # before any test swaps it


def catalog_for_tests() -> Registry:
    return with_beta(_LOAD(modules=(*BUILTIN_MODULES, "tests.engine.probe",
                                    "tests.engine.account_probe"), plugins=False))


def with_beta(reg: Registry) -> Registry:
    """Adds a second service that takes a pasted token (and cannot name its accounts)."""
    beta = Service("beta", "Beta", "Another service with accounts.", auth=AuthKind.API_KEY,
                   api_key=ApiKeySpec("Beta key", "Make one in Beta."))

    @beta.reaction("ping", "Ping", "Does nothing.", fields=[Field("ok", "OK", True)])
    async def ping(ctx: ReactionContext) -> dict[str, Any]:
        return {"ok": True}

    reg.add(beta)
    return reg


def use_test_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that load the catalog themselves see the test services too."""
    catalog = catalog_for_tests()
    monkeypatch.setattr(Registry, "load", classmethod(lambda cls, *a, **k: catalog))


@pytest.fixture
async def provider(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Provider]:
    server = Provider(client_secret="cs-9f8e7d6c5b4a39281706")
    await server.start()
    monkeypatch.setattr(account_probe.service, "oauth", server.spec())
    yield server
    await server.aclose()


async def start(data_dir: Path, database: str) -> Engine:
    app = Engine(data_dir, settings=fast(database), registry=catalog_for_tests())
    await app.start()
    return app


@pytest.fixture
async def app(data_dir: Path, database: str, provider: Provider) -> AsyncIterator[Engine]:
    engine = await start(data_dir, database)
    yield engine
    if engine.started:
        await engine.aclose()


async def connect(app: Engine, provider: Provider) -> str:
    await app.accounts.set_client("acme", provider.client_id, provider.client_secret)
    return (await app.accounts.connect("acme", browser=follow())).id


def area(provider: Provider, account: str | None = "marta", **changes: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"service": "acme", "reaction": "call",
                            "params": {"url": f"{provider.base}/api/thing"}}
    if account is not None:
        step["account"] = account
    return {"name": "Call Acme", "trigger": {"service": "probe", "trigger": "hook"},
            "reactions": [step], **changes}


# ---------------------------------------------------------------------- areas


async def test_an_area_acts_as_its_account(app: Engine, provider: Provider) -> None:
    account_id = await connect(app, provider)
    saved = await app.create_area(AreaSpec.from_dict(area(provider)))
    assert saved.spec.reactions[0].account == account_id  # linked by name, kept by id

    await app.run_now(saved.id)
    await app.wait_idle()

    [run] = await app.store.runs(saved.id)
    assert run["status"] == "succeeded", run["error"]
    assert run["steps"][0]["output"] == {"thing": "ok", "login": "marta"}
    assert provider.api_requests[-1] == f"Bearer {provider.issued[-2]}"


async def test_a_poll_trigger_polls_as_its_account(app: Engine, provider: Provider) -> None:
    account_id = await connect(app, provider)
    data = {"name": "Acme things",
            "trigger": {"service": "acme", "trigger": "things", "account": "marta",
                        "params": {"url": f"{provider.base}/api/thing"}},
            "reactions": [{"service": "probe", "reaction": "record",
                           "params": {"text": "{{ trigger.login }}"}}]}
    saved = await app.create_area(AreaSpec.from_dict(data))
    assert saved.spec.trigger.account == account_id
    spec = app._as_account(app.registry.trigger("acme", "things"), account_id)
    assert spec.poll is not None
    await app.poller.poll(saved, spec, saved.spec.trigger.params, 3600)
    assert app.poller.failing(saved.id) is None
    assert f"Bearer {provider.issued[0]}" in provider.api_requests


async def test_accounts_are_checked_when_an_area_is_saved(app: Engine,
                                                          provider: Provider) -> None:
    with pytest.raises(ValidationError) as caught:
        await app.create_area(AreaSpec.from_dict(area(provider, account=None)))
    assert str(caught.value) == ("reactions[0].account: Acme acts as one of your accounts: "
                                 "choose one with account: NAME; connect one first with "
                                 "`hookline accounts connect acme`")
    await connect(app, provider)
    with pytest.raises(ValidationError) as caught:
        await app.create_area(AreaSpec.from_dict(area(provider, account="nobody")))
    assert str(caught.value) == ("reactions[0].account: no Acme account named 'nobody' is "
                                 "connected: connect it with `hookline accounts connect "
                                 "acme`, then try again (connected: marta)")
    beta = await app.accounts.add_token("beta", "beta-key-1", "b1")
    with pytest.raises(ValidationError, match="“b1” is a beta account; this step needs a "
                                              "Acme account"):
        await app.create_area(AreaSpec.from_dict(area(provider, account=beta.id)))
    wrong = area(provider)
    wrong["reactions"].append({"service": "probe", "reaction": "record", "account": "marta",
                               "params": {"text": "x"}})
    with pytest.raises(ValidationError, match=r"reactions\[1\].account: Probe does not use "
                                              "accounts: remove 'account'"):
        await app.create_area(AreaSpec.from_dict(wrong))
    assert (await app.create_area(AreaSpec.from_dict(area(provider, account="MARTA")))).id


async def test_export_names_the_account_and_import_links_it_again(
        app: Engine, provider: Provider) -> None:
    first = await connect(app, provider)
    saved = await app.create_area(AreaSpec.from_dict(area(provider, account=first)))
    names = {a.id: a.name for a in await app.accounts.accounts()}
    exported = saved.spec.to_dict(app.registry, names)
    assert exported["reactions"][0]["account"] == "marta"
    await app.remove_area(saved.id)

    await app.accounts.remove(first)
    with pytest.raises(ValidationError, match="no Acme account named 'marta' is connected"):
        await app.create_area(AreaSpec.from_dict(exported))

    again = await connect(app, provider)  # a new id for the same person
    assert again != first
    relinked = await app.create_area(AreaSpec.from_dict(exported))
    assert relinked.spec.reactions[0].account == again


async def test_a_removed_account_fails_its_areas_with_a_clear_reason(
        app: Engine, provider: Provider) -> None:
    account_id = await connect(app, provider)
    saved = await app.create_area(AreaSpec.from_dict(area(provider)))
    await app.accounts.remove(account_id)
    await app.run_now(saved.id)
    await app.wait_idle()
    [run] = await app.store.runs(saved.id)
    assert run["status"] == "failed"
    assert "was removed: choose another account in the area" in run["error"]


async def test_a_running_engine_hears_of_accounts_changed_by_the_cli(
        app: Engine, provider: Provider) -> None:
    account_id = await connect(app, provider)
    session = await app.accounts.session(account_id)
    assert await session.token() == provider.issued[0]
    elsewhere = Accounts(app.db, app.secrets, app.http, Bus(), app.registry)  # the CLI's
    await elsewhere.remove(account_id)
    await ControlClient(app.data_dir).call("POST", "/command/accounts.changed", {})
    with pytest.raises(AuthError, match="was removed: choose another account"):
        await session.token()


# ---------------------------------------------------------------------- leaks


def run_ledger(app: Engine, data_dir: Path, database: str) -> dict[str, bytes]:
    """The run ledger as it is now: its files, or on PostgreSQL its table (with the rest
    of the database)."""
    if database:
        return {"the database with its run ledger": stored_bytes(data_dir, database)}
    return {p.name: p.read_bytes() for p in app.journal.ledger.segments()}


async def test_no_token_leaks_into_the_database_logs_exports_or_errors(
        data_dir: Path, database: str, provider: Provider, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    use_test_registry(monkeypatch)
    published: list[Message] = []
    provider.expires_in = 30  # the first use refreshes
    app = await start(data_dir, database)
    app.bus.subscribe("*", published.append)
    account_id = await connect(app, provider)
    pasted = "beta-pat-3c1d9e8f7a6b5c4d"
    beta = await app.accounts.add_token("beta", pasted, "b1")
    saved = await app.create_area(AreaSpec.from_dict(area(provider)))
    await app.run_now(saved.id)  # uses the account after refreshing it
    await app.wait_idle()
    stored = await app.accounts.load_tokens(account_id)
    assert stored is not None and stored.access_token in provider.issued
    assert provider.refreshes() == 1
    ledgers = run_ledger(app, data_dir, database)
    await app.aclose()

    capsys.readouterr()
    assert await asyncio.to_thread(main, ["areas", "export"]) == 0
    exported = capsys.readouterr().out
    assert yaml.safe_load(exported)["areas"][0]["reactions"][0]["account"] == "marta"

    app = await start(data_dir, database)
    app.bus.subscribe("*", published.append)
    provider.expire_access_tokens()
    provider.revoke_refresh_tokens()
    await app.run_now(saved.id)  # refused, refresh refused: needs reconnecting
    await app.wait_idle()
    await app.accounts.remove(account_id)
    await app.accounts.remove(beta.id)
    await app.run_now(saved.id)
    await app.wait_idle()
    runs = await app.store.runs(saved.id)
    ledgers |= {f"{name} (2)": data for name, data in run_ledger(app, data_dir, database).items()}
    await app.aclose()

    assert [r["status"] for r in runs] == ["failed", "failed", "succeeded"]
    assert "reconnect the account in Hookline" in runs[1]["error"]
    secrets = [*provider.issued, provider.client_secret, pasted]
    assert len(provider.issued) == 4
    files = {"the database": stored_bytes(data_dir, database)}
    assert files["the database"]
    assert any(ledgers.values()), "the run ledger was written"
    files |= ledgers
    texts = {"log": caplog.text, "export": exported,
             "runs": json.dumps(runs, default=str),
             "bus": json.dumps([m.data for m in published], default=str)}
    for secret in secrets:
        assert secret is not None
        for name, blob in files.items():
            assert secret.encode() not in blob, f"a token is in {name}"
        for name, text in texts.items():
            assert secret not in text, f"a token is in the {name}"
    assert "needs reconnecting" in caplog.text  # the logs did say what happened


# ---------------------------------------------------------------------- CLI


@pytest.fixture
def threaded_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    """The provider on its own loop in a thread, for commands that run their own loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = Provider()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    monkeypatch.setattr(account_probe.service, "oauth", server.spec())
    use_test_registry(monkeypatch)
    yield server
    asyncio.run_coroutine_threadsafe(server.aclose(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_accounts_command(threaded_provider: Provider, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    opened: list[str] = []

    def browser(url: str) -> bool:  # approves, as a person would, and follows the redirect
        opened.append(url)
        with opener.open(url, timeout=10) as page:
            return "You can close this tab" in page.read().decode()

    monkeypatch.setattr(webbrowser, "open", browser)
    code, out, err = run(capsys, "accounts", "connect", "acme")
    assert code == 2 and "has no OAuth app set up yet" in err

    code, out, _ = run(capsys, "accounts", "client", "acme", threaded_provider.client_id)
    assert code == 0 and "redirect URI must be http://127.0.0.1/callback" in out

    code, out, _ = run(capsys, "accounts", "connect", "acme")
    assert code == 0, out
    assert opened and opened[0] in out  # the address is printed too
    assert "connected Acme account “marta”" in out

    monkeypatch.setattr("sys.stdin", _Lines("beta-key-77\n"))
    code, out, _ = run(capsys, "accounts", "token", "beta", "--name", "b1", "--stdin")
    assert code == 0 and "added Beta account “b1”" in out

    source = tmp_path / "area.yaml"
    source.write_text(yaml.safe_dump(area(threaded_provider)))
    assert run(capsys, "areas", "import", str(source))[0] == 0

    code, out, _ = run(capsys, "accounts", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["marta"]["service"] == "acme" and rows["marta"]["status"] == "ok"
    assert rows["marta"]["areas"] == ["Call Acme"] and rows["b1"]["kind"] == "api_key"
    assert "beta-key-77" not in out and threaded_provider.issued[0] not in out

    code, out, _ = run(capsys, "accounts", "remove", "acme:marta")
    assert code == 0 and "removed acme account “marta”" in out
    assert "1 area(s) used it and will fail until you choose another account: Call Acme" in out
    code, out, err = run(capsys, "accounts", "remove", "marta")
    assert code == 2 and "Unknown account 'marta'" in err

    code, out, _ = run(capsys, "services", "acme", "--json")
    described = json.loads(out)[0]
    assert described["oauth"]["scopes"] == ["read", "write"]
    assert described["oauth"]["redirect_uri"] == "http://127.0.0.1/callback"
    assert described["api_key"]["label"] == "Acme token"


class _Lines:
    """A stand-in for standard input holding some lines."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines(keepends=True)

    def readline(self) -> str:
        return self._lines.pop(0) if self._lines else ""
