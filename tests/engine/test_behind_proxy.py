"""What docs/server.md promises of the webhook listener behind a reverse proxy: the public
URL's Host accepted and no other, signatures still checked, /metrics refused through it;
and, where nginx or Caddy is installed, the page's own configuration run in front of a
real engine (only /hooks/ forwarded, the body limit, TLS at the proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import io
import json
import re
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine import os_service
from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import RUN_FINISHED
from engine.settings import Settings
from engine.standby import ACTIVE, ENGINE_ROLE, STANDBY
from tests.engine import probe
from tests.engine.conftest import FAST, EngineFactory, next_message, registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "server.md"
PUBLIC = "hooks.example.org"
SECRET = "proxy-test-secret"
#: How a proxy forwards a delivery (the sender's address as it saw it).
FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
AREA = {
    "name": "From the internet",
    "trigger": {"service": "webhook", "trigger": "incoming", "params": {"secret": SECRET}},
    "reactions": [{"service": "probe", "reaction": "record",
                   "params": {"text": "{{ trigger.body.n }} from "
                                      "{{ trigger.headers['X-Forwarded-For'] }}"}}],
}


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hookline-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


async def hook_path(engine: Engine) -> str:
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    url = await engine.webhook_url(area.id)
    assert url is not None and url.startswith(f"https://{PUBLIC}/hooks/")
    return url.removeprefix(f"https://{PUBLIC}")


async def post(engine: Engine, path: str, body: bytes, headers: dict[str, str]) -> int:
    assert engine.listener is not None
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{engine.listener.port}{path}", data=body,
            headers=headers) as resp:
        return resp.status


async def test_a_forwarded_delivery_with_the_public_host_is_taken_and_signed_still(
        make_engine: EngineFactory) -> None:
    engine = await make_engine(public_url=f"https://{PUBLIC}")
    path = await hook_path(engine)
    body = b'{"n": 1}'
    finished = next_message(engine, RUN_FINISHED)
    assert await post(engine, path, body, {"Host": PUBLIC, **FORWARDED, **signed(body)}) == 202
    assert (await finished).data["status"] == "succeeded"
    # the automation sees who sent it, as the proxy said
    assert [r["text"] for r in probe.controls.received] == ["1 from 203.0.113.7"]
    # the proxy changes nothing of the signature check
    unsigned = {"Host": PUBLIC, **FORWARDED, "Content-Type": "application/json"}
    assert await post(engine, path, body, unsigned) == 401
    assert await post(engine, path, b'{"n": 2}', {"Host": PUBLIC, **FORWARDED,
                                                  **signed(body)}) == 401
    # another name, or the public one with a port it does not have: refused
    for host in ("evil.example", f"{PUBLIC}:8443", "hooks.example.org.evil.example"):
        assert await post(engine, path, body, {"Host": host, **FORWARDED,
                                               **signed(body)}) == 400, host
    await engine.wait_idle()
    assert len(probe.controls.received) == 1


async def test_the_public_urls_port_is_part_of_the_host_it_accepts(
        make_engine: EngineFactory) -> None:
    engine = await make_engine(public_url=f"https://{PUBLIC.upper()}:8443")
    area = await engine.create_area(AreaSpec.from_dict(AREA))
    url = await engine.webhook_url(area.id)
    assert url is not None
    path = "/hooks/" + url.rsplit("/hooks/", 1)[1]
    body = b'{"n": 3}'
    # what nginx's $http_host passes on; its $host would drop the port
    assert await post(engine, path, body, {"Host": f"{PUBLIC}:8443", **signed(body)}) == 202
    assert await post(engine, path, body, {"Host": PUBLIC, **signed(body)}) == 400


async def test_metrics_are_refused_to_what_came_through_the_proxy(
        make_engine: EngineFactory) -> None:
    engine = await make_engine(public_url=f"https://{PUBLIC}", metrics_enabled=True)
    assert engine.listener is not None
    base = f"http://127.0.0.1:{engine.listener.port}/metrics"
    async with aiohttp.ClientSession() as session:
        for headers in ({"Host": PUBLIC}, {"X-Forwarded-For": "203.0.113.7"}):
            async with session.get(base, headers=headers) as resp:
                assert resp.status == 403, headers
        async with session.get(base) as resp:
            assert resp.status == 200  # this computer, directly


async def test_bound_to_every_interface_there_is_no_host_check(
        make_engine: EngineFactory) -> None:
    engine = await make_engine(listener_host="0.0.0.0", public_url=f"https://{PUBLIC}")
    path = await hook_path(engine)
    body = b'{"n": 4}'
    assert await post(engine, path, body, {"Host": "anything.example", **signed(body)}) == 202


# ------------------------------------------------------------------ the page's configs


def doc_block(language: str, index: int = 0) -> str:
    """docs/server.md's ``index``-th code block in ``language``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) > index, f"docs/server.md has no {language} block #{index + 1}"
    return str(blocks[index])


