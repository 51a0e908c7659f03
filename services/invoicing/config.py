"""Typed settings of the invoicing process, from `COMMERCE_INVOICING_*`; bad values fail early."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.chassis.config import ServerSettings

SERVICE = "invoicing"
ERROR_DOMAIN = "invoicing.commerce-mesh"


class InvoicingSettings(ServerSettings):
    """The gRPC server's settings plus invoicing's own (database settings are separate:
    `COMMERCE_INVOICING_DATABASE_*` over `COMMERCE_DATABASE_*`, see chassis/db/settings.py)."""

    model_config = SettingsConfigDict(
        env_prefix="COMMERCE_INVOICING_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    port: Annotated[int, Field(ge=0, le=65535)] = 50054
    # The tie-out reads captures and refunds from payments and postings from the ledger.
    ledger_addr: str = "127.0.0.1:50051"
    payments_addr: str = "127.0.0.1:50052"
    # Ledger accounts (ids in each tenant's chart) whose credits are revenue and tax payable.
    revenue_accounts: tuple[str, ...] = ("revenue",)
    tax_accounts: tuple[str, ...] = ("tax-payable",)
    # Pub/Sub streaming pulls per subscription in the consumer worker.
    consumer_streams: Annotated[int, Field(ge=1, le=16)] = 2
    # Passwords set on the service roles when the process provisions its own database from an
    # admin URL. Give stable ones when several processes start at once; generated otherwise.
    owner_password: SecretStr | None = None
    app_password: SecretStr | None = None
