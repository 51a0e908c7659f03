"""Every service's domain/ is pure Python (DESIGN.md): no grpc, sqlalchemy, psycopg, alembic,
protobuf or generated contracts, and no HTTP clients or servers in it."""

import ast
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"
FORBIDDEN = (
    "grpc",
    "sqlalchemy",
    "psycopg",
    "alembic",
    "google.protobuf",
    "commerce",
    "httpx",
    "aiohttp",
)
DOMAINS = sorted(path for path in SERVICES.glob("*/domain") if path.is_dir())


def test_the_services_with_a_domain_are_found():
    assert {path.parent.name for path in DOMAINS} >= {"ledger", "payments"}


@pytest.mark.parametrize("root", DOMAINS, ids=lambda path: path.parent.name)
def test_no_domain_module_imports_infrastructure(root):
    offenders = []
    for module in root.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{module.name}: {name}" for name in names if name.startswith(FORBIDDEN)]
    assert offenders == []
