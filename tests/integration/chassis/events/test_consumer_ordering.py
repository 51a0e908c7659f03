"""Per-aggregate order end to end: 2,000 events over 20 aggregates are applied in order."""

import asyncio

import pytest

pytestmark = pytest.mark.integration

AGGREGATES = 20
PER_AGGREGATE = 100


async def test_2000_events_over_20_aggregates_are_applied_in_per_aggregate_order(
    kit, writers_db, running_relay, consumers
):
    subjects = [f"tenants/acme/orders/o{index:02d}" for index in range(AGGREGATES)]
    await consumers(streams=4)
    running_relay()

    # Writers for every aggregate at once, while the relay publishes.
    await asyncio.gather(
        *(
            kit.stage_sequence(
                subject, range(PER_AGGREGATE), database=writers_db, per_transaction=5
            )
            for subject in subjects
        )
    )

    async def all_applied():
        rows = await kit.effects()
        return rows if len(rows) >= AGGREGATES * PER_AGGREGATE else None

    rows = await kit.wait_until(all_applied, timeout_s=90)
    applied: dict[str, list[int]] = {subject: [] for subject in subjects}
    for _, subject, sequence, _ in rows:
        applied[subject].append(sequence)
    assert applied == {subject: list(range(PER_AGGREGATE)) for subject in subjects}
