"""What the run ledger in the database costs on PostgreSQL (engine/standby.py).

Engines sharing a PostgreSQL database record a run's start in the ``run_ledger`` table
on the lease's connection before its reaction acts (one round trip, blocking the loop),
where a lone engine writes a line to a file in its data folder (one ``write()``). This
measures runs finished per second of a webhook stream on the same throwaway PostgreSQL
server with each, in the same run, alternated (file, table, file, table) so the noise
of a shared machine falls on both; the figure to read is the ratio table/file.

The stream: ``--senders`` connections from a thread of their own POST ``--deliveries``
deliveries (each with its own delivery id) to one ``webhook/incoming`` area whose
reaction is ``files/append_text``; runs/s is over the time from the first POST until
every run has finished.

    scripts/with-keyring .venv/bin/python bench/standby_ledger.py [--deliveries 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import emit_json, fmt_ratio, ratio
from engine.app import Engine
from engine.areas import AreaSpec
from engine.settings import Settings
from engine.storage.ledger import LEDGER_DIR, Ledger, TableLedger
from tests.pg import start_server


class FileLedgerEngine(Engine):
    """An engine on PostgreSQL that keeps its ledger in a file (what one engine alone
    did before the lease; wrong for two machines, here only as the baseline)."""

    def _ledger(self) -> Ledger | TableLedger:
        return Ledger(self.data_dir / LEDGER_DIR)


def stream(url: str, deliveries: int, senders: int, tag: str) -> None:
    """POST ``deliveries`` from ``senders`` connections on a loop of this thread."""

    async def main() -> None:
        numbers = iter(range(deliveries))
        connector = aiohttp.TCPConnector(limit=senders)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def sender() -> None:
                for n in numbers:
                    async with session.post(url, json={"n": n},
                                            headers={"X-Delivery-Id": f"{tag}-{n}"}) as resp:
                        if resp.status != 202:
                            raise RuntimeError(f"delivery {n}: {resp.status}")

            await asyncio.gather(*(sender() for _ in range(senders)))

    asyncio.run(main())


async def one(kind: type[Engine], url: str, folder: Path, deliveries: int, senders: int,
              tag: str) -> float:
    """Runs finished per second for one engine of ``kind`` on database ``url``."""
    settings = Settings.from_mapping({"database_url": url, "listener_port": 0})
    engine = kind(folder, settings=settings)
    await engine.start()
    try:
        area = await engine.create_area(AreaSpec.from_dict({
            "name": "Stream to a file", "trigger": {"service": "webhook",
                                                    "trigger": "incoming"},
            "reactions": [{"service": "files", "reaction": "append_text",
                           "params": {"path": str(folder / "out.txt"),
                                      "text": "{{ trigger.body.n }}"}}]}))
        hook = await engine.webhook_url(area.id)
        assert hook is not None
        began = time.perf_counter()
        sending = threading.Thread(target=stream, args=(hook, deliveries, senders, tag))
        sending.start()
        await asyncio.to_thread(sending.join)
        await engine.wait_idle()
        return deliveries / (time.perf_counter() - began)
    finally:
        await engine.aclose()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    server = start_server()
    pg = next(server)
    figures: dict[str, list[float]] = {"file": [], "table": []}
    try:
        with tempfile.TemporaryDirectory(prefix="hookline-bench-") as tmp:
            for round_ in range(args.rounds):
                for name, kind in (("file", FileLedgerEngine), ("table", Engine)):
                    url = pg.url(pg.new_database())
                    rate = await one(kind, url, Path(tmp) / f"{name}{round_}",
                                     args.deliveries, args.senders, f"{name}{round_}")
                    figures[name].append(rate)
                    print(f"round {round_ + 1}: {name:5} ledger {rate:7.0f} runs/s", flush=True)
    finally:
        for _ in server:  # stops the server and removes its folder
            pass
    best = {name: max(rates) for name, rates in figures.items()}
    cost = ratio(best["table"], best["file"])
    print(f"table/file: {fmt_ratio(cost)} (best of {args.rounds} each: "
          f"{best['table']:.0f} vs {best['file']:.0f} runs/s)")
    return {"runs_per_s": figures, "best": best, "table_over_file": cost}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    emit_json(asyncio.run(main(parser.parse_args())))
