"""The ``hookline`` command's start-up: wall time of one-shot commands, as ratios against
a bare interpreter measured in the same run.

Each command runs as ``python -m desktop.launcher ARGS`` (what the ``hookline`` script
runs) from the checkout this script is in, on an empty temporary data folder, its output
thrown away. Compiled bytecode is kept in a temporary folder (``PYTHONPYCACHEPREFIX``),
as an installed Hookline has it, even where ``PYTHONDONTWRITEBYTECODE`` is set;
``--no-bytecode`` measures without it (every module of this repository compiled at every
start). One untimed run of each warms the caches; then the variants are interleaved, so
a noisy moment hurts them alike, and the median of the runs is reported.

  baseline           python -c pass
  version            hookline --version
  services           hookline services
  services-json      hookline services --json

Target (issue 12): ``--version`` and ``services`` under 0.3 s.

    .venv/bin/python bench/cli_start.py [--runs 15] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import PYTHON, ROOT, emit_json, fmt_ratio, ratio

TARGET_S = 0.3


HOOKLINE = [PYTHON, "-m", "desktop.launcher"]


def variants() -> dict[str, list[str]]:
    command = HOOKLINE
    return {
        "baseline": [PYTHON, "-c", "pass"],
        "version": [*command, "--version"],
        "services": [*command, "services"],
        "services-json": [*command, "services", "--json"],
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="runs per variant")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="no bytecode cache (PYTHONDONTWRITEBYTECODE=1)")
    args = parser.parse_args()

    runs = variants()
    times: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory(prefix="hookline-bench-cli-") as tmp:
        env = {**os.environ, "HOOKLINE_DATA_DIR": str(Path(tmp) / "data")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        for argv in runs.values():  # warm the OS's file cache and the bytecode caches
            timed(argv, env)
        for _ in range(args.runs):
            for name, argv in runs.items():
                times[name].append(timed(argv, env))

    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["baseline"]
    cache = "no bytecode cache" if args.no_bytecode else "bytecode cached"
    print(f"`hookline` start-up, median of {args.runs} runs (wall time, output discarded, "
          f"{cache}):")
    print(f"  {'baseline':14} {median['baseline'] * 1000:7.0f} ms  python -c pass")
    met: dict[str, bool] = {}
    for name in ("version", "services", "services-json"):
        met[name] = median[name] < TARGET_S
        print(f"  {name:14} {median[name] * 1000:7.0f} ms  "
              f"{fmt_ratio(ratio(median[name], base)):>7} baseline  "
              f"(min {min(times[name]) * 1000:.0f} ms; target < {TARGET_S * 1000:.0f} ms: "
              f"{'met' if met[name] else 'MISSED'})")
    figures: dict[str, Any] = {
        "bench": "cli_start",
        "runs": args.runs,
        "command": " ".join(HOOKLINE),
        "bytecode_cache": not args.no_bytecode,
        "median_s": median,
        "min_s": {name: min(t) for name, t in times.items()},
        "ratio_vs_baseline": {name: ratio(median[name], base) for name in median
                              if name != "baseline"},
        "target_s": TARGET_S,
        "target_met": met,
    }
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
