"""The ledger poster: sends the journals `ledger_postings_due` holds to the ledger, never in a
user's request, and marks them posted.

A journal's ledger request id is its journal id (UUIDv5 of tenant, document and movement) and
its entry id derives from it, so a journal posted again (a crash between posting and marking,
two posters, a retry after a timeout) is a ledger replay or ENTRY_ALREADY_EXISTS, never a
second entry. Accounts are opened on first use (ACCOUNT_ALREADY_EXISTS is success).
A journal the ledger refuses stays due and is retried with exponential backoff; its last error
is kept on the row (and the backlog is logged) so an operator sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from clients.errors import AlreadyExists, CommerceError
from clients.services import LedgerClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.type.v1.money_pb2 import Money
from services.chassis.db.database import Database
from services.invoicing.domain.journals import Account, AccountKind, Journal, journal_id
from services.invoicing.storage import ledger_queue

log = logging.getLogger(__name__)
METER_NAME = "commerce.invoicing"
_MEASURE_EVERY_SECONDS = 10.0
_REPORT_EVERY_SECONDS = 60.0

_KINDS = {
    AccountKind.ASSET: lres.ACCOUNT_TYPE_ASSET,
    AccountKind.LIABILITY: lres.ACCOUNT_TYPE_LIABILITY,
    AccountKind.REVENUE: lres.ACCOUNT_TYPE_REVENUE,
}


class LedgerPoster:
    """Posts one journal (opening its accounts first) through the typed ledger client."""

    def __init__(self, client: LedgerClient, *, timeout: float = 5.0) -> None:
        self._client = client
        self._timeout = timeout
        self._opened: set[tuple[str, str]] = set()

    async def _open(self, tenant: str, account: Account, currency: str) -> None:
        key = (tenant, account.account_id)
        if key in self._opened:
            return
        request = lpb.CreateAccountRequest(
            parent=f"tenants/{tenant}",
            account_id=account.account_id,
            account=lres.Account(
                code=account.account_id.upper(),
                display_name=account.display_name,
                currency_code=currency,
                type=_KINDS[account.kind],
                metadata={"owner": account.owner},
            ),
            request_id=journal_id(tenant, f"accounts/{account.account_id}", "open"),
        )
        try:
            await self._client.call(self._client.stub.CreateAccount, request, timeout=self._timeout)
        except AlreadyExists as error:
            if error.reason != "ACCOUNT_ALREADY_EXISTS":
                raise
        self._opened.add(key)

    async def post(self, journal: Journal) -> str:
        """Post `journal`; the name of its ledger entry (the first one, on a replay)."""
        parent = f"tenants/{journal.tenant}"
        for line in journal.lines:
            await self._open(journal.tenant, line.account, journal.currency_code)
        request = lpb.CreateJournalEntryRequest(
            parent=parent,
            journal_entry=lres.JournalEntry(
                description=journal.description,
                metadata=journal.metadata,
                postings=[
                    lres.Posting(
                        account=f"{parent}/accounts/{line.account.account_id}",
                        amount=Money(currency_code=journal.currency_code, amount_minor=line.amount),
                    )
                    for line in journal.lines
                ],
            ),
            entry_id=journal.entry_id,
            request_id=journal.journal_id,
        )
        try:
            reply = await self._client.call(
                self._client.stub.CreateJournalEntry, request, timeout=self._timeout
            )
        except AlreadyExists as error:
            if error.reason != "ENTRY_ALREADY_EXISTS":
                raise
            return f"{parent}/entries/{journal.entry_id}"
        return reply.journal_entry.name


class PosterMetrics:
    """`invoicing.ledger.posted` / `.post_failures` (journals) and the backlog gauges
    `invoicing.ledger.backlog` / `.oldest_age` (journals not yet posted; alert on age)."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self.backlog = 0
        self.oldest_age_s = 0.0
        self.posted = meter.create_counter(
            "invoicing.ledger.posted", unit="{journal}", description="Journals the ledger took"
        )
        self.failures = meter.create_counter(
            "invoicing.ledger.post_failures",
            unit="{journal}",
            description="Journal posts the ledger refused or did not answer (retried later)",
        )
        meter.create_observable_gauge(
            "invoicing.ledger.backlog",
            callbacks=[self._observe_backlog],
            unit="{journal}",
            description="Journals waiting to be posted to the ledger",
        )
        meter.create_observable_gauge(
            "invoicing.ledger.oldest_age",
            callbacks=[self._observe_age],
            unit="s",
            description="Age of the oldest journal waiting to be posted",
        )

    def _observe_backlog(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.backlog)

    def _observe_age(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.oldest_age_s)


