"""PostgreSQL adapters of the ledger's ports: repositories, unit of work, migrations."""