def listening(engine: Engine) -> int:
    """The port ``engine``'s webhook listener has bound."""
    assert engine.listener is not None and engine.listener.port is not None
    return engine.listener.port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the public name (a stand-in for Let's Encrypt's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PUBLIC)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(PUBLIC)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def wait_for_port(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    """Until the proxy accepts connections (or has exited, saying why)."""
    async with asyncio.timeout(30):
        while True:
            if process.returncode is not None:
                raise AssertionError(f"the proxy exited: {log.read_text(errors='replace')}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # polling a condition, bounded by the timeout
                continue
            writer.close()
            await writer.wait_closed()
            return


def proxy_binary(kind: str) -> str:
    binary = shutil.which(kind) or shutil.which(kind, path="/usr/sbin:/usr/bin")
    if binary is None:
        pytest.skip(f"{kind} is not installed: it would run docs/server.md's {kind} "
                    f"configuration (Debian: apt-get install {kind})")
    return binary


def nginx_conf(folder: Path, port: int, upstreams: list[int]) -> Path:
    """The page's nginx server (with its two-machine upstream for two listeners) on
    ``port`` of 127.0.0.1, a stand-in certificate, everything else in ``folder``."""
    cert, key = certificate(folder)
    server = doc_block("nginx")
    server = server.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    server = server.replace("listen [::]:443 ssl;\n", "")
    server = re.sub(r"/etc/letsencrypt/live/[^;]*/fullchain.pem", str(cert), server)
    server = re.sub(r"/etc/letsencrypt/live/[^;]*/privkey.pem", str(key), server)
    upstream = ""
    if len(upstreams) == 1:
        server = server.replace("127.0.0.1:8787", f"127.0.0.1:{upstreams[0]}")
    else:
        two, _, location = doc_block("nginx", 1).partition("# and in location /hooks/")
        addresses = iter(upstreams)
        upstream = re.sub(r"server [0-9.]+:8787",
                          lambda _m: f"server 127.0.0.1:{next(addresses)}", two)
        lines = location.split("\n", 1)[1]
        server = re.sub(r" *proxy_pass http://127\.0\.0\.1:8787;[^\n]*\n", lines, server)
        assert "proxy_next_upstream" in server and "127.0.0.1:8787" not in server
    temp = "".join(f"{what}_temp_path {folder / what};\n"
                   for what in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = folder / "nginx.conf"
    conf.write_text(f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
                    f"error_log {folder / 'proxy.log'};\nevents {{}}\nhttp {{\n"
                    f"access_log off;\n{temp}{upstream}{server}}}\n", encoding="utf-8")
    return conf


@contextlib.asynccontextmanager
async def running(argv: list[str], port: int, folder: Path) -> AsyncIterator[None]:
    """The proxy started, until it accepts connections on ``port``; stopped after."""
    log = folder / "proxy.log"
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=out, cwd=folder,
            env={"HOME": str(folder), "XDG_DATA_HOME": str(folder / "data"),
                 "XDG_CONFIG_HOME": str(folder / "config"), "PATH": "/usr/bin:/bin"})
    try:
        await wait_for_port(port, process, log)
        yield
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)


@pytest.fixture
async def proxied(request: pytest.FixtureRequest, make_engine: EngineFactory,
                  tmp_path: Path) -> AsyncIterator[tuple[Engine, int, Path]]:
    """A real engine behind the page's nginx or Caddy configuration, which listens
    with TLS on a free port of 127.0.0.1 instead of 443."""
    kind = request.param
    binary = proxy_binary(kind)
    engine = await make_engine(public_url=f"https://{PUBLIC}")
    port = free_port()
    cert = tmp_path / "fullchain.pem"
    if kind == "nginx":
        argv = [binary, "-p", str(tmp_path), "-c",
                str(nginx_conf(tmp_path, port, [listening(engine)]))]
    else:
        cert, key = certificate(tmp_path)
        upstream = f"127.0.0.1:{listening(engine)}"
        site = doc_block("caddy")
        site = site.replace(f"{PUBLIC} {{", f"https://{PUBLIC}:{port} {{\n\tbind 127.0.0.1\n"
                                            f"\ttls {cert} {key}", 1)
        site = site.replace("127.0.0.1:8787", upstream)
        conf = tmp_path / "Caddyfile"
        conf.write_text(f"{{\n\tadmin off\n\tauto_https disable_redirects\n"
                        f"\tstorage file_system {tmp_path / 'caddy'}\n}}\n{site}",
                        encoding="utf-8")
        argv = [binary, "run", "--config", str(conf), "--adapter", "caddyfile"]
    async with running(argv, port, tmp_path):
        yield engine, port, cert


async def through(proxy: tuple[Engine, int, Path], method: str, path: str,
                  body: bytes = b"", headers: dict[str, str] | None = None
                  ) -> tuple[int, str]:
    """A request to the proxy as a sender on the internet makes it: TLS checked against
    the public name (the stand-in certificate trusted for this request only)."""
    _, port, cert = proxy
    context = ssl.create_default_context(cafile=str(cert))
    async with aiohttp.ClientSession() as session, session.request(
            method, f"https://127.0.0.1:{port}{path}", ssl=context,
            data=io.BytesIO(body) if len(body) > 1024 else body,
            server_hostname=PUBLIC, headers={"Host": PUBLIC, **(headers or {})}) as resp:
        return resp.status, await resp.text()


@pytest.mark.parametrize("proxied", ["nginx", "caddy"], indirect=True)
async def test_the_pages_proxy_forwards_hooks_only(
        proxied: tuple[Engine, int, Path], request: pytest.FixtureRequest) -> None:
    engine, kind = proxied[0], request.node.callspec.params["proxied"]
    path = await hook_path(engine)
    body = json.dumps({"n": 5}).encode()
    finished = next_message(engine, RUN_FINISHED)
    status, text = await through(proxied, "POST", path, body, signed(body))
    assert status == 202, text
    assert (await finished).data["status"] == "succeeded"
    # the Host came through unchanged (else 400), and X-Forwarded-For says the sender
    assert [r["text"] for r in probe.controls.received] == ["5 from 127.0.0.1"]

    unsigned = {"Content-Type": "application/json"}
    assert (await through(proxied, "POST", path, body, unsigned))[0] == 401
    status, text = await through(proxied, "POST", "/hooks/nothing", b"{}")
    assert status == 404 and "no area has this webhook address" in text  # Hookline's own
    for other in ("/metrics", "/", "/hooksx", "/control", "/rpc/areas"):
        status, text = await through(proxied, "GET", other)
        assert status == 404 and "Hookline" not in text, other  # the proxy's, not ours
    big = b'{"n": "' + b"x" * (1024 * 1024) + b'"}'
    status, text = await through(proxied, "POST", path, big, signed(big))
    if kind == "nginx":  # refused by nginx itself (client_max_body_size)
        assert status == 413 and "larger than" not in text, text
    else:  # Caddy 2.6 passes the listener's 413 on, or 502 if it closed first (a race)
        assert status in (413, 502), text
        assert status == 502 or "larger than 1024 KiB" in text, text
    await engine.wait_idle()
    assert len(probe.controls.received) == 1


async def test_two_machines_on_one_database_behind_the_pages_nginx(
        postgres_url: str, tmp_path: Path) -> None:
    """The page's two-machine upstream: every delivery reaches the active engine, the
    standby's 503 sends nginx to the other; after a takeover the new active one takes
    them (two engines with data folders of their own, as on two machines)."""
    binary = proxy_binary("nginx")
    settings = Settings.from_mapping({**FAST, "database_url": postgres_url,
                                      "public_url": f"https://{PUBLIC}"})
    first = Engine(tmp_path / "a", settings=settings, registry=registry())
    second = Engine(tmp_path / "b", settings=settings, registry=registry())
    starting: asyncio.Future[None] | None = None
    try:
        await first.start()
        path = await hook_path(first)
        standing_by = next_message(second, ENGINE_ROLE, lambda m: m.data["role"] == STANDBY)
        starting = asyncio.ensure_future(second.start())
        await standing_by
        # what `hookline service status` says of each machine's engine
        for engine, role in ((first, "active"), (second, "standby")):
            said = await asyncio.to_thread(os_service.engine_answers, engine.data_dir)
            assert said.endswith(f", {role})"), said
        port = free_port()
        folder = tmp_path / "nginx"
        folder.mkdir()
        conf = nginx_conf(folder, port, [listening(first), listening(second)])
        proxy = (first, port, folder / "fullchain.pem")
        async with running([binary, "-p", str(folder), "-c", str(conf)], port, folder):
            for n in range(4):  # round robin: half of them meet the standby first
                body = json.dumps({"n": n}).encode()
                status, text = await through(proxy, "POST", path, body, signed(body))
                assert status == 202, text
            await first.wait_idle()

            active = next_message(second, ENGINE_ROLE, lambda m: m.data["role"] == ACTIVE)
            await first.aclose()
            await active
            await asyncio.wait_for(starting, 30)
            body = json.dumps({"n": 4}).encode()
            status, text = await through(proxy, "POST", path, body, signed(body))
            assert status == 202, text
            await second.wait_idle()
        assert sorted(r["text"] for r in probe.controls.received) == [
            f"{n} from 127.0.0.1" for n in range(5)]
    finally:
        if starting is not None and not starting.done():
            starting.cancel()
        await second.aclose()
        await first.aclose()
