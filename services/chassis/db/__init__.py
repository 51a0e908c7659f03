"""Database chassis: embedded PostgreSQL, provisioning, tenant-scoped sessions, migrations."""
