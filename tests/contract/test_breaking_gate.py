"""The breaking-change gate really gates: plant a break in a copy of the contracts and watch
`buf breaking` (the same command `make breaking` runs) fail, naming what broke."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "node_modules" / ".bin" / "buf"
BASELINE = ROOT / "contracts" / "released" / "commerce.binpb"
MONEY = Path("proto/commerce/type/v1/money.proto")

pytestmark = pytest.mark.contract


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the buf workspace (contracts copied, third-party protos linked)."""
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    (tmp_path / ".deps").symlink_to(ROOT / ".deps")
    return tmp_path


def _breaking(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv, our own pinned buf
        [str(BUF), "breaking", "proto", "--against", str(BASELINE), "--error-format", "text"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _edit(workspace: Path, pattern: str, replacement: str) -> None:
    path = workspace / MONEY
    text, count = re.subn(pattern, replacement, path.read_text())
    assert count == 1, f"the planted edit must apply exactly once: {pattern}"
    path.write_text(text)


def test_unchanged_contracts_pass_the_gate(workspace):
    result = _breaking(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


def test_removing_a_field_fails_the_gate_naming_the_field(workspace):
    _edit(workspace, r"\n[^\n]*\n\s*int64 amount_minor = 2;", "")
    result = _breaking(workspace)
    assert result.returncode != 0
    assert re.search(
        r'money\.proto:.*field "2" with name "amount_minor" on message "Money" was deleted',
        result.stdout,
    ), result.stdout + result.stderr


def test_renumbering_a_field_fails_the_gate_naming_the_field(workspace):
    _edit(workspace, r"int64 amount_minor = 2;", "int64 amount_minor = 3;")
    result = _breaking(workspace)
    assert result.returncode != 0
    assert re.search(r'field "2" with name "amount_minor" on message "Money"', result.stdout), (
        result.stdout + result.stderr
    )
