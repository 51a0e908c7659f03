"""The benchmark's world: a real PostgreSQL, a migrated service database, the Pub/Sub emulator."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import drop_service_database, provision_service_database
from services.chassis.db.settings import normalize_postgres_url
from services.chassis.events.emulator import EMULATOR_HOST_ENV, PubSubEmulator

MIGRATIONS = Path(__file__).parent / "migrations"
ADMIN_URL_ENV = "COMMERCE_BENCH_DATABASE_URL"
PROJECT = "commerce-bench"


@dataclass(frozen=True)
class BenchEnvironment:
    """Where the benchmark runs: the service database (app role) and the emulator's project."""

    app_url: URL
    project: str
    emulator_host: str

    def connect(self, pool_size: int) -> Database:
        return Database.connect(self.app_url, pool_size=pool_size, max_overflow=0)


@asynccontextmanager
async def bench_environment() -> AsyncIterator[BenchEnvironment]:
    """Start (or reuse, via COMMERCE_BENCH_DATABASE_URL) PostgreSQL and the emulator."""
    configured = os.environ.get(ADMIN_URL_ENV)
    data_dir = None if configured else Path(tempfile.mkdtemp(prefix="commerce-bench-pg-"))
    server = EmbeddedPostgres(data_dir) if data_dir else None
    admin = normalize_postgres_url(configured) if configured else None
    name = f"bench_events_{secrets.token_hex(3)}"
    try:
        if server is not None:
            admin = server.start()
        assert admin is not None
        provisioned = await provision_service_database(admin, name)
        try:
            await upgrade(provisioned.owner_url, MIGRATIONS)
            with PubSubEmulator() as emulator:
                os.environ[EMULATOR_HOST_ENV] = emulator.host
                yield BenchEnvironment(provisioned.app_url, PROJECT, emulator.host)
        finally:
            await drop_service_database(admin, name)
    finally:
        if server is not None and data_dir is not None:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
