"""The outbox and inbox tables and their row-level security, as migrations create them."""

import pytest

from commerce.ledger.v1.events_pb2 import JournalEntryPosted
from services.chassis.events.outbox import (
    confine_event_tables_statements,
    event_table_policy_statements,
    event_type,
    inbox_table,
    outbox_table,
)


def test_the_outbox_keeps_everything_a_cloudevent_needs():
    assert {c.name for c in outbox_table.columns} >= {
        "position", "event_id", "tenant_id", "subject", "type", "source", "time", "data",
        "traceparent", "tracestate", "created_at", "published_at",
    }  # fmt: skip


def test_the_inbox_is_keyed_by_consumer_and_event_id():
    assert [c.name for c in inbox_table.primary_key.columns] == ["consumer", "event_id"]


def test_inserts_are_checked_against_the_transactions_tenant_and_reads_are_open():
    statements = event_table_policy_statements("outbox")
    assert "ALTER TABLE outbox FORCE ROW LEVEL SECURITY" in statements
    [insert] = [s for s in statements if "FOR INSERT" in s]
    assert "WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))" in insert
    assert any("FOR SELECT TO PUBLIC USING (true)" in s for s in statements)


def test_only_the_event_tables_get_these_policies():
    with pytest.raises(ValueError, match="event table"):
        event_table_policy_statements("orders")


def test_the_event_type_is_the_full_proto_name():
    assert event_type(JournalEntryPosted()) == "commerce.ledger.v1.JournalEntryPosted"


def test_confining_gives_tenants_their_own_rows_and_the_relay_role_all_of_them():
    statements = confine_event_tables_statements("ledger_relay")
    assert "DROP POLICY IF EXISTS outbox_read_all ON outbox" in statements
    assert (
        "CREATE POLICY outbox_read_own_tenant ON outbox FOR SELECT TO PUBLIC "
        "USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))"
    ) in statements
    assert 'GRANT SELECT, UPDATE (published_at), DELETE ON outbox TO "ledger_relay"' in statements
    relay_policies = [s for s in statements if 'TO "ledger_relay" USING' in s]
    assert len(relay_policies) == 5  # outbox: read, update, delete; inbox: read, delete
    assert not any("FOR INSERT" in s for s in statements)


def test_confining_refuses_an_odd_role_name():
    with pytest.raises(ValueError, match="role name"):
        confine_event_tables_statements('x"; DROP TABLE outbox; --')
