"""The SQL behind `enable_tenant_isolation`: ENABLE + FORCE RLS and one tenant policy."""

import pytest

from services.chassis.db.rls import (
    disable_tenant_isolation_statements,
    tenant_isolation_statements,
)


def test_isolation_enables_and_forces_row_security_then_adds_the_tenant_policy():
    enable, force, policy = tenant_isolation_statements("journal_entries")

    assert enable == 'ALTER TABLE "journal_entries" ENABLE ROW LEVEL SECURITY'
    assert force == 'ALTER TABLE "journal_entries" FORCE ROW LEVEL SECURITY'
    predicate = "\"tenant_id\" = NULLIF(current_setting('app.tenant_id', true), '')"
    assert policy == (
        'CREATE POLICY tenant_isolation ON "journal_entries" AS PERMISSIVE FOR ALL TO PUBLIC '
        f"USING ({predicate}) WITH CHECK ({predicate})"
    )


def test_the_tenant_column_can_be_named():
    *_, policy = tenant_isolation_statements("invoices", column="owner_tenant")

    assert '"owner_tenant" = NULLIF(' in policy


def test_disabling_drops_the_policy_and_turns_row_security_off():
    assert disable_tenant_isolation_statements("notes") == [
        'DROP POLICY IF EXISTS tenant_isolation ON "notes"',
        'ALTER TABLE "notes" NO FORCE ROW LEVEL SECURITY',
        'ALTER TABLE "notes" DISABLE ROW LEVEL SECURITY',
    ]


@pytest.mark.parametrize("name", ["", "Notes", "notes; DROP TABLE x", 'no"tes', "1notes", "a" * 64])
def test_table_and_column_names_that_are_not_plain_identifiers_are_refused(name):
    with pytest.raises(ValueError, match="identifier"):
        tenant_isolation_statements(name)
    with pytest.raises(ValueError, match="identifier"):
        tenant_isolation_statements("notes", column=name)
