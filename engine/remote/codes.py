"""Pairing codes and the proofs the client and the engine compute from them.

A code is 10 characters of Crockford's base 32 (no I, L, O, U; 50 bits), shown as
``XXXXX-XXXXX``; what the user types is read leniently (case, spaces, dashes, and
O/I/L for 0/1/1).

Both sides turn the code into a key with scrypt (``code_key``), so that a value made
from the key does not let anyone who sees it try the 2**50 codes offline within the
code's 10 minutes. The engine keeps only that key (the code's salted slow hash), never
the code. The key is what both sides prove they know, each bound to the fingerprint of
the TLS certificate the client sees (see ``engine/remote/client.py: pair``):

- ``client_proof``: HMAC(key, "client" + fingerprint). The engine checks it against its
  own certificate's fingerprint. Someone between the two (a different certificate)
  gets a proof for *their* fingerprint, which the engine refuses, and cannot make one
  for the engine's without the code. The code itself never crosses the network.
- ``server_proof``: HMAC(key, "server" + fingerprint + client token). The client checks
  it before pinning: a server that only pretends to be the engine (and accepts any
  proof) cannot make it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10
#: What a user may type for a character the alphabet leaves out.
_READ_AS = {"O": "0", "I": "1", "L": "1"}
_SALT = b"hookline remote pairing v1"
#: scrypt's cost: about 50 ms here, once per code on each side.
SCRYPT_N = 2**14


def new_code() -> str:
    """A fresh random code, grouped for reading aloud: ``XXXXX-XXXXX``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalise(code: str) -> str:
    """The code as typed, without spaces or dashes, upper case, O/I/L read as 0/1/1;
    "" when it cannot be a code (wrong length or characters)."""
    raw = "".join(_READ_AS.get(c, c) for c in code.upper() if c not in " -\t")
    if len(raw) != LENGTH or any(c not in ALPHABET for c in raw):
        return ""
    return raw


def code_key(code: str) -> bytes:
    """The key both sides derive from the code (scrypt; see the module's docstring)."""
    return Scrypt(salt=_SALT, length=32, n=SCRYPT_N, r=8, p=1).derive(
        normalise(code).encode("ascii"))


def client_proof(key: bytes, fingerprint: str) -> str:
    """What the client sends: it knows the code, and which certificate it sees."""
    return hmac.new(key, b"client\0" + fingerprint.encode("ascii"), hashlib.sha256).hexdigest()


def server_proof(key: bytes, fingerprint: str, token: str) -> str:
    """What the engine answers with: it made the code, for this certificate and token."""
    return hmac.new(key, b"server\0" + fingerprint.encode("ascii") + b"\0" + token.encode(),
                    hashlib.sha256).hexdigest()
