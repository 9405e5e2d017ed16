"""Where each engine on the database can be reached, so a window follows a takeover.

Two engines on one PostgreSQL database take turns (engine/standby.py); a window
attached to one of them would otherwise keep knocking on that one after the other
took over. So every engine with the remote channel open keeps one row in
``engine_sites``: its certificate's fingerprint, its name, the addresses a client may
try and its port. A paired client reads them (``GET /remote/engines``) from
the engine it is attached to, over that engine's pinned channel, and keeps them with its
target (engine/remote/client.py). When that engine stops answering or stands by, the
client asks the others which is active, each connection pinned to the fingerprint it
learnt here; its token works on each, since pairings live in the same database.

Nothing here is a secret: a fingerprint and addresses. A row is an installation's
(its data folder's id, engine/trace.py), replaced when that engine starts with another
certificate or address; it goes when no engine refreshed it for ``STALE`` (an engine
refreshes its own at start and once a ``REFRESH_EVERY`` while answering). Two engines
are told apart by installation, not by name: two computers may well share a name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from engine.storage.schema import engine_sites, utcnow

#: A site no engine refreshed for this long is dropped (a computer taken out of use).
STALE = timedelta(days=90)
#: An engine refreshes its own row at most this often.
REFRESH_EVERY = timedelta(days=1)
#: The route a paired client reads the sites from.
ENGINES = "/remote/engines"


@dataclass(frozen=True)
class Site:
    """One engine's remote channel.

    Attributes:
        fingerprint: SHA-256 of its certificate (DER), hex, lower case.
        name: what a window shows for it (``hookline@nas``).
        addresses: what a client may try, in order (its host name first).
        port: its remote port.
    """

    fingerprint: str
    name: str
    addresses: tuple[str, ...]
    port: int

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "name": self.name,
                "addresses": list(self.addresses), "port": self.port}

    @classmethod
    def from_dict(cls, raw: Any) -> Site:
        """The site ``raw`` describes (ValueError, KeyError, TypeError: it does not)."""
        addresses = raw["addresses"]
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise TypeError("addresses is not a list of text")
        port = int(raw["port"])
        if not 0 < port < 65536:
            raise ValueError(f"{port} is not a port")
        fingerprint = str(raw["fingerprint"]).lower()
        bytes.fromhex(fingerprint)  # (ValueError)
        return cls(fingerprint, str(raw["name"]), tuple(addresses), port)


async def publish(db: AsyncEngine, installation: str, site: Site, *,
                  now: datetime | None = None) -> None:
    """Keep ``site`` as the row of ``installation`` (this engine's): replaced whole, and
    the stale rows dropped."""
    now = now or utcnow()
    async with db.begin() as conn:
        await conn.execute(delete(engine_sites).where(or_(
            engine_sites.c.installation == installation,
            engine_sites.c.fingerprint == site.fingerprint,  # (a copied data folder's)
            engine_sites.c.seen_at < now - STALE)))
        await conn.execute(insert(engine_sites).values(
            installation=installation, fingerprint=site.fingerprint, name=site.name[:200],
            addresses=json.dumps(list(site.addresses)), port=site.port, seen_at=now))


async def known(db: AsyncEngine) -> list[Site]:
    """Every engine's site, the most recently refreshed first."""
    async with db.connect() as conn:
        rows = (await conn.execute(select(engine_sites).order_by(
            engine_sites.c.seen_at.desc()))).all()
    found = []
    for row in rows:
        try:
            found.append(Site.from_dict({"fingerprint": row.fingerprint, "name": row.name,
                                         "addresses": json.loads(row.addresses),
                                         "port": row.port}))
        except (ValueError, KeyError, TypeError):
            continue  # written by something else than Hookline: not offered
    return found
