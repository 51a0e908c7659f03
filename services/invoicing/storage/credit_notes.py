"""Credit notes in PostgreSQL, under their invoice; one per refund by a unique key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.invoicing.domain.credit_notes import CreditNote
from services.invoicing.domain.ports import CreditNotes, Cursor
from services.invoicing.storage.documents import credit_note_from, credit_note_json

_INSERT = text(
    "INSERT INTO credit_notes (tenant_id, credit_note_id, invoice_id, state, number, series,"
    " sequence, refund, total_minor, document, version, create_time, update_time)"
    " VALUES (:tenant, :credit_note_id, :invoice_id, :state, :number, :series, :sequence,"
    " :refund, :total, CAST(:document AS jsonb), :version, :create_time, :update_time)"
)
_UPDATE = text(
    "UPDATE credit_notes SET state = :state, document = CAST(:document AS jsonb),"
    " version = :version, update_time = :update_time"
    " WHERE tenant_id = :tenant AND credit_note_id = :credit_note_id AND version < :version"
)
_GET = (
    "SELECT document FROM credit_notes WHERE tenant_id = :tenant"
    " AND invoice_id = :invoice_id AND credit_note_id = :credit_note_id"
)
_OF_INVOICE = text(
    "SELECT document FROM credit_notes WHERE tenant_id = :tenant AND invoice_id = :invoice_id"
    " ORDER BY create_time, credit_note_id"
)
_BY_REFUND = text(
    "SELECT document FROM credit_notes WHERE tenant_id = :tenant AND refund = :refund"
)
_RECORDING = text(
    "SELECT document FROM credit_notes WHERE tenant_id = :tenant"
    " AND refund = ANY(CAST(:refunds AS text[]))"
)
_NUMBER_TAKEN = text("SELECT 1 FROM credit_notes WHERE tenant_id = :tenant AND number = :number")
_PAGE = text(
    "SELECT document FROM credit_notes WHERE tenant_id = :tenant"
    " AND (CAST(:invoice_id AS text) IS NULL OR invoice_id = :invoice_id)"
    " AND (CAST(:after_time AS timestamptz) IS NULL"
    "      OR (create_time, credit_note_id) < (CAST(:after_time AS timestamptz), :after_id))"
    " ORDER BY create_time DESC, credit_note_id DESC LIMIT :limit"
)
_ISSUED_BETWEEN = text(
    "SELECT document FROM credit_notes WHERE tenant_id = :tenant"
    " AND create_time >= :start AND create_time < :end ORDER BY create_time, credit_note_id"
)


def _columns(tenant: str, note: CreditNote) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "credit_note_id": note.credit_note_id,
        "invoice_id": note.invoice_id,
        "state": note.state.value,
        "number": note.number.number,
        "series": note.number.series,
        "sequence": note.number.sequence,
        "refund": note.refund or None,
        "total": note.total,
        "document": credit_note_json(note),
        "version": note.version,
        "create_time": note.create_time,
        "update_time": note.update_time,
    }


class SqlCreditNotes(CreditNotes):
    def __init__(self, session: AsyncSession, tenant: str) -> None:
        self._session = session
        self._tenant = tenant

    async def _documents(self, statement: Any, **params: Any) -> list[CreditNote]:
        rows = await self._session.execute(statement, {"tenant": self._tenant, **params})
        return [credit_note_from(row.document) for row in rows]

    async def add(self, note: CreditNote) -> None:
        await self._session.execute(_INSERT, _columns(self._tenant, note))

    async def save(self, note: CreditNote) -> None:
        result = await self._session.execute(_UPDATE, _columns(self._tenant, note))
        if getattr(result, "rowcount", 1) != 1:
            raise RuntimeError(f"lost update of {note.name}")

    async def get(
        self, invoice_id: str, credit_note_id: str, *, lock: bool = False
    ) -> CreditNote | None:
        statement = text(_GET + (" FOR UPDATE" if lock else ""))
        found = await self._documents(
            statement, invoice_id=invoice_id, credit_note_id=credit_note_id
        )
        return found[0] if found else None

    async def of_invoice(self, invoice_id: str) -> list[CreditNote]:
        return await self._documents(_OF_INVOICE, invoice_id=invoice_id)

    async def by_refund(self, refund: str) -> CreditNote | None:
        found = await self._documents(_BY_REFUND, refund=refund)
        return found[0] if found else None

    async def number_taken(self, number: str) -> bool:
        found = await self._session.execute(
            _NUMBER_TAKEN, {"tenant": self._tenant, "number": number}
        )
        return found.first() is not None

    async def page(
        self, invoice_id: str | None, after: Cursor | None, size: int
    ) -> list[CreditNote]:
        return await self._documents(
            _PAGE,
            invoice_id=invoice_id,
            after_time=after.create_time if after else None,
            after_id=after.resource_id if after else "",
            limit=size,
        )

    async def issued_between(self, start: datetime, end: datetime) -> list[CreditNote]:
        return await self._documents(_ISSUED_BETWEEN, start=start, end=end)

    async def recording_refunds(self, refunds: Sequence[str]) -> list[CreditNote]:
        return await self._documents(_RECORDING, refunds=list(refunds))
