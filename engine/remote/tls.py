"""The engine's own TLS certificate for the remote channel, made on its first start.

Self-signed on purpose: clients pin its SHA-256 fingerprint at pairing (no certificate
authority, no host name checks), so it is made once and kept, whatever address the
engine is later reached by; a new one would make every client pair again. Its key is
an ECDSA P-256 key in ``remote/key.pem`` (mode 0600, like any TLS server's key: the
engine must read it unattended at start, also on a headless server with no keyring).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.errors import ConfigError

log = logging.getLogger(__name__)

FOLDER = "remote"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALID_DAYS = 3650


def der_fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER bytes: hex, lower case (what clients pin)."""
    return hashlib.sha256(der).hexdigest()


def spaced(fingerprint: str) -> str:
    """A fingerprint as people compare it: ``AB:CD:…``."""
    return ":".join(fingerprint[i:i + 2] for i in range(0, len(fingerprint), 2)).upper()


@dataclass(frozen=True)
class Identity:
    """The engine's certificate and key files, and the certificate's fingerprint."""

    cert: Path
    key: Path
    fingerprint: str

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context with this certificate (TLS 1.2 at least)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        return context


def identity(data_dir: Path, addresses: Sequence[str] = ()) -> Identity:
    """The engine's certificate, made now if there is none (or it cannot be read).

    Args:
        data_dir: the data folder (the files go in ``remote/``).
        addresses: addresses it is reached by, written into a new certificate's names
            beside the host name (for people reading it; clients check the fingerprint).
    """
    folder = data_dir / FOLDER
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
        serialization.load_pem_private_key(key.read_bytes(), password=None)
        return Identity(cert, key, der_fingerprint(loaded.public_bytes(
            serialization.Encoding.DER)))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("the remote channel's certificate in %s cannot be read (%s): making a "
                    "new one; paired clients must pair again", folder, exc)
    try:
        return _make(folder, addresses)
    except OSError as exc:
        raise ConfigError(f"Cannot write the remote channel's certificate in {folder}: "
                          f"{exc.strerror or exc}") from None


def _make(folder: Path, addresses: Sequence[str]) -> Identity:
    host = socket.gethostname() or "hookline"
    names: list[x509.GeneralName] = [x509.DNSName(host), x509.DNSName("localhost")]
    for address in ("127.0.0.1", *addresses):
        with contextlib.suppress(ValueError):
            ip = ipaddress.ip_address(address)
            if not ip.is_unspecified and x509.IPAddress(ip) not in names:
                names.append(x509.IPAddress(ip))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hookline")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    _write(key_path, key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    fingerprint = der_fingerprint(cert.public_bytes(serialization.Encoding.DER))
    log.info("made the remote channel's certificate %s (fingerprint %s)", cert_path,
             spaced(fingerprint))
    return Identity(cert_path, key_path, fingerprint)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` atomically, with ``mode`` from the first byte."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
