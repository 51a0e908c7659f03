"""PostgreSQL adapters of the invoicing ports."""
