"""Typed settings of the invoicing process, from `COMMERCE_INVOICING_*`; bad values fail early."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, FilePath, SecretStr
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
    # Ledger accounts (ids in each tenant's chart; a trailing `*` matches a prefix) whose
    # credits are revenue and tax payable: the accounts invoicing posts to (domain/journals.py).
    revenue_accounts: tuple[str, ...] = ("invoicing-revenue-*",)
    tax_accounts: tuple[str, ...] = ("invoicing-tax-payable-*",)
    # The ledger poster worker posts as the `service:invoicing` identity (rbac.toml): a token
    # file (re-read on every call, so rotation needs no restart) or a value. With neither and
    # an HMAC `auth.key`, a short-lived token is signed locally (development only).
    ledger_token_file: FilePath | None = None
    ledger_token: SecretStr | None = None
    ledger_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    # Journals per poster transaction, and the pause when nothing is due.
    poster_batch_size: Annotated[int, Field(ge=1, le=500)] = 50
    poster_idle_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    # Posted journals are kept this many days in `ledger_postings_due`, then pruned.
    poster_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # Pub/Sub streaming pulls per subscription in the consumer worker.
    consumer_streams: Annotated[int, Field(ge=1, le=16)] = 2
    # The consumer worker reads its dead-letter subscriptions' depth this often into
    # `events.dead_letter.depth` (counted up to the limit); None turns it off (on GCP, Cloud
    # Monitoring's num_undelivered_messages is the cheaper source, ADR 0017).
    dead_letter_check_interval_seconds: Annotated[float, Field(gt=0, le=3600)] | None = 60.0
    dead_letter_count_limit: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # Passwords set on the service roles when the process provisions its own database from an
    # admin URL. Give stable ones when several processes start at once; generated otherwise.
    owner_password: SecretStr | None = None
    app_password: SecretStr | None = None
