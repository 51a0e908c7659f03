"""Fixtures for the deploy checks: the pinned tools, a throw-away copy of k8s/, the checker,
and the rendered GKE overlay (built once per session)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
KUSTOMIZE = REPO / ".tools/bin/kustomize"
KUBE_SCORE = REPO / ".tools/bin/kube-score"
CHECKER = REPO / "scripts/k8s_check.py"


@dataclass(frozen=True)
class CheckResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def tools() -> None:
    missing = [str(p.relative_to(REPO)) for p in (KUSTOMIZE, KUBE_SCORE) if not p.is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: GOBIN=$PWD/.tools/bin go install tool")


@pytest.fixture
def run_checker(tools: None) -> Callable[..., CheckResult]:
    def run(k8s_dir: Path = K8S, *renders: str) -> CheckResult:
        args = [sys.executable, str(CHECKER), "--k8s-dir", str(k8s_dir)]
        for render in renders:
            args += ["--render", render]
        # fixed argv: our interpreter running the project's checker
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603
        return CheckResult(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    """A private copy of k8s/ to plant defects in."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    return copy


def render(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(  # noqa: S603 - fixed argv, the pinned kustomize
        [str(KUSTOMIZE), "build", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session")
def gke(tools: None) -> list[dict[str, Any]]:
    return render(K8S / "overlays/gke")
