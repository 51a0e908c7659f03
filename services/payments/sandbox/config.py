"""The sandbox's knobs: added latency, random error rate, slow-token delay, webhook target."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(ValueError):
    """A knob value out of range; the message names the knob."""


@dataclass(slots=True)
class SandboxConfig:
    latency_ms: int = 0
    error_rate: float = 0.0
    """Share of /v1 requests answered 503 before anything happens (0.0-1.0)."""
    timeout_seconds: float = 30.0
    """How long `pm_sandbox_timeout` waits before answering."""
    webhook_url: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.latency_ms <= 60_000:  # noqa: PLR2004 - a minute is plenty
            raise ConfigError("latency_ms must be within 0..60000")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ConfigError("error_rate must be within 0..1")
        if not 0.0 <= self.timeout_seconds <= 600:  # noqa: PLR2004 - ten minutes at most
            raise ConfigError("timeout_seconds must be within 0..600")
        if self.webhook_url:
            parts = urlsplit(self.webhook_url)
            if parts.scheme not in ("http", "https") or not is_loopback(parts.hostname or ""):
                raise ConfigError("webhook_url must be an http(s) URL on loopback")

    @classmethod
    def from_env(cls) -> SandboxConfig:
        return cls(
            latency_ms=int(os.environ.get("SANDBOX_LATENCY_MS", "0")),
            error_rate=float(os.environ.get("SANDBOX_ERROR_RATE", "0")),
            timeout_seconds=float(os.environ.get("SANDBOX_TIMEOUT_SECONDS", "30")),
            webhook_url=os.environ.get("SANDBOX_WEBHOOK_URL", ""),
        )

    def updated(self, changes: dict[str, Any]) -> SandboxConfig:
        """A copy with `changes` applied; unknown knobs or wrong types raise ConfigError."""
        known = {"latency_ms": int, "error_rate": float, "timeout_seconds": float}
        values: dict[str, Any] = self.as_json()
        for name, value in changes.items():
            if name == "webhook_url" and isinstance(value, str):
                values[name] = value
            elif name in known and isinstance(value, int | float) and not isinstance(value, bool):
                values[name] = known[name](value)
            else:
                raise ConfigError(f"unknown knob or wrong type: {name}")
        return SandboxConfig(**values)

    def as_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "timeout_seconds": self.timeout_seconds,
            "webhook_url": self.webhook_url,
        }
