"""Integration fixtures: one real PostgreSQL per session, one fresh service database per module.

`COMMERCE_TEST_DATABASE_URL` (a superuser URL, e.g. a CI service container) replaces the
embedded server. Otherwise the pgserver-embedded PostgreSQL runs in a private temporary
directory: not under pytest's basetemp, which concurrent pytest runs rotate and delete.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.provision import drop_service_database, provision_service_database
from services.chassis.db.settings import normalize_postgres_url


@pytest.fixture(scope="session")
def postgres_admin_url():
    """Superuser URL (`sqlalchemy.URL`) of a real PostgreSQL shared by the whole session."""
    configured = os.environ.get("COMMERCE_TEST_DATABASE_URL")
    if configured:
        yield normalize_postgres_url(configured)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="commerce-pg-"))
    server = EmbeddedPostgres(data_dir)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass(frozen=True)
class ServiceDatabaseUnderTest:
    """A freshly provisioned service database: the app role's `Database` and both URLs."""

    name: str
    database: Database
    owner_url: URL
    app_url: URL


def _service_name(module_name: str) -> str:
    # Unique per run, so a shared COMMERCE_TEST_DATABASE_URL server never sees a clash.
    stem = re.sub(r"[^a-z0-9]+", "_", module_name.rsplit(".", 1)[-1].lower()).strip("_")
    return f"t_{stem[:26]}_{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
async def service_database(postgres_admin_url, request):
    """A new database per test module, with `<name>_owner` and `<name>_app` roles; dropped after."""
    name = _service_name(request.module.__name__)
    provisioned = await provision_service_database(postgres_admin_url, name)
    database = Database.connect(provisioned.app_url, pool_size=2, max_overflow=0)
    try:
        yield ServiceDatabaseUnderTest(
            name=name,
            database=database,
            owner_url=provisioned.owner_url,
            app_url=provisioned.app_url,
        )
    finally:
        await database.dispose()
        await drop_service_database(postgres_admin_url, name)
