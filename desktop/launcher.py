"""The ``hookline`` command: the desktop app when there is a display and no command,
otherwise the engine's command line (which runs headless)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from engine import cli
from engine.paths import data_dir as resolve_data_dir


def has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM"))


def build_parser(quick: bool = False) -> argparse.ArgumentParser:
    """The engine's command line plus the options only the app has."""
    parser = cli.build_parser(quick)
    parser.add_argument("--self-test", action="store_true",
                        help="check that this installation works (a temporary engine, a "
                             "timer and a webhook run, the window offscreen), then exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parsed = cli.parse_args(args, build_parser)
    if parsed.self_test:
        from desktop.selftest import main as self_test

        return self_test()
    if parsed.command is None:
        if has_display():
            from desktop.app import main as open_app

            return open_app(resolve_data_dir(parsed.data_dir))
        print("No display found: running the engine headless (`hookline serve --demo`).",
              flush=True)
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
