"""`python -m services.payments [serve|relay]`: the payments service, or its outbox relay."""

from __future__ import annotations

import asyncio
import sys

from services.payments.bootstrap import relay, serve


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command not in {"serve", "relay"}:
        sys.exit("usage: python -m services.payments [serve|relay]")
    asyncio.run(serve() if command == "serve" else relay())


if __name__ == "__main__":
    main()
