"""`python -m services.invoicing [serve|relay|consume|post-ledger|tie-out ...]`: the service,
its outbox relay, its event consumer, its ledger poster (each until SIGTERM), or a one-off
tie-out report."""

from __future__ import annotations

import asyncio
import sys

from services.invoicing.bootstrap import consume, post_ledger, relay, serve

USAGE = "usage: python -m services.invoicing [serve|relay|consume|post-ledger|tie-out ...]"
COMMANDS = {"serve": serve, "relay": relay, "consume": consume, "post-ledger": post_ledger}


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command == "tie-out":
        from services.invoicing.cli import main as tie_out_cli  # noqa: PLC0415 - CLI-only import

        sys.exit(tie_out_cli(sys.argv[2:]))
    if command not in COMMANDS:
        sys.exit(USAGE)
    asyncio.run(COMMANDS[command]())


if __name__ == "__main__":
    main()
