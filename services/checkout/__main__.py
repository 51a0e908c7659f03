"""`python -m services.checkout [serve|relay|recover]`: the checkout service, its outbox relay,
or its saga recovery worker, until SIGTERM."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from services.checkout.bootstrap import recover, relay, serve

COMMANDS = {"serve": serve, "relay": relay, "recover": recover}


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    command = args[0] if args else "serve"
    if command not in COMMANDS:
        sys.exit("usage: python -m services.checkout [serve|relay|recover]")
    asyncio.run(COMMANDS[command]())


def run(command: str, environment: Mapping[str, str]) -> None:
    """The same process started from an already warm interpreter (a multiprocessing
    forkserver), with its own `COMMERCE_CHECKOUT_*` environment: how the crash-matrix tests
    start, kill and restart checkout processes without paying the import time each run."""
    os.environ.update(environment)
    main([command])


if __name__ == "__main__":
    main()
