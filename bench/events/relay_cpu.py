"""`python -m bench.events.relay_cpu`: the relay's CPU per event at several offered rates.

Runs only the lag harness (writers process → relay process → consumer in this process) once
per rate and prints, per rate, the relay process's CPU (utime + stime of all its threads,
`time.process_time()` in that process) per event, next to the end-to-end lag. Short runs for
iterating on the relay; `python -m bench.events` is the full benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.events.environment import bench_environment
from bench.events.lag import measure_lag

_PER_STREAM = 80


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.events.relay_cpu")
    parser.add_argument("--rates", default="50,200,1000", help="offered events/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--aggregates", type=int, default=200, help="distinct ordering keys")
    parser.add_argument("--streams", type=int, default=4, help="minimum consumer streams")
    parser.add_argument("--output", type=Path, default=None, help="write the figures as JSON")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> list[dict[str, Any]]:
    async with bench_environment() as env:
        return [
            asdict(
                await measure_lag(
                    env,
                    rate=int(rate),
                    seconds=args.seconds,
                    aggregates=args.aggregates,
                    streams=max(args.streams, math.ceil(int(rate) / _PER_STREAM)),
                )
            )
            for rate in args.rates.split(",")
        ]


def summary(runs: list[dict[str, Any]]) -> str:
    lines = [
        (
            "| offered/s | committed/s | events | relay CPU ms/event | relay rounds"
            " | events/round | lag p50 / p99 | relay's part p50 / p99 |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        rounds = run["relay_rounds"]
        per_round = run["events"] / rounds if rounds else float("nan")
        lines.append(
            f"| {run['offered_per_s']:.0f} | {run['committed_per_s']:.0f} | {run['events']} | "
            f"{run['relay_cpu_ms_per_event']:.2f} | {rounds} | {per_round:.1f} | "
            f"{run['p50_ms']:.0f} / {run['p99_ms']:.0f} ms | "
            f"{run['relay_p50_ms']:.0f} / {run['relay_p99_ms']:.0f} ms |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    runs = asyncio.run(_run(args))
    sys.stdout.write(summary(runs))
    if args.output is not None:
        args.output.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
