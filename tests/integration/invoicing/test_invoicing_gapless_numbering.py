"""Gapless numbering under concurrency: 1,000 invoices issued by 8 concurrent workers for one
tenant get 1..1,000 exactly (rolled-back issues give their number back), another tenant's series
runs independently, and a numbering config change that would repeat a number is refused."""

import asyncio
import time
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import numbering_pb2 as nb
from services.chassis.db.database import Database
from services.invoicing.domain import usecases
from services.invoicing.domain.invoices import Customer, DraftContent, InvoiceLine
from services.invoicing.domain.numbering import DocumentKind
from services.invoicing.storage.unit_of_work import SqlTransactionRunner

pytestmark = pytest.mark.integration

CONTENT = DraftContent(Customer("c-1"), (InvoiceLine.priced("1", "Widget", 1, 100),))


class Aborted(Exception):
    """A use case that fails after taking its number."""


async def _drafts(runner, tenant, count):
    async def create(uow):
        return [
            (await usecases.create_invoice(uow, "EUR", CONTENT)).invoice_id for _ in range(count)
        ]

    return await runner.run(tenant, create)


async def _issue_all(runner, tenant, ids, workers):
    queue = list(ids)
    numbers = []

    async def worker():
        while queue:
            invoice_id = queue.pop()
            invoice = await runner.run(
                tenant, lambda uow, i=invoice_id: usecases.issue_invoice(uow, i, "")
            )
            numbers.append((invoice.number.series, invoice.number.sequence, invoice.number.number))

    async def failing_issuer():
        # Takes a number in a transaction that then rolls back: the number must come back.
        for _ in range(25):

            async def take_and_fail(uow):
                await usecases.draw_number(uow, DocumentKind.INVOICE, uow.now())
                raise Aborted

            with pytest.raises(Aborted):
                await runner.run(tenant, take_and_fail)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(workers)), failing_issuer())
    return numbers


async def test_1000_concurrent_issues_get_1_to_1000_and_tenants_are_independent(invoicing_db):
    database = Database.connect(invoicing_db.app_url, pool_size=12, max_overflow=4)
    runner = SqlTransactionRunner(database)
    try:
        busy, quiet = "tbusy-numbers", "tquiet-numbers"
        busy_ids = await _drafts(runner, busy, 1000)
        quiet_ids = await _drafts(runner, quiet, 100)
        started = time.monotonic()
        busy_numbers, quiet_numbers = await asyncio.gather(
            _issue_all(runner, busy, busy_ids, workers=8),
            _issue_all(runner, quiet, quiet_ids, workers=2),
        )
        elapsed = time.monotonic() - started
    finally:
        await database.dispose()
    year = datetime.now(UTC).year
    assert sorted(seq for _, seq, _ in busy_numbers) == list(range(1, 1001))
    assert sorted(seq for _, seq, _ in quiet_numbers) == list(range(1, 101))
    assert {series for series, _, _ in busy_numbers} == {f"INV/{year}"}
    assert len({number for _, _, number in busy_numbers}) == 1000
    assert f"INV-{year}-001000" in {number for _, _, number in busy_numbers}
    message = f"issued 1100 invoices (8 + 2 workers, 50 rolled-back draws) in {elapsed:.2f}s"
    print(message)  # noqa: T201 - the measured figure, shown with -s


async def test_a_tenant_numbering_format_applies_to_later_documents(invoicing):
    config = (
        await invoicing.call(
            "GetNumberingConfig",
            pb.GetNumberingConfigRequest(name=f"{invoicing.parent}/numberingConfig"),
        )
    ).numbering_config
    assert config.invoice_series.format == "{prefix}-{year}-{seq:06}"
    assert config.invoice_series.next_sequence == 1
    first = await invoicing.issued()
    updated = await invoicing.call(
        "UpdateNumberingConfig",
        pb.UpdateNumberingConfigRequest(
            numbering_config=nb.NumberingConfig(
                name=f"{invoicing.parent}/numberingConfig",
                invoice_series=nb.NumberingSeries(
                    prefix="ACME",
                    format="{prefix}/{yy}{month}/{seq:04}",
                    reset=nb.SEQUENCE_RESET_MONTHLY,
                    start_sequence=500,
                ),
                etag=config.etag,
            ),
            update_mask=FieldMask(paths=["invoice_series"]),
            request_id=invoicing.rid(),
        ),
    )
    assert updated.numbering_config.invoice_series.next_sequence == 500
    second = await invoicing.issued()
    issued = second.issue_time.ToDatetime()
    assert second.number == f"ACME/{issued:%y%m}/0500"
    assert second.series == f"ACME/{issued:%Y-%m}"
    assert first.number.startswith("INV-")


async def test_a_config_change_that_would_repeat_an_issued_number_is_refused(invoicing):
    first = await invoicing.issued()
    year = first.issue_time.ToDatetime().year
    # A yearly INV series numbered 1, formatted without the year: INV-000001 is new text, but
    # a NEVER-reset series starting over at 1 with the same format as an issued number repeats.
    await invoicing.call(
        "UpdateNumberingConfig",
        pb.UpdateNumberingConfigRequest(
            numbering_config=nb.NumberingConfig(
                name=f"{invoicing.parent}/numberingConfig",
                invoice_series=nb.NumberingSeries(
                    prefix="X", format="{prefix}-{seq:03}", reset=nb.SEQUENCE_RESET_NEVER
                ),
            ),
            update_mask=FieldMask(paths=["invoice_series"]),
            request_id=invoicing.rid(),
        ),
    )
    x1 = await invoicing.issued()
    assert x1.number == "X-001"
    code, info = await invoicing.fails(
        "UpdateNumberingConfig",
        pb.UpdateNumberingConfigRequest(
            numbering_config=nb.NumberingConfig(
                name=f"{invoicing.parent}/numberingConfig",
                invoice_series=nb.NumberingSeries(
                    prefix="INV",
                    format=f"{{prefix}}-{year}-{{seq:06}}",
                    reset=nb.SEQUENCE_RESET_NEVER,
                ),
            ),
            update_mask=FieldMask(paths=["invoice_series"]),
            request_id=invoicing.rid(),
        ),
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NUMBERING_FORMAT_CONFLICT")
    assert info.metadata["number"] == first.number


async def test_an_unknown_time_zone_is_refused_with_the_field(invoicing):
    code, info = await invoicing.fails(
        "UpdateNumberingConfig",
        pb.UpdateNumberingConfigRequest(
            numbering_config=nb.NumberingConfig(
                name=f"{invoicing.parent}/numberingConfig", time_zone="Mars/Olympus_Mons"
            ),
            update_mask=FieldMask(paths=["time_zone"]),
            request_id=invoicing.rid(),
        ),
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
