"""The domain is pure Python: no grpc, sqlalchemy, psycopg or protobuf anywhere in it."""

import ast
from pathlib import Path

from services.ledger import domain

FORBIDDEN = ("grpc", "sqlalchemy", "psycopg", "google.protobuf", "commerce", "alembic")


def test_no_domain_module_imports_infrastructure():
    root = Path(domain.__file__).parent
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
