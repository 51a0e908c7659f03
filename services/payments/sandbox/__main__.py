"""`python -m services.payments.sandbox --port 0`: run the PSP sandbox until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from services.payments.sandbox.config import SandboxConfig, is_loopback
from services.payments.sandbox.server import start_sandbox


def _parse(argv: list[str]) -> argparse.Namespace:
    env = SandboxConfig.from_env()
    parser = argparse.ArgumentParser(prog="python -m services.payments.sandbox")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=int, default=env.latency_ms)
    parser.add_argument("--error-rate", type=float, default=env.error_rate)
    parser.add_argument("--timeout-seconds", type=float, default=env.timeout_seconds)
    parser.add_argument("--webhook-url", default=env.webhook_url)
    parser.add_argument(
        "--webhook-secret-file",
        type=Path,
        help="file holding the webhook signing secret (else $SANDBOX_WEBHOOK_SECRET)",
    )
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        parser.error("--host must be a loopback address: the sandbox is for local runs only")
    return args


async def _run(args: argparse.Namespace) -> None:
    secret = os.environ.get("SANDBOX_WEBHOOK_SECRET", "").encode() or None
    if args.webhook_secret_file is not None:
        secret = args.webhook_secret_file.read_bytes().strip()
    config = SandboxConfig(
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        timeout_seconds=args.timeout_seconds,
        webhook_url=args.webhook_url,
    )
    sandbox = await start_sandbox(
        host=args.host, port=args.port, config=config, webhook_secret=secret
    )
    sys.stdout.write(f"listening on {sandbox.url}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await sandbox.close()


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))


if __name__ == "__main__":
    main()
