"""End-to-end fixtures: the whole local mesh (services/localmesh.py) once per session, on free
loopback ports with a private data directory, and HTTP clients for its REST gateway."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.localmesh import DEV_PORTS, LocalMesh, free_ports


@pytest.fixture(scope="session")
async def mesh() -> AsyncIterator[LocalMesh]:
    """Every part of the mesh that exists, healthy; stopped (and checked) at the end."""
    data_dir = Path(tempfile.mkdtemp(prefix="commerce-e2e-"))
    key_file = data_dir / "jwt.key"
    key_file.write_text(secrets.token_urlsafe(48))
    passwords: dict[str, str] = {}
    mesh = LocalMesh(
        data_dir=data_dir,
        ports=free_ports(DEV_PORTS),
        jwt_key_file=key_file,
        secret=lambda name: passwords.setdefault(name, secrets.token_urlsafe(24)),
    )
    try:
        await mesh.start()
        yield mesh
    finally:
        failed = await mesh.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    assert failed == [], f"parts exited abnormally: {failed}"


def running(mesh: LocalMesh, *keys: str) -> None:
    """Skip unless these parts run (a service that is not built yet has no process)."""
    missing = [k for k in keys if all(r.part.key != k for r in mesh.running)]
    if missing:
        pytest.skip(f"not built yet: {', '.join(missing)}")


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
