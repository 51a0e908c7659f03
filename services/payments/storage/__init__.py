"""Payments persistence: PostgreSQL through SQLAlchemy async sessions and psycopg."""
