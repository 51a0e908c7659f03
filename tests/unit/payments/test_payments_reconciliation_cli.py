"""The reconciliation CLI, offline (`--sources` JSON export): table, JSON, exit status."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.payments.reconciliation.cli import main

HEADER = (
    "settlement_date,line_id,type,reference,authorization,currency,gross_minor,fee_minor,net_minor"
)
LINES = [
    "2026-11-20,sl_00000001,capture,sbx_cap_1,sbx_auth_1,USD,10000,320,9680",
    "2026-11-20,sl_00000002,capture,sbx_cap_2,sbx_auth_2,JPY,5000,175,4825",
    "2026-11-20,sl_00000003,refund,sbx_re_1,sbx_auth_1,USD,-2500,0,-2500",
]
OPERATIONS = [
    {
        "operation_id": "tenants/acme/payments/p1/captures/2",
        "kind": "capture",
        "payment": "tenants/acme/payments/p1",
        "payment_reference": "sbx_auth_1",
        "amount_minor": 10000,
        "currency": "USD",
        "occurred_at": "2026-11-20T10:00:00Z",
    },
    {
        "operation_id": "tenants/acme/payments/p2/captures/2",
        "kind": "capture",
        "payment": "tenants/acme/payments/p2",
        "payment_reference": "sbx_auth_2",
        "amount_minor": 5000,
        "currency": "JPY",
        "occurred_at": "2026-11-20T11:00:00Z",
    },
    {
        "operation_id": "tenants/acme/payments/p1/refunds/r1",
        "kind": "refund",
        "payment": "tenants/acme/payments/p1",
        "refund": "tenants/acme/payments/p1/refunds/r1",
        "payment_reference": "sbx_auth_1",
        "psp_reference": "sbx_re_1",
        "amount_minor": 2500,
        "currency": "USD",
        "occurred_at": "2026-11-20T12:00:00Z",
    },
]


def entries_for(operations):
    return [
        {
            "entry": f"tenants/acme/entries/e{n}",
            "operation_id": op["operation_id"],
            "kind": op["kind"],
            "payment": op["payment"],
            "amount_minor": op["amount_minor"],
            "currency": op["currency"],
        }
        for n, op in enumerate(operations)
    ]


@pytest.fixture
def files(tmp_path: Path):
    def write(lines=LINES, operations=OPERATIONS, entries=None) -> list[str]:
        report = tmp_path / "settlement.csv"
        report.write_text("\n".join([HEADER, *lines]) + "\n")
        sources = tmp_path / "sources.json"
        sides = {
            "payment_operations": operations,
            "ledger_entries": entries_for(operations) if entries is None else entries,
        }
        sources.write_text(json.dumps(sides))
        return [
            "--report", str(report), "--psp", "sandbox", "--start", "2026-11-20",
            "--end", "2026-11-21", "--sources", str(sources),
        ]  # fmt: skip

    return write


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    status = main(argv, out=out)
    return status, out.getvalue()


def test_a_book_that_ties_out_exits_zero_with_totals_per_currency(files):
    status, text = run(files())
    assert status == 0
    assert "Matched on all three sides: 3" in text
    assert "Differences: 0" in text
    assert "USD   75.00 USD" in text
    assert "5000 JPY" in text


def test_differences_exit_one_and_list_both_sides_ids_and_amounts_in_json(files):
    lines = [LINES[0], LINES[0], LINES[2].replace("-2500,0,-2500", "-2501,0,-2501")]
    status, text = run([*files(lines=lines), "--format", "json"])
    assert status == 1
    report = json.loads(text)
    found = {(d["kind"], d["source"], d["payment"]) for d in report["differences"]}
    assert found == {
        ("MISSING_IN_PSP", "SETTLEMENT_REPORT", "tenants/acme/payments/p2"),
        ("DUPLICATE", "SETTLEMENT_REPORT", "tenants/acme/payments/p1"),
        ("AMOUNT_MISMATCH", "SETTLEMENT_REPORT", "tenants/acme/payments/p1"),
    }
    mismatch = next(d for d in report["differences"] if d["kind"] == "AMOUNT_MISMATCH")
    assert mismatch["expected"] == {"currency": "USD", "amount_minor": -2500}
    assert mismatch["actual"] == {"currency": "USD", "amount_minor": -2501}
    assert mismatch["settlement_record_id"] == "sl_00000003"
    assert report["matched_count"] == 1
    usd = next(t for t in report["totals"] if t["currency"] == "USD")
    assert (usd["payments_minor"], usd["settlement_minor"]) == (7500, 17499)


def test_planned_postings_are_listed_with_their_stable_ids(files):
    status, text = run([*files(), "--tenant", "acme", "--plan-postings", "--format", "json"])
    assert status == 0
    planned = json.loads(text)["settlement_entries"]
    assert [e["kind"] for e in planned] == ["settlement", "fee", "settlement", "fee", "settlement"]
    again = json.loads(
        run([*files(), "--tenant", "acme", "--plan-postings", "--format", "json"])[1]
    )
    assert [e["entry_id"] for e in again["settlement_entries"]] == [e["entry_id"] for e in planned]
    bank = [p for e in planned for p in e["postings"] if p["account"].endswith("payments-bank-usd")]
    assert sum(p["amount_minor"] for p in bank) == 9680 - 2500


def test_a_malformed_report_exits_two_naming_line_and_column(files, capsys):
    status, _ = run(files(lines=[LINES[0], "2026-11-20,sl_9,capture,c,a,USD,1.5,0,1.5"]))
    assert status == 2
    assert "line 3, column gross_minor" in capsys.readouterr().err


def test_a_malformed_sources_file_exits_two(files, capsys):
    broken = [{**OPERATIONS[0], "amount_minor": 100.5}]
    status, _ = run(files(operations=broken, entries=[]))
    assert status == 2
    assert "does not follow the sources format" in capsys.readouterr().err


def test_arguments_are_checked_before_anything_runs(files, capsys):
    with pytest.raises(SystemExit) as raised:
        main([*files()[:-2], "--end", "2026-11-19"])  # no sources and end before start
    assert raised.value.code == 2
    assert "--start must be before --end" in capsys.readouterr().err


def test_the_module_runs_as_a_command(files):
    completed = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "services.payments.reconciliation", *files(), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["matched_count"] == 3
