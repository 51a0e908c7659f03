"""Typed settings every service shares; read from env (or a .env file), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.chassis.telemetry import TelemetrySettings
from services.chassis.worker import WorkerSettings

DEFAULT_RBAC_POLICY = Path(__file__).with_name("rbac.toml")


class AuthSettings(BaseModel):
    """JWT verification. Key material comes from a file or the environment, never from code."""

    issuer: str = "commerce-mesh"
    audience: str = "commerce-mesh"
    # Asymmetric keys in production (a public key PEM); HS256 with a generated secret locally.
    algorithms: Annotated[list[str], Field(min_length=1)] = ["RS256", "ES256"]
    key_file: FilePath | None = None
    key: SecretStr | None = None
    leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 30
    rbac_policy_file: FilePath = DEFAULT_RBAC_POLICY

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.key_file is None) == (self.key is None):
            raise ValueError("set exactly one of auth.key_file or auth.key")
        if any(a.lower() == "none" for a in self.algorithms):
            raise ValueError("the 'none' JWT algorithm is never accepted")
        return self

    def verification_key(self) -> str:
        """The PEM public key or HMAC secret, from wherever it was configured."""
        if self.key is not None:
            return self.key.get_secret_value()
        assert self.key_file is not None  # guaranteed by _one_key_source
        return self.key_file.read_text().strip()


class TlsSettings(BaseModel):
    """Server TLS; with `client_ca_file` set, clients must present a certificate (mTLS)."""

    cert_file: FilePath
    key_file: FilePath
    client_ca_file: FilePath | None = None


class ServerSettings(BaseSettings):
    """Settings of one gRPC server. Subclasses set `env_prefix`, e.g. `COMMERCE_LEDGER_`.

    Nested values use `__`: `COMMERCE_LEDGER_AUTH__KEY_FILE=/secrets/jwt.pub`.
    """

    model_config = SettingsConfigDict(
        env_prefix="COMMERCE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0
    grace_period_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    max_concurrent_rpcs: Annotated[int, Field(gt=0)] | None = None
    max_message_bytes: Annotated[int, Field(gt=0, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    reflection: bool = True
    auth: AuthSettings
    tls: TlsSettings | None = None
    telemetry: TelemetrySettings = TelemetrySettings()
    # The process's workers (relay, consumers) answer health checks here: `WORKER__HEALTH_PORT`.
    worker: WorkerSettings = WorkerSettings()
    log_level: str = "INFO"
