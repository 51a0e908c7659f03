"""Typed settings of the payments process, from `COMMERCE_PAYMENTS_*`; bad values fail at start.

PSP connectors and their secrets come from one TOML file (`COMMERCE_PAYMENTS_PSP__CREDENTIALS_FILE`,
mounted from Secret Manager in Kubernetes), one table per PSP id:

    [psps.sandbox]
    kind = "sandbox"                     # or "stripe"
    base_url = "http://127.0.0.1:8099"
    webhook_secret = "whsec_..."         # HMAC secret of the PSP's webhooks
    # api_key = "sk_test_..."            # stripe only
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    DirectoryPath,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import SettingsConfigDict

from services.chassis.config import ServerSettings

SERVICE = "payments"
ERROR_DOMAIN = "payments.commerce-mesh"
_PSP_ID = r"^[a-z][a-z0-9_-]{1,31}$"


class PspCredentials(BaseModel):
    """One PSP connector: how to reach it and the secrets it needs."""

    model_config = {"extra": "forbid", "frozen": True}

    kind: Literal["sandbox", "stripe"]
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    api_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None


class PspFile(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}

    psps: dict[Annotated[str, Field(pattern=_PSP_ID)], PspCredentials] = {}


def load_psp_file(path: Path) -> dict[str, PspCredentials]:
    """The connectors configured in `path`; a malformed file fails loudly (no values echoed)."""
    try:
        parsed = PspFile.model_validate(tomllib.loads(path.read_text()))
    except (tomllib.TOMLDecodeError, ValidationError) as error:
        raise ValueError(f"PSP credentials file {path} is invalid") from error
    return dict(parsed.psps)


class PspSettings(BaseModel):
    """How every PSP call is guarded (ADR 0010): deadline, retries, breaker, bulkhead."""

    model_config = {"extra": "forbid", "frozen": True}

    credentials_file: FilePath | None = None
    attempt_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 5.0
    deadline_seconds: Annotated[float, Field(gt=0, le=300)] = 15.0
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    initial_backoff_seconds: Annotated[float, Field(gt=0, le=10)] = 0.05
    max_backoff_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    breaker_threshold: Annotated[int, Field(ge=1, le=1000)] = 5
    breaker_ttl_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    bulkhead_limit: Annotated[int, Field(ge=1, le=10_000)] = 64
    bulkhead_wait_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5
    max_connections: Annotated[int, Field(ge=1, le=10_000)] = 200
    webhook_tolerance_seconds: Annotated[int, Field(ge=1, le=3600)] = 300


class ReconciliationSettings(BaseModel):
    """Where RunReconciliation may read settlement reports from (ADR 0013). The location comes
    from the RPC, so nothing outside these is ever fetched (no SSRF, no path traversal)."""

    model_config = {"extra": "forbid", "frozen": True}

    # http(s) base URLs reports may be downloaded under, e.g.
    # ["https://reports.psp.example/v1/settlements"]; every sandbox PSP's
    # `<base_url>/v1/settlements` is allowed as well.
    # Env: COMMERCE_PAYMENTS_RECONCILIATION__REPORT_BASE_URLS='["…"]'.
    report_base_urls: tuple[Annotated[str, Field(pattern=r"^https?://[^/@\s]+(/\S*)?$")], ...] = ()
    # A directory reports may be read from (relative paths and file:// URIs under it).
    report_dir: DirectoryPath | None = None
    download_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    # How long a process owns a run; a run whose owner stopped is resumed after this.
    lease_seconds: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    resume_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5

    @field_validator("report_base_urls")
    @classmethod
    def _no_dot_segments(cls, bases: tuple[str, ...]) -> tuple[str, ...]:
        for base in bases:
            if ".." in base.split("/"):
                raise ValueError("a settlement report base URL has no '..' segments")
        return bases


class PaymentsSettings(ServerSettings):
    """The gRPC server's settings plus payments' own (database settings are separate:
    `COMMERCE_PAYMENTS_DATABASE_*` over `COMMERCE_DATABASE_*`, see chassis/db/settings.py)."""

    model_config = SettingsConfigDict(
        env_prefix="COMMERCE_PAYMENTS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    port: Annotated[int, Field(ge=0, le=65535)] = 50052
    # The ledger, called as the `service:payments` identity (rbac.toml).
    ledger_addr: str = "127.0.0.1:50051"
    ledger_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    # The identity's bearer token: a file (re-read on every call, so rotation needs no restart)
    # or a value. With neither and an HMAC `auth.key`, a short-lived token is signed locally
    # (development only: production verifies with a public key and cannot sign).
    ledger_token_file: FilePath | None = None
    ledger_token: SecretStr | None = None
    psp: PspSettings = PspSettings()
    reconciliation: ReconciliationSettings = ReconciliationSettings()
    # The HTTP endpoint PSPs post webhooks to (`POST /v1/webhooks/{psp}`); off when unset.
    webhook_http_host: str = "127.0.0.1"
    webhook_http_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    # Unknown PSP outcomes are re-checked this often (and whenever a webhook arrives).
    resolve_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0
    # How long a request owns its request_id / payment before a retry may take over.
    lease_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    owner_password: SecretStr | None = None
    app_password: SecretStr | None = None
