"""``hookline pair`` on the engine's computer and ``hookline remote`` on a client."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from engine.areas import AreaSpec
from engine.auth.custom import CustomProvider, add_provider
from engine.cli import main
from engine.remote.client import RemoteTarget, pair
from engine.secrets import SecretStore
from engine.settings import Settings, save_settings
from tests.engine.conftest import EngineFactory
from tests.engine.oauth_provider import Provider
from tests.engine.remote.conftest import AREA, REMOTE, Remote

CODE = re.compile(r"Pairing code: (\S+)")


async def hookline(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """The command line's exit code and what it wrote (errors after the output), run as
    a user would (in its own loop)."""
    code = await asyncio.to_thread(main, list(argv))
    written = capsys.readouterr()
    return code, written.out + written.err


async def test_the_code_hookline_pair_prints_pairs_with_the_running_engine(
        remote: Remote, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = await hookline(capsys, "--data-dir", str(remote.engine.data_dir), "pair")

    assert status == 0
    found = CODE.search(out)
    assert found, out
    assert f"port {remote.site.port}" in out
    assert remote.site.identity.fingerprint[:2].upper() in out
    target, _token = await pair("127.0.0.1", remote.site.port, found.group(1),
                                client_name="laptop")

    status, out = await hookline(capsys, "--data-dir", str(remote.engine.data_dir),
                                 "pair", "--list")
    assert target.client_id[:8] in out and "laptop" in out
    status, out = await hookline(capsys, "--data-dir", str(remote.engine.data_dir),
                                 "pair", "--revoke", "laptop")
    assert status == 0 and "unpaired" in out
    assert await remote.site.pairing.clients() == []


async def test_a_code_printed_while_no_engine_runs_works_once_it_starts(
        data_dir: Path, make_engine: EngineFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    save_settings(data_dir, Settings())
    status, out = await hookline(capsys, "--data-dir", str(data_dir), "pair")
    assert status == 0
    assert "The remote channel is off" in out
    found = CODE.search(out)
    assert found, out

    engine = await make_engine(**REMOTE)
    assert engine.remote is not None
    assert engine.remote.identity.fingerprint[:2].upper() in out  # the same certificate
    target, _token = await pair("127.0.0.1", engine.remote.port, found.group(1),
                                client_name="laptop")
    assert target.fingerprint == engine.remote.identity.fingerprint


async def test_remote_connect_status_and_forget(remote: Remote, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    client_dir = tmp_path / "client"
    issued = await remote.site.pairing.issue()
    where = f"127.0.0.1:{remote.site.port}"

    status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote", "connect",
                                 where, issued.code, "--name", "the laptop")
    assert status == 0, out
    assert "Connected to hookline@" in out
    target = RemoteTarget.load(client_dir)
    assert target is not None
    assert [c.name for c in await remote.site.pairing.clients()] == ["the laptop"]

    status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote", "status")
    assert status == 0 and "it answers" in out

    status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote", "forget")
    assert status == 0 and "Forgot" in out
    assert RemoteTarget.load(client_dir) is None
    assert await remote.site.pairing.clients() == []  # unpaired there too

    status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote", "status")
    assert status == 1 and "Not connected" in out


async def test_remote_areas_lists_and_switches_the_other_computers_automations(
        remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client_dir = tmp_path / "client"
    target, token = await remote.pair()
    target.save(SecretStore(), token, data_dir=client_dir)
    area = await remote.engine.create_area(AreaSpec.from_dict(AREA))

    status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote", "areas")
    assert status == 0
    assert f"{area.id[:8]}  on      Made from afar" in out

    status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote", "areas",
                                 "disable", "Made from afar")
    assert status == 0, out
    assert remote.engine.area(area.id).state == "off"

    await remote.site.pairing.revoke(target.client_id)
    status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote", "areas")
    assert status == 2
    assert "refused this computer: it was unpaired there" in out


async def test_remote_accounts_connect_signs_in_here_and_keeps_the_account_there(
        remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        browser_that_approves: list[str]) -> None:
    provider = Provider(client_secret="cs-stays-there")
    await provider.start()
    try:
        client_dir = tmp_path / "client"
        target, token = await remote.pair()
        target.save(SecretStore(), token, data_dir=client_dir)
        await add_provider(remote.engine.accounts, CustomProvider(
            "my-app", f"{provider.base}/authorize", f"{provider.base}/token",
            ("read",), f"{provider.base}/userinfo"), provider.client_id,
            provider.client_secret)
        status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote",
                                     "accounts")
        assert (status, out.strip()) == (0, "homeserver has no connected accounts yet. "
                                             "`hookline remote accounts connect SERVICE` "
                                             "signs in to one from here.".replace(
                                                 "homeserver", target.name))

        status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote",
                                     "accounts", "connect", "my-app", "--timeout", "20")
        assert status == 0, out
        [account] = await remote.engine.accounts.accounts("my-app")
        assert (f"connected my-app account “marta” ({account.id[:8]}) on {target.name}; "
                "its tokens are in the keyring there") in out
        assert "Sign in to my-app in your browser; if it does not open, visit:" in out
        [exchanged] = provider.token_requests
        assert exchanged["client_secret"] == "cs-stays-there"
        assert "cs-stays-there" not in out
        assert "<h1>Connected</h1>" in browser_that_approves[0]  # this computer's browser

        status, out = await hookline(capsys, "--data-dir", str(client_dir), "remote",
                                     "accounts", "list")
        assert f"{account.id[:8]}  my-app" in out and "marta" in out
    finally:
        await provider.aclose()


async def test_areas_list_on_a_folder_attached_elsewhere_says_whose_they_are(
        remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client_dir = tmp_path / "client"
    status, out = await hookline(capsys, "--data-dir", str(client_dir), "areas", "list")
    assert status == 0 and "attached" not in out  # its own engine only: nothing to say

    target, token = await remote.pair()
    target.save(SecretStore(), token, data_dir=client_dir)
    status, out = await hookline(capsys, "--data-dir", str(client_dir), "areas", "list")
    assert status == 0
    assert (f"(These are this computer's own automations. The app here is attached to "
            f"Hookline on {target.name} (127.0.0.1): `hookline remote areas` lists its "
            "automations.)") in out
