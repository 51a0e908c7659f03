"""Helpers the end-to-end tests share (a plain module: conftest.py is loaded by pytest under
another name, so state kept there would exist twice)."""

from __future__ import annotations

import pytest

from services.localmesh import LocalMesh

FUZZ_REQUESTS: list[str] = []  # operations schemathesis called (tests/e2e/test_rest_fuzz.py)


def running(mesh: LocalMesh, *keys: str) -> None:
    """Skip unless these parts run (a service that is not built yet has no process)."""
    missing = [k for k in keys if all(r.part.key != k for r in mesh.running)]
    if missing:
        pytest.skip(f"not built yet: {', '.join(missing)}")
