"""The ports reconciliation reads through: the settlement report, payments' side, the ledger's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.payments.domain.reconciliation import LedgerEntry, PaymentOperation, Period


class ReportUnavailableError(Exception):
    """The settlement report could not be fetched (not found, refused location, I/O error)."""


class SettlementReports(Protocol):
    """Where settlement reports come from: a URI or a PSP report id, read as CSV text."""

    async def fetch(self, psp: str, location: str) -> str:
        """The report's CSV text; ReportUnavailableError when it cannot be had."""
        ...


class ReconciliationSources(Protocol):
    """Payments' and the ledger's records of one PSP's money movements in a period."""

    async def payment_operations(self, psp: str, period: Period) -> Sequence[PaymentOperation]:
        """Captures, refunds and chargebacks payments recorded with `psp` in `period`."""
        ...

    async def ledger_entries(self, psp: str, period: Period) -> Sequence[LedgerEntry]:
        """Ledger entries that record those operations (metadata `psp` = `psp`) in `period`."""
        ...
