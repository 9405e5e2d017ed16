"""Baseline server for bench/webhook_ingest.py: a bare aiohttp handler that parses the
JSON body and answers 202, nothing else. Prints ``READY {json}`` once listening."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.json()
    return web.json_response({"accepted": 1, "duplicates": 0}, status=202)


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/hooks/{token}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    url = f"http://127.0.0.1:{port}/hooks/bare"
    print("READY " + json.dumps({"pid": os.getpid(), "urls": [url]}), flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