@dataclass(frozen=True, slots=True)
class PosterSettings:
    batch_size: int = 50
    idle_seconds: float = 1.0
    initial_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0
    # Posted journals are kept this long (to see what was posted when), then pruned.
    retention: timedelta = timedelta(days=30)


class PostingWorker:
    """Scans `ledger_postings_due` (every tenant's) and posts what is due, oldest first."""

    def __init__(
        self,
        database: Database,
        poster: LedgerPoster,
        settings: PosterSettings | None = None,
        *,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._database = database
        self._poster = poster
        self._settings = settings or PosterSettings()
        self.metrics = PosterMetrics(meter_provider)
        self.posted = 0
        self.failed = 0

    def _backoff(self, attempts: int) -> timedelta:
        s = self._settings
        seconds = min(s.max_backoff_seconds, s.initial_backoff_seconds * 2 ** min(attempts, 20))
        return timedelta(seconds=seconds)

    async def run_once(self) -> int:
        """Post one batch of due journals; how many were looked at (0: nothing due)."""
        async with self._database.transaction() as session:
            due = await ledger_queue.claim_due(session, self._settings.batch_size)
            for item in due:
                journal = item.journal
                try:
                    entry = await self._poster.post(journal)
                except CommerceError as error:
                    self.failed += 1
                    self.metrics.failures.add(1, {"reason": error.reason or "UNKNOWN"})
                    log.warning(
                        "ledger refused journal %s (%s of %s): %s %s",
                        journal.journal_id,
                        journal.movement,
                        journal.credit_note or journal.invoice,
                        error.reason,
                        error,
                    )
                    detail = f"{type(error).__name__} {error.reason}: {error}"
                    await ledger_queue.put_off(
                        session, journal, detail, self._backoff(item.attempts)
                    )
                    continue
                await ledger_queue.mark_posted(session, journal, entry)
                self.posted += 1
                self.metrics.posted.add(1, {"movement": journal.movement.split("/")[0]})
        return len(due)

    async def drain(self) -> None:
        """Post until nothing is due now (tests, and a final pass before stopping)."""
        while await self.run_once():
            pass

    async def measure(self) -> tuple[int, float]:
        """Read the backlog into the gauges: (journals due, age of the oldest in seconds)."""
        async with self._database.transaction() as session:
            count, age = await ledger_queue.backlog(session)
        self.metrics.backlog, self.metrics.oldest_age_s = count, age
        return count, age

    async def _housekeeping(self, now: float, last: dict[str, float]) -> None:
        if now - last["measured"] >= _MEASURE_EVERY_SECONDS:
            last["measured"] = now
            count, age = await self.measure()
            stale = count and age >= _REPORT_EVERY_SECONDS
            if stale and now - last["reported"] >= _REPORT_EVERY_SECONDS:
                last["reported"] = now
                log.warning("ledger journals waiting: %d (oldest %.0fs)", count, age)
        if now - last["pruned"] >= _REPORT_EVERY_SECONDS:
            last["pruned"] = now
            async with self._database.transaction() as session:
                await ledger_queue.prune_posted(session, self._settings.retention)

    async def run(self, stop: asyncio.Event) -> None:
        """Post until `stop` is set; idle between scans when nothing was due. Between scans,
        the backlog gauges are refreshed every 10 s, a backlog older than a minute is logged,
        and journals posted longer ago than the retention are pruned once a minute."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        last = {"measured": start - _MEASURE_EVERY_SECONDS, "reported": start, "pruned": start}
        while not stop.is_set():
            try:
                looked = await self.run_once()
                if not looked:
                    await self._housekeeping(loop.time(), last)
            except Exception:  # e.g. a database outage: keep the worker alive, try again
                log.exception("ledger poster scan failed")
                looked = 0
            if looked:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._settings.idle_seconds)
