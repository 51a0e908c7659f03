"""Database settings: read from the environment, normalised, and refused early when malformed."""

import os

import pytest
from pydantic import ValidationError

from services.chassis.db.database import Database, DatabaseNotConfiguredError
from services.chassis.db.settings import (
    DatabaseSettings,
    libpq_conninfo,
    load_database_settings,
    normalize_postgres_url,
    service_env_prefix,
    validate_service_name,
)

SECRET = "s3cr3t-pa55"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("COMMERCE_"):
            monkeypatch.delenv(name)


def test_without_any_url_the_settings_say_start_the_embedded_server():
    settings = load_database_settings("ledger")

    assert settings.url is None
    assert settings.sqlalchemy_url() is None
    assert (settings.pool_size, settings.statement_timeout_ms) == (5, 30_000)


def test_general_url_is_read_and_pinned_to_psycopg(monkeypatch):
    monkeypatch.setenv("COMMERCE_DATABASE_URL", f"postgresql://app:{SECRET}@db:5432/ledger")

    url = load_database_settings("ledger").sqlalchemy_url()

    assert url is not None
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.password) == ("db", 5432, "ledger", SECRET)


def test_service_specific_values_override_the_general_ones_field_by_field(monkeypatch):
    monkeypatch.setenv("COMMERCE_DATABASE_URL", "postgresql+psycopg://app@db/shared")
    monkeypatch.setenv("COMMERCE_DATABASE_POOL_SIZE", "7")
    monkeypatch.setenv("COMMERCE_LEDGER_DATABASE_URL", "postgresql+psycopg://ledger_app@db/ledger")
    monkeypatch.setenv("COMMERCE_LEDGER_DATABASE_STATEMENT_TIMEOUT_MS", "1500")

    ledger = load_database_settings("ledger")
    payments = load_database_settings("payments")

    ledger_url, payments_url = ledger.sqlalchemy_url(), payments.sqlalchemy_url()
    assert ledger_url is not None
    assert ledger_url.database == "ledger"
    assert (ledger.pool_size, ledger.statement_timeout_ms) == (7, 1500)
    assert payments_url is not None
    assert payments_url.database == "shared"
    assert payments.statement_timeout_ms == 30_000


def test_an_empty_url_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("COMMERCE_DATABASE_URL", "")

    assert load_database_settings("ledger").url is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("COMMERCE_DATABASE_URL", "sqlite:///ledger.db"),
        ("COMMERCE_DATABASE_URL", "postgresql+asyncpg://app@db/ledger"),
        ("COMMERCE_DATABASE_URL", f"postgresql://app:{SECRET}@db"),  # no database
        ("COMMERCE_DATABASE_URL", f"::{SECRET}::not a url"),
        ("COMMERCE_DATABASE_OWNER_URL", "mysql://owner@db/ledger"),
        ("COMMERCE_DATABASE_POOL_SIZE", "0"),
        ("COMMERCE_DATABASE_POOL_SIZE", "many"),
        ("COMMERCE_DATABASE_MAX_OVERFLOW", "-1"),
        ("COMMERCE_DATABASE_STATEMENT_TIMEOUT_MS", "0"),
        ("COMMERCE_LEDGER_DATABASE_STATEMENT_TIMEOUT_MS", "soon"),
    ],
)
def test_malformed_values_fail_at_load_without_echoing_secrets(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as failure:
        load_database_settings("ledger")

    assert SECRET not in str(failure.value)


def test_the_url_is_kept_secret_when_settings_are_printed(monkeypatch):
    monkeypatch.setenv("COMMERCE_DATABASE_URL", f"postgresql://app:{SECRET}@db/ledger")

    settings = load_database_settings("ledger")

    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.sqlalchemy_url())


def test_settings_are_immutable():
    settings = DatabaseSettings()
    with pytest.raises(ValidationError):
        settings.pool_size = 50  # type: ignore[misc] # the point: frozen settings refuse it


@pytest.mark.parametrize("service", ["ledger", "payments", "t_db_1"])
def test_valid_service_names_give_an_upper_case_env_prefix(service):
    assert service_env_prefix(service) == f"COMMERCE_{service.upper()}_DATABASE_"
    assert validate_service_name(service) == service


@pytest.mark.parametrize(
    "service", ["", "l", "Ledger", "1ledger", "ledger-v2", 'x"; DROP', "a" * 41, "ledger\n"]
)
def test_service_names_that_cannot_name_a_database_and_roles_are_refused(service):
    with pytest.raises(ValueError, match="invalid service name"):
        validate_service_name(service)


def test_libpq_conninfo_keeps_the_unix_socket_directory_and_port():
    url = normalize_postgres_url("postgresql://postgres@/postgres?host=/run/pg&port=5433")

    conninfo = libpq_conninfo(url)

    assert set(conninfo.split()) == {
        "host=/run/pg",
        "port=5433",
        "user=postgres",
        "dbname=postgres",
    }


def test_database_from_settings_without_any_url_is_an_error():
    with pytest.raises(DatabaseNotConfiguredError):
        Database.from_settings(DatabaseSettings())


async def test_database_from_settings_builds_an_engine_without_connecting(monkeypatch):
    # Nothing listens on port 9; building the engine must not try to connect.
    monkeypatch.setenv("COMMERCE_DATABASE_URL", "postgresql://app:pw@127.0.0.1:9/ledger")
    monkeypatch.setenv("COMMERCE_DATABASE_POOL_SIZE", "3")

    database = Database.from_settings(load_database_settings("ledger"))
    try:
        assert database.engine.url.database == "ledger"
        assert database.engine.pool.size() == 3  # type: ignore[attr-defined] # QueuePool
    finally:
        await database.dispose()
