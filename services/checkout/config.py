"""Typed settings of the checkout process, from `COMMERCE_CHECKOUT_*`; bad values fail at start."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, FilePath, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.chassis.config import ServerSettings
from services.checkout.domain.saga import CHECKPOINTS

SERVICE = "checkout"
ERROR_DOMAIN = "checkout.commerce-mesh"


class SagaSettings(BaseModel):
    """How the payment saga retries, leases orders and is recovered (ADR 0014)."""

    model_config = {"extra": "forbid", "frozen": True}

    # How long PlaceOrder drives the saga before answering with the order as it is.
    place_order_budget_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    base_delay_seconds: Annotated[float, Field(gt=0, le=60)] = 0.05
    max_delay_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # A driver that dies leaves its lease; after this long the recovery worker takes over.
    lease_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    # The recovery worker: how often it looks for stalled sagas, and how many per pass.
    recovery_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    recovery_batch: Annotated[int, Field(ge=1, le=10_000)] = 100
    # Run the recovery worker inside `serve` too (one per pod; leases keep them apart).
    recover_in_server: bool = True
    # `checkout.sagas.stuck`: in flight and not advanced for this long, counted this often.
    stuck_after_seconds: Annotated[float, Field(gt=0, le=86_400)] = 900.0
    stuck_check_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0


class TaxSettings(BaseModel):
    """The tax hook: the provider's deadline before the fallback rate table answers."""

    model_config = {"extra": "forbid", "frozen": True}

    timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 2.0


class CheckoutSettings(ServerSettings):
    """The gRPC server's settings plus checkout's own (database settings are separate:
    `COMMERCE_CHECKOUT_DATABASE_*` over `COMMERCE_DATABASE_*`, see chassis/db/settings.py)."""

    model_config = SettingsConfigDict(
        env_prefix="COMMERCE_CHECKOUT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    port: Annotated[int, Field(ge=0, le=65535)] = 50053
    payments_addr: str = "127.0.0.1:50052"
    payments_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    # The `service:checkout` identity's bearer token toward payments: a file (read again every
    # few seconds, so a rotated token is picked up) or a value; with neither and an HS* auth
    # key, the process signs its own.
    payments_token_file: FilePath | None = None
    payments_token: SecretStr | None = None
    saga: SagaSettings = SagaSettings()
    tax: TaxSettings = TaxSettings()
    # Test hook (crash matrix): the saga checkpoint at which the process exits at once
    # (`os._exit`), e.g. "capture.after". Never set in a deployment.
    crash_at: str | None = None
    owner_password: SecretStr | None = None
    app_password: SecretStr | None = None

    @field_validator("crash_at")
    @classmethod
    def _known_checkpoint(cls, value: str | None) -> str | None:
        if value is not None and value not in CHECKPOINTS:
            raise ValueError(f"crash_at must be one of {', '.join(CHECKPOINTS)}")
        return value
