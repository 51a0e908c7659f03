"""Typed database settings from the environment; malformed values fail at start-up.

`COMMERCE_<SERVICE>_DATABASE_*` overrides `COMMERCE_DATABASE_*` field by field. With no URL
configured, the caller starts the embedded PostgreSQL (see `embedded.py`).
"""

from __future__ import annotations

import re
from typing import Annotated

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# Service names become database and role names (`<service>_owner`), so they stay plain
# lower-case SQL identifiers well under PostgreSQL's 63-byte limit.
_SERVICE_NAME = re.compile(r"[a-z][a-z0-9_]{1,39}")
_POSTGRES_DRIVERS = frozenset({"postgres", "postgresql", "postgresql+psycopg"})
DRIVER = "postgresql+psycopg"
GENERAL_ENV_PREFIX = "COMMERCE_DATABASE_"


def validate_service_name(service: str) -> str:
    """Return `service` if it can name a database and its roles, else raise ValueError."""
    if _SERVICE_NAME.fullmatch(service) is None:
        raise ValueError(
            f"invalid service name {service[:64]!r}: expected lower-case letters, digits and "
            "underscores, starting with a letter, 2-40 characters"
        )
    return service


def normalize_postgres_url(url: str | URL) -> URL:
    """Parse a PostgreSQL URL and pin the psycopg 3 driver; never echoes the URL in errors."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # The URL may carry a password: say what is wrong without repeating it.
        raise ValueError("not a database URL (expected postgresql+psycopg://...)") from None
    if parsed.drivername not in _POSTGRES_DRIVERS:
        raise ValueError(
            f"unsupported database driver {parsed.drivername!r}: expected postgresql+psycopg"
        )
    if not parsed.database:
        raise ValueError("the database URL names no database")
    return parsed.set(drivername=DRIVER)


def libpq_conninfo(url: str | URL) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL (socket hosts included)."""
    parsed = normalize_postgres_url(url)
    params = {key: value for key, value in parsed.query.items() if isinstance(value, str)}
    named = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    params.update({key: str(value) for key, value in named.items() if value is not None})
    return make_conninfo(**params)


def service_env_prefix(service: str) -> str:
    """`ledger` -> `COMMERCE_LEDGER_DATABASE_`."""
    return f"COMMERCE_{validate_service_name(service).upper()}_DATABASE_"


class DatabaseSettings(BaseSettings):
    """Where and how a service connects: `url` as the app role, `owner_url` for migrations."""

    model_config = SettingsConfigDict(
        env_prefix=GENERAL_ENV_PREFIX,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        # Inputs may be URLs with passwords: validation errors must not repeat them.
        hide_input_in_errors=True,
    )

    url: SecretStr | None = None
    owner_url: SecretStr | None = None
    pool_size: Annotated[int, Field(ge=1, le=100)] = 5
    max_overflow: Annotated[int, Field(ge=0, le=100)] = 5
    statement_timeout_ms: Annotated[int, Field(ge=1, le=3_600_000)] = 30_000

    @field_validator("url", "owner_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        normalized = normalize_postgres_url(value.get_secret_value())
        return SecretStr(normalized.render_as_string(hide_password=False))

    def sqlalchemy_url(self) -> URL | None:
        """The app URL as a SQLAlchemy URL (its str() masks the password), or None if unset."""
        return None if self.url is None else make_url(self.url.get_secret_value())

    def sqlalchemy_owner_url(self) -> URL | None:
        """The owner URL as a SQLAlchemy URL, or None if unset."""
        return None if self.owner_url is None else make_url(self.owner_url.get_secret_value())


def load_database_settings(service: str) -> DatabaseSettings:
    """Read `COMMERCE_DATABASE_*`, then let `COMMERCE_<SERVICE>_DATABASE_*` override it."""
    general = DatabaseSettings()
    specific = DatabaseSettings(_env_prefix=service_env_prefix(service))
    overrides = {name: getattr(specific, name) for name in specific.model_fields_set}
    return general.model_copy(update=overrides)
