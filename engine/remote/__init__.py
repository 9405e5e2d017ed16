"""The remote control channel: the control channel over TLS for paired clients.

    errors.py   RemoteError and its kinds
    codes.py    pairing codes and the proofs both sides compute from them
    tls.py      the engine's self-signed certificate and its fingerprint
    pairing.py  pending codes and paired clients (hashes only, in the database)
    site.py     the TLS site of the control channel and its gate
    client.py   what a client keeps (RemoteTarget) and how it pairs (pair)
    cli.py      hookline pair (on the engine's computer), hookline remote (on a client)
    peer.py     a standby engine's live copy of the active engine's secrets
    peer_cli.py hookline standby join|status|leave
"""
