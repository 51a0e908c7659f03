"""Alembic helpers that put a table under per-tenant row-level security keyed on app.tenant_id.

Rows are visible and writable only when their tenant column equals the transaction's
`app.tenant_id` (set by `Database.tenant_transaction`). With no tenant set, nothing is visible
and every insert is refused. FORCE makes the policy bind the table owner too; only superusers
and BYPASSRLS roles skip it, and services connect as neither.
"""

from __future__ import annotations

import re

from alembic import op

TENANT_SETTING = "app.tenant_id"
POLICY_NAME = "tenant_isolation"

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# NULLIF: once a transaction-local setting has been used on a connection, later transactions
# read '' rather than NULL; '' must not match a row whose tenant column is ''.
# The tenant of the current transaction, NULL when none is set (also after a pooled
# connection's earlier transaction set one: current_setting then returns '').
CURRENT_TENANT = f"NULLIF(current_setting('{TENANT_SETTING}', true), '')"


def _identifier(name: str) -> str:
    if _IDENTIFIER.fullmatch(name) is None:
        raise ValueError(f"not a plain lower-case SQL identifier: {name[:80]!r}")
    return f'"{name}"'


def tenant_isolation_statements(table_name: str, *, column: str = "tenant_id") -> list[str]:
    """The SQL `enable_tenant_isolation` runs, for review or for use outside Alembic."""
    table = _identifier(table_name)
    predicate = f"{_identifier(column)} = {CURRENT_TENANT}"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        (
            f"CREATE POLICY {POLICY_NAME} ON {table} AS PERMISSIVE FOR ALL TO PUBLIC "
            f"USING ({predicate}) WITH CHECK ({predicate})"
        ),
    ]


def disable_tenant_isolation_statements(table_name: str) -> list[str]:
    """The inverse of `tenant_isolation_statements`, for downgrades."""
    table = _identifier(table_name)
    return [
        f"DROP POLICY IF EXISTS {POLICY_NAME} ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def enable_tenant_isolation(table_name: str, *, column: str = "tenant_id") -> None:
    """In a migration: ENABLE + FORCE RLS on `table_name` with the tenant policy."""
    for statement in tenant_isolation_statements(table_name, column=column):
        op.execute(statement)


def disable_tenant_isolation(table_name: str) -> None:
    """In a downgrade: drop the tenant policy and turn RLS off again."""
    for statement in disable_tenant_isolation_statements(table_name):
        op.execute(statement)
