"""`python -m bench.events`: relay vs. raw publish rate, and end-to-end lag at 50, 200 and 1,000/s.

Prints a Markdown summary and writes the figures as JSON (`--output`). Every figure comes from
this run on this machine: the relay's rate is reported as a ratio of the raw client's rate to
the same emulator, measured alternately in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.events.environment import bench_environment
from bench.events.lag import measure_lag
from bench.events.rates import raw_publish_rate, relay_publish_rate
from services.chassis.events import pubsub

TARGET_RATIO = 0.7
_PER_STREAM = 80
TARGET_RATE = 200
TARGET_P99_MS = 500.0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.events")
    parser.add_argument("--events", type=int, default=5000, help="events per rate measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw/relay rounds")
    parser.add_argument("--aggregates", type=int, default=200, help="distinct ordering keys")
    parser.add_argument("--batch-size", type=int, default=1000, help="relay claim size")
    parser.add_argument("--rates", default="50,200,1000", help="offered events/s for lag runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each lag run")
    parser.add_argument("--streams", type=int, default=4, help="minimum consumer streams")
    parser.add_argument("--output", type=Path, default=None, help="write the figures as JSON")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    async with bench_environment() as env:
        publisher = pubsub.ordered_publisher()
        try:
            for topic in ("bench-raw", "bench-relay"):
                publisher.create_topic(name=pubsub.topic_path(env.project, topic))
        finally:
            publisher.stop()
        raw, relay = [], []
        for _ in range(args.rounds):
            raw.append(await raw_publish_rate(env, "bench-raw", args.events, args.aggregates))
            relay.append(
                await relay_publish_rate(
                    env, "bench-relay", args.events, args.aggregates, args.batch_size
                )
            )
        lags = [
            asdict(
                await measure_lag(
                    env,
                    rate=int(rate),
                    seconds=args.seconds,
                    aggregates=args.aggregates,
                    # pstest serves ~90 messages/s per streaming pull: open enough of them.
                    streams=max(args.streams, math.ceil(int(rate) / _PER_STREAM)),
                )
            )
            for rate in args.rates.split(",")
        ]
    return {
        "events_per_rate_round": args.events,
        "aggregates": args.aggregates,
        "raw_publish_per_s": [round(r) for r in raw],
        "relay_publish_per_s": [round(r) for r in relay],
        "relay_to_raw_ratio": round(statistics.median(relay) / statistics.median(raw), 3),
        "lag": lags,
    }


def _summary(figures: dict[str, Any]) -> str:
    ratio = figures["relay_to_raw_ratio"]
    lines = [
        "| measure | value | target |",
        "|---|---|---|",
        (
            "| raw google-cloud-pubsub publish (median) | "
            f"{statistics.median(figures['raw_publish_per_s']):.0f} msg/s | |"
        ),
        (
            "| relay publish incl. claim + mark (median) | "
            f"{statistics.median(figures['relay_publish_per_s']):.0f} events/s | |"
        ),
        f"| relay / raw | {ratio:.2f}x | >= {TARGET_RATIO}x |",
    ]
    for run in figures["lag"]:
        at_target_rate = run["offered_per_s"] == TARGET_RATE
        target = f"p99 <= {TARGET_P99_MS:.0f} ms" if at_target_rate else ""
        lines.append(
            f"| lag at {run['offered_per_s']:.0f}/s offered ({run['committed_per_s']:.0f}/s "
            f"committed, {run['events']} events) | p50 {run['p50_ms']:.0f} ms, "
            f"p99 {run['p99_ms']:.0f} ms, max {run['max_ms']:.0f} ms (relay's share: "
            f"p50 {run['relay_p50_ms']:.0f} ms, p99 {run['relay_p99_ms']:.0f} ms; consumer CPU "
            f"{run['consumer_cpu_ms_per_event']:.2f} ms/event, relay CPU "
            f"{run['relay_cpu_ms_per_event']:.2f} ms/event) | {target} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    figures = asyncio.run(_run(args))
    sys.stdout.write(_summary(figures))
    if args.output is not None:
        args.output.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
