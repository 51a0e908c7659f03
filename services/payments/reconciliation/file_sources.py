"""ReconciliationSources from a JSON export, for offline runs of the CLI (no mesh needed).

    {"payment_operations": [{"operation_id": "...", "kind": "capture", "payment": "...",
                             "payment_reference": "...", "amount_minor": 1000,
                             "currency": "USD", "refund": "", "psp_reference": "",
                             "occurred_at": "2026-11-20T10:00:00Z"}],
     "ledger_entries": [{"entry": "...", "operation_id": "...", "kind": "capture",
                         "payment": "...", "amount_minor": 1000, "currency": "USD"}]}

Amounts are integers of minor units (a JSON number with a fraction is refused). Operations
and entries outside the requested period are left out, as the gRPC adapter does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from services.payments.domain.reconciliation import (
    LedgerEntry,
    OperationKind,
    PaymentOperation,
    Period,
    ReconciliationInputError,
)


class SourcesFileError(ValueError):
    """The JSON sources file is unreadable or does not follow the format."""


class _Operation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    operation_id: str = Field(min_length=1)
    kind: OperationKind = Field(strict=False)
    payment: str
    payment_reference: str
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    refund: str = ""
    psp_reference: str = ""
    occurred_at: AwareDatetime | None = Field(default=None, strict=False)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    entry: str = Field(min_length=1)
    operation_id: str = ""
    kind: OperationKind = Field(strict=False)
    payment: str = ""
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    refund: str = ""
    committed_at: AwareDatetime | None = Field(default=None, strict=False)


class _Sources(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    payment_operations: list[_Operation]
    ledger_entries: list[_Entry]


def _within(period: Period, moment: datetime | None) -> bool:
    return moment is None or period.contains(moment)


class JsonFileSources:
    """Both sides read from one JSON file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        try:
            self._data = _Sources.model_validate_json(path.read_bytes())
        except OSError as exc:
            msg = f"cannot read {path}: {exc.strerror or exc}"
            raise SourcesFileError(msg) from exc
        except ValidationError as exc:
            msg = f"{path} does not follow the sources format:\n{exc}"
            raise SourcesFileError(msg) from exc

    async def payment_operations(self, psp: str, period: Period) -> Sequence[PaymentOperation]:
        del psp  # the export is of one PSP already
        try:
            return [
                PaymentOperation(**op.model_dump())
                for op in self._data.payment_operations
                if _within(period, op.occurred_at)
            ]
        except ReconciliationInputError as exc:
            raise SourcesFileError(str(exc)) from exc

    async def ledger_entries(self, psp: str, period: Period) -> Sequence[LedgerEntry]:
        del psp
        try:
            return [
                LedgerEntry(**entry.model_dump(exclude={"committed_at"}))
                for entry in self._data.ledger_entries
                if _within(period, entry.committed_at)
            ]
        except ReconciliationInputError as exc:
            raise SourcesFileError(str(exc)) from exc
