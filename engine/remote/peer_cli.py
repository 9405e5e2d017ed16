"""``hookline standby join|status|leave``: this engine copies another's secrets while it
stands by (engine/remote/peer.py).

Imported only when the full parser is built (``engine/cli.py``).
"""

from __future__ import annotations

import argparse
import getpass
import socket
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """``standby`` on the ``hookline`` command line."""
    standby = sub.add_parser(
        "standby", help="keep a copy of another engine's secrets here while this one stands "
                        "by on the same PostgreSQL database (join it with the code "
                        "`hookline pair --standby` printed there)")
    ssub = standby.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ssub.add_parser("join", help="pair with the other engine as a standby engine")
    p.add_argument("host", help="its name or address, with :PORT unless it is 8789")
    p.add_argument("code", help="the code `hookline pair --standby` printed there")
    p.add_argument("--name", help="what that engine lists this one as "
                                  "(default: standby user@this computer)")
    ssub.add_parser("status", help="the engine joined, and when its secrets were last copied")
    ssub.add_parser("leave", help="stop copying (unpairs this engine there when it answers); "
                                  "what was copied stays")


async def main(args: argparse.Namespace, data_dir: Path) -> int:
    from engine.remote import peer
    from engine.remote.cli import host_and_port
    from engine.remote.site import HELLO
    from engine.remote.tls import spaced
    from engine.secrets import secret_store_of

    secrets = secret_store_of(data_dir)
    if args.action == "join":
        host, port = host_and_port(args.host)
        name = args.name or f"standby {getpass.getuser()}@{socket.gethostname()}"
        target = await peer.join(host, port, args.code, secrets=secrets, data_dir=data_dir,
                                 name=name)
        print(f"Joined {target.name} at {host}:{port} as a standby engine "
              f"({target.client_id[:8]} there); its token is in this computer's keyring.")
        print(f"Certificate fingerprint (pinned): {spaced(target.fingerprint)}")
        print("While this engine stands by (`hookline serve` on the same database), it copies "
              "that engine's secrets into this computer's keyring.")
        return 0
    if args.action == "leave":
        left = await peer.leave(secrets=secrets, data_dir=data_dir)
        if left is None:
            print("No engine is joined. `hookline standby join HOST CODE` joins one.")
            return 0
        target, answered = left
        note = ("" if answered == "answers" else
                f"; it {answered}, so unpair this engine there too: "
                f"`hookline pair --revoke {target.client_id[:8]}`")
        print(f"Left {target.name} at {target.host}:{target.port}; the secrets copied from it "
              f"stay in this computer's keyring{note}")
        return 0
    described = peer.describe(data_dir)
    if described is None:
        print("No engine is joined: this engine copies no secrets. `hookline standby join "
              "HOST CODE` joins one (the code from `hookline pair --standby` there).")
        return 1
    joined = peer.load_target(data_dir)
    assert joined is not None
    token = secrets.get(peer.token_ref(joined.client_id)) or ""
    answered = await peer.ask(joined, token, "GET", HELLO)
    ok, said = described
    print(f"Joined {said}")
    print(f"It {answered}.")
    return 0 if ok else 1
