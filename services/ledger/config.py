"""Typed settings of the ledger process, from `COMMERCE_LEDGER_*`; bad values fail at start."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.chassis.config import ServerSettings

SERVICE = "ledger"
ERROR_DOMAIN = "ledger.commerce-mesh"


class LedgerSettings(ServerSettings):
    """The gRPC server's settings plus the ledger's own (database settings are separate:
    `COMMERCE_LEDGER_DATABASE_*` over `COMMERCE_DATABASE_*`, see chassis/db/settings.py)."""

    model_config = SettingsConfigDict(
        env_prefix="COMMERCE_LEDGER_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    port: Annotated[int, Field(ge=0, le=65535)] = 50051
    # How often pending holds past their expiry are released, and how many per transaction.
    hold_sweep_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    hold_sweep_batch: Annotated[int, Field(ge=1, le=10_000)] = 100
    # Re-verify every tenant's whole hash chain this often (ledger.chain.verification.failures
    # feeds the LedgerChainBroken alert); None (the default) leaves it to VerifyChain callers.
    chain_verify_interval_seconds: Annotated[float, Field(gt=0, le=604_800)] | None = None
    # Passwords set on the service roles when the process provisions its own database from an
    # admin URL. Give stable ones when several processes start at once; generated otherwise.
    owner_password: SecretStr | None = None
    app_password: SecretStr | None = None
