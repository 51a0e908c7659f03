"""The load: `ghz` (a Go process, not sharing the server's GIL) with per-request templated data.

Every request is new: ghz renders the data template per call (`newUUID` for request ids,
`randomInt` for accounts, the request number for amounts), so no two requests share an id
or an entry and the server does all of its work for each. Accounts come in two sets of 100
(`d*` debited, `c*` credited): 200 accounts, random pairs, no hot account — as the
in-process bench had.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
SIDE = 100  # accounts per side: d0..d99 are debited, c0..c99 credited
SINGLE = "commerce.ledger.v1.LedgerService/CreateJournalEntry"
BATCH = "commerce.ledger.v1.LedgerService/BatchCreateJournalEntries"
# `--duration-stop wait`: when the time is up ghz waits for the calls in flight and counts them
# (a 32-client batch run has up to 32 batches in flight: cut, their server CPU would count and
# their entries not). Should a transport still close at the end, it is not the server's error.
CUT_AT_END = re.compile(
    r"transport is closing|client connection is closing|context canceled|use of closed network"
)


def account_ids() -> list[str]:
    return [f"{side}{i}" for side in ("d", "c") for i in range(SIDE)]


def _entry(parent: str, n: int) -> str:
    """One CreateJournalEntryRequest as a ghz template, the `n`th of its request.

    ghz renders each JSON string on its own (no variable spans two), so both postings take
    their amount from the request number: `<n+1><request number>` (never zero, a different
    amount per request and per entry of a batch); the accounts are drawn independently.
    """
    amount = f"{n + 1}{{{{.RequestNumber}}}}"
    return (
        f'{{"parent":"{parent}","request_id":"{{{{newUUID}}}}",'
        f'"journal_entry":{{"postings":['
        f'{{"account":"{parent}/accounts/d{{{{randomInt 0 {SIDE}}}}}",'
        f'"amount":{{"currency_code":"USD","amount_minor":"{amount}"}}}},'
        f'{{"account":"{parent}/accounts/c{{{{randomInt 0 {SIDE}}}}}",'
        f'"amount":{{"currency_code":"USD","amount_minor":"-{amount}"}}}}]}}}}'
    )


def single_template(parent: str) -> str:
    return _entry(parent, 0)


def batch_template(parent: str, size: int) -> str:
    items = ",".join(_entry(parent, n) for n in range(size))
    return f'{{"parent":"{parent}","request_id":"{{{{newUUID}}}}","requests":[{items}]}}'


def protoset(directory: Path) -> Path:
    """The contracts as a descriptor set for ghz (Python's reflection does not resolve the
    method symbols ghz looks up)."""
    path = directory / "commerce.binpb"
    subprocess.run(  # noqa: S603 - the pinned buf CLI
        [str(ROOT / "node_modules/.bin/buf"), "build", "proto", "-o", str(path)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    return path


@dataclass(frozen=True)
class Load:
    """One ghz run: calls that succeeded and how long the run took."""

    ok_calls: int
    errors: int
    seconds: float
    error_kinds: dict[str, int]


def ghz(  # noqa: PLR0917 - one run's whole description
    port: int,
    call: str,
    template: str,
    token: str,
    concurrency: int,
    seconds: float,
    descriptors: Path,
) -> Load:
    started = time.perf_counter()
    out = subprocess.run(  # noqa: S603 - the pinned load tool `make bench` installs
        [str(TOOLS / "ghz"), "--insecure", "--protoset", str(descriptors), "--call", call,
         "-d", template, "-m", json.dumps({"authorization": f"Bearer {token}"}),
         "-c", str(concurrency), "-z", f"{seconds}s", "--duration-stop", "wait",
         "--format", "json",
         f"127.0.0.1:{port}"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if out.returncode != 0 and not out.stdout.strip():
        raise RuntimeError(f"ghz failed: {out.stderr.strip()}")
    report = json.loads(out.stdout)
    codes: dict[str, int] = report.get("statusCodeDistribution", {})
    kinds: dict[str, int] = report.get("errorDistribution", {}) or {}
    cut = sum(n for message, n in kinds.items() if CUT_AT_END.search(message))
    errors = sum(n for code, n in codes.items() if code != "OK") - cut
    total_ns = report.get("total") or wall * 1e9
    return Load(codes.get("OK", 0), errors, total_ns / 1e9, kinds)
