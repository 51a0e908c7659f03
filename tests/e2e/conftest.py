"""End-to-end fixtures: the whole local mesh (services/localmesh.py) once per session, on free
loopback ports with a private data directory, and HTTP clients for its REST gateway."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.localmesh import DEV_PORTS, LocalMesh, free_ports
from tests.e2e.support import FUZZ_REQUESTS, running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FUZZ_REQUESTS:
        terminalreporter.write_line(
            f"schemathesis: {len(FUZZ_REQUESTS)} generated requests "
            f"over {len(set(FUZZ_REQUESTS))} operations"
        )


@pytest.fixture(scope="session")
async def mesh() -> AsyncIterator[LocalMesh]:
    """Every part of the mesh that exists, healthy; stopped (and checked) at the end.

    COMMERCE_E2E_ONLY=pubsub,ledger,gateway runs the tests against just those parts.
    """
    only = os.environ.get("COMMERCE_E2E_ONLY")
    data_dir = Path(tempfile.mkdtemp(prefix="commerce-e2e-"))
    key_file = data_dir / "jwt.key"
    key_file.write_text(secrets.token_urlsafe(48))
    passwords: dict[str, str] = {}
    mesh = LocalMesh(
        data_dir=data_dir,
        ports=free_ports(DEV_PORTS),
        jwt_key_file=key_file,
        secret=lambda name: passwords.setdefault(name, secrets.token_urlsafe(24)),
        only=frozenset(only.split(",")) if only else None,
    )
    try:
        await mesh.start()
        yield mesh
    finally:
        failed = await mesh.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    assert failed == [], f"parts exited abnormally: {failed}"


@pytest.fixture(scope="session")
def tenant() -> str:
    return f"e2e-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
async def rest(mesh: LocalMesh, tenant: str) -> AsyncIterator[httpx.AsyncClient]:
    """The REST facade, as a tenant admin of `tenant`."""
    running(mesh, "gateway")
    token = mesh.token(tenant, ["tenant_admin"], subject="e2e-admin")
    async with httpx.AsyncClient(
        base_url=f"http://{mesh.url('gateway')}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as client:
        yield client
