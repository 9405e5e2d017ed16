"""Runs a Hookline engine for the benchmarks (not a benchmark itself).

Starts ``Engine`` on ``--data-dir``, creates the areas asked for, prints
``READY {json}`` (pid, webhook URLs, timings) and serves until SIGTERM. With
``--status-file`` it rewrites a small JSON file every ``--status-every`` seconds with
its progress: events journaled, runs finished, dispatcher backlog, writer groups.
With ``--populate-only`` it creates the areas and exits (a later run serves them, as
after a restart). Run it under ``scripts/with-keyring`` when it has webhook areas.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import registry
from engine.app import Engine
from engine.areas import AreaSpec
from engine.bus import RUN_FINISHED, Message
from engine.memory import settle_after_start
from engine.secrets import MemorySecretStore
from engine.settings import Settings

#: A field each trigger kind's events have, used in the reaction's template.
FIELD = {"webhook": "trigger.body.sensor", "timer": "trigger.fired_at", "poll": "trigger.name"}


def reaction(kind: str, append_path: str | None, trigger: str = "webhook") -> dict[str, Any]:
    field = FIELD[trigger]
    if kind == "notify":
        return {
            "service": "notify",
            "reaction": "notify",
            "params": {"title": "bench", "message": f"{{{{ {field} }}}}"},
        }
    if kind == "append":
        if not append_path:
            raise SystemExit("--reaction append needs --append-path")
        return {
            "service": "files",
            "reaction": "append_text",
            "params": {"path": append_path, "text": f"{{{{ {field} }}}} {{{{ now }}}}"},
        }
    raise SystemExit(f"unknown reaction {kind!r}")


def area_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Interleaved so that every kind is spread over the whole table."""
    specs: list[dict[str, Any]] = []
    kinds = [
        ("webhook", args.webhook_areas),
        ("timer", args.timer_areas),
        ("poll", args.poll_areas),
    ]
    made = dict.fromkeys([k for k, _ in kinds], 0)
    while any(made[k] < n for k, n in kinds):
        for kind, wanted in kinds:
            if made[kind] >= wanted:
                continue
            made[kind] += 1
            name = f"bench {kind} {made[kind]}"
            react = reaction(args.reaction, args.append_path, kind)
            if kind == "webhook":
                specs.append(
                    {
                        "name": name,
                        "trigger": {"service": "webhook", "trigger": "incoming"},
                        "reactions": [react],
                    }
                )
            elif kind == "timer":
                specs.append(
                    {
                        "name": name,
                        "trigger": {
                            "service": "timer",
                            "trigger": "every",
                            "params": {"interval": args.timer_interval},
                        },
                        "reactions": [react],
                    }
                )
            else:
                specs.append(
                    {
                        "name": name,
                        "trigger": {
                            "service": "files",
                            "trigger": "file_created",
                            "params": {"folder": args.poll_folder},
                        },
                        "interval": args.poll_interval,
                        "reactions": [react],
                    }
                )
    return specs


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    t0 = time.monotonic()
    settings = Settings.from_mapping({"listener_port": args.port, "pause_after_failures": 0})
    engine = Engine(
        Path(args.data_dir),
        settings=settings,
        registry=registry(),
        secrets=MemorySecretStore() if args.memory_secrets else None,
        listen=not args.populate_only,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    counts = {"finished": 0, "succeeded": 0, "failed": 0}

    def on_finished(message: Message) -> None:
        counts["finished"] += 1
        status = message.data.get("status")
        if status in counts:
            counts[status] += 1

    engine.bus.subscribe(RUN_FINISHED, on_finished)
    await engine.start()
    started_s = time.monotonic() - t0
    t1 = time.monotonic()
    urls: list[str] = []
    specs = area_specs(args)
    room = asyncio.Semaphore(args.create_concurrency)

    async def create(spec: dict[str, Any]) -> None:
        async with room:
            area = await engine.create_area(AreaSpec.from_dict(spec))
            if (
                spec["trigger"]["service"] == "webhook"
                and not args.populate_only
                and (len(urls) < args.max_urls)
            ):
                url = await engine.webhook_url(area.id)
                if url:
                    urls.append(url)

    await asyncio.gather(*(create(spec) for spec in specs))
    created_s = time.monotonic() - t1
    if args.populate_only:
        await engine.aclose()
        print(
            "READY "
            + json.dumps({"pid": os.getpid(), "created": len(specs), "create_s": created_s}),
            flush=True,
        )
        return

    first_event_id = engine.writer._next_event_id

    def status() -> dict[str, Any]:
        return {
            "t": time.time(),
            "events": engine.writer._next_event_id - first_event_id,
            "backlog": engine.dispatcher.backlog,
            "groups": engine.writer.groups,
            "writes": engine.writer.writes,
            **counts,
        }

    async def write_status() -> None:
        path = Path(args.status_file)
        tmp = path.with_suffix(".tmp")
        while True:
            tmp.write_text(json.dumps(status()))
            os.replace(tmp, path)
            await asyncio.sleep(args.status_every)

    if args.hold_runs:
        # An experiment, not a mode of Hookline: events are journaled and acknowledged
        # but not run (they stay journaled), to measure what ingest alone costs.
        engine.dispatcher.submit = lambda event, carried=None: None  # type: ignore[method-assign]
    settle_after_start()  # as `hookline serve` does once started
    writer_task = (
        asyncio.create_task(write_status()) if args.status_file and args.status_every > 0 else None
    )
    print(
        "READY "
        + json.dumps(
            {
                "pid": os.getpid(),
                "urls": urls,
                "areas": len(engine.areas()),
                "start_s": started_s,
                "create_s": created_s,
            }
        ),
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        if writer_task is not None:
            writer_task.cancel()
        await engine.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--webhook-areas", type=int, default=0)
    parser.add_argument("--timer-areas", type=int, default=0)
    parser.add_argument("--timer-interval", default="1h")
    parser.add_argument("--poll-areas", type=int, default=0)
    parser.add_argument("--poll-folder", default="")
    parser.add_argument("--poll-interval", type=float, default=600.0)
    parser.add_argument("--reaction", choices=("notify", "append"), default="notify")
    parser.add_argument("--append-path")
    parser.add_argument(
        "--max-urls",
        type=int,
        default=64,
        help="webhook URLs to print (reading each is a keyring call)",
    )
    parser.add_argument("--status-file")
    parser.add_argument("--status-every", type=float, default=0.25)
    parser.add_argument(
        "--create-concurrency",
        type=int,
        default=8,
        help="areas created at once (keyring and database round trips)",
    )
    parser.add_argument("--populate-only", action="store_true")
    parser.add_argument(
        "--hold-runs",
        action="store_true",
        help="experiment: journal and acknowledge webhooks but start no runs",
    )
    parser.add_argument(
        "--memory-secrets",
        action="store_true",
        help="keep secrets in memory, not the OS keyring (for --populate-only:"
        " a later run needs only the token hashes in the database)",
    )
    asyncio.run(main(parser.parse_args()))
