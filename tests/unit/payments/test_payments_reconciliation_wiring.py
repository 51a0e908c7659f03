"""Where RunReconciliation may read reports from: the allow-lists built from the settings."""

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from services.payments.bootstrap import settlement_reports
from services.payments.config import PspCredentials, ReconciliationSettings, load_psp_file
from services.payments.reconciliation.ports import ReportUnavailableError

PSPS = """
[psps.sandbox]
kind = "sandbox"
base_url = "http://127.0.0.1:8099"

[psps.stripe]
kind = "stripe"
base_url = "https://api.stripe.com"
"""


@pytest.fixture
def psps(tmp_path: Path) -> dict[str, PspCredentials]:
    path = tmp_path / "psps.toml"
    path.write_text(PSPS)
    return load_psp_file(path)


@pytest.fixture
def config(tmp_path: Path) -> ReconciliationSettings:
    reports = tmp_path / "reports"
    reports.mkdir()
    return ReconciliationSettings.model_validate(
        {
            "report_base_urls": ["https://reports.psp.example/v1/settlements"],
            "report_dir": reports,
        }
    )


async def test_configured_bases_sandbox_settlements_and_the_directory_are_all_that_is_allowed(
    config: ReconciliationSettings, psps: dict[str, PspCredentials]
) -> None:
    async with httpx.AsyncClient() as client:
        reports = settlement_reports(config, psps, client)
        allowed = [
            "https://reports.psp.example/v1/settlements/2026-11-20.csv",
            "http://127.0.0.1:8099/v1/settlements?from=2026-11-20&to=2026-11-20",
            "2026-11-20.csv",
            f"file://{config.report_dir}/2026-11-20.csv",
            f"{config.report_dir}/psp/2026-11-20.csv",
        ]
        for location in allowed:
            reports.check(location)
        refused = [
            "http://169.254.169.254/latest/meta-data/",
            "https://reports.psp.example/admin",
            "https://reports.psp.example/v1/settlements/../../admin",
            "https://user:pw@reports.psp.example/v1/settlements/x.csv",
            "http://reports.psp.example/v1/settlements/x.csv",  # not the configured scheme
            "https://api.stripe.com/v1/settlements",  # only sandbox PSPs are implied
            "http://127.0.0.1:8099/admin/config",
            "../secrets.csv",
            "/etc/passwd",
            "file:///etc/passwd",
            f"{config.report_dir}/../psps.toml",
            "gs://bucket/settlement.csv",
        ]
        for location in refused:
            with pytest.raises(ReportUnavailableError):
                reports.check(location)


async def test_without_a_report_directory_no_file_is_read(
    psps: dict[str, PspCredentials],
) -> None:
    async with httpx.AsyncClient() as client:
        reports = settlement_reports(ReconciliationSettings(), psps, client)
        with pytest.raises(ReportUnavailableError, match="file:// locations are not configured"):
            reports.check("settlement.csv")


@pytest.mark.parametrize(
    "base",
    [
        "ftp://reports.example/x",
        "https://user:pw@reports.example/x",
        "https://reports.example/v1/../admin",
        "reports.example/v1",
    ],
)
def test_malformed_base_urls_are_refused_at_start(base: str) -> None:
    with pytest.raises(ValidationError):
        ReconciliationSettings(report_base_urls=(base,))
