"""VerifyChain finds what a superuser changed behind the ledger's back."""

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res

pytestmark = pytest.mark.integration


@pytest.fixture
async def superuser(postgres_admin_url, service_database):
    engine = create_async_engine(postgres_admin_url.set(database=service_database.name))
    yield engine
    await engine.dispose()


async def tamper(superuser, statement, **parameters):
    async with superuser.begin() as conn:
        # A superuser can switch the append-only triggers off; the chain still notices.
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text(statement), parameters)


@pytest.fixture
async def five_entries(ledger):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    return [await ledger.post(("cash", 10 * i), ("sales", -10 * i)) for i in range(1, 6)]


async def verify(ledger, **kwargs):
    return await ledger.call("VerifyChain", pb.VerifyChainRequest(parent=ledger.parent, **kwargs))


async def test_altering_a_stored_posting_breaks_the_chain_at_that_entry(
    ledger, five_entries, superuser
):
    assert (await verify(ledger)).result == pb.CHAIN_VERIFICATION_RESULT_OK
    third = five_entries[2]
    await tamper(
        superuser,
        "UPDATE postings SET amount_minor = amount_minor * 10"
        " WHERE tenant_id = :t AND entry_id = :e",
        t=ledger.tenant,
        e=third.name.rsplit("/", 1)[1],
    )
    reply = await verify(ledger)
    assert reply.result == pb.CHAIN_VERIFICATION_RESULT_BROKEN
    assert reply.first_break.journal_entry == third.name
    assert reply.first_break.sequence == 3
    assert reply.first_break.kind == pb.CHAIN_BREAK_KIND_HASH_MISMATCH
    assert reply.first_break.actual_hash == third.hash
    assert reply.entries_checked == 3
    # A range after the tampered entry still verifies from the stored hash before it.
    assert (await verify(ledger, start_sequence=4)).result == pb.CHAIN_VERIFICATION_RESULT_OK


async def test_a_deleted_entry_is_a_sequence_gap(ledger, five_entries, superuser):
    await tamper(
        superuser,
        "DELETE FROM entry_chain WHERE tenant_id = :t AND sequence = 4",
        t=ledger.tenant,
    )
    reply = await verify(ledger)
    assert (reply.result, reply.first_break.kind, reply.first_break.sequence) == (
        pb.CHAIN_VERIFICATION_RESULT_BROKEN,
        pb.CHAIN_BREAK_KIND_SEQUENCE_GAP,
        4,
    )


async def test_a_rehashed_link_is_a_previous_hash_mismatch(ledger, five_entries, superuser):
    await tamper(
        superuser,
        "UPDATE entry_chain SET previous_hash = sha256(previous_hash)"
        " WHERE tenant_id = :t AND sequence = 2",
        t=ledger.tenant,
    )
    reply = await verify(ledger)
    assert reply.first_break.kind == pb.CHAIN_BREAK_KIND_PREVIOUS_HASH_MISMATCH
    assert reply.first_break.journal_entry == five_entries[1].name
    assert reply.first_break.expected_hash == five_entries[0].hash
