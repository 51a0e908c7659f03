"""The configured PSP connectors, each behind its guard (retries, breaker, bulkhead)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from opentelemetry import metrics, trace

from clients.retry import RetryPolicy
from services.payments.config import PspCredentials, PspSettings
from services.payments.psp.breaker import PspCircuitBreakers
from services.payments.psp.bulkhead import Bulkhead
from services.payments.psp.connector import PspConnector
from services.payments.psp.guarded import GuardedPsp
from services.payments.psp.sandbox_connector import SandboxConnector
from services.payments.psp.stripe_connector import StripeConnector


@dataclass(slots=True)
class PspRegistry:
    psps: dict[str, GuardedPsp]
    breakers: PspCircuitBreakers
    webhook_secrets: dict[str, bytes]


def connector(
    psp_id: str,
    credentials: PspCredentials,
    client: httpx.AsyncClient,
    *,
    tracer_provider: trace.TracerProvider | None = None,
) -> PspConnector:
    """The connector of one PSP; its HTTP calls are CLIENT spans of `tracer_provider` (the
    process-wide one by default)."""
    if credentials.kind == "stripe":
        if credentials.api_key is None:
            raise ValueError(f"PSP {psp_id}: a stripe connector needs api_key")
        return StripeConnector(
            client,
            credentials.base_url,
            credentials.api_key.get_secret_value(),
            psp_id=psp_id,
            tracer_provider=tracer_provider,
        )
    return SandboxConnector(
        client, credentials.base_url, psp_id=psp_id, tracer_provider=tracer_provider
    )


def build_registry(
    credentials: Mapping[str, PspCredentials],
    settings: PspSettings,
    client: httpx.AsyncClient,
    *,
    meter: metrics.Meter | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> PspRegistry:
    breakers = PspCircuitBreakers(
        threshold=settings.breaker_threshold, ttl=settings.breaker_ttl_seconds, meter=meter
    )
    policy = RetryPolicy(
        max_attempts=settings.max_attempts,
        initial_backoff=settings.initial_backoff_seconds,
        max_backoff=max(settings.max_backoff_seconds, settings.initial_backoff_seconds),
    )
    psps = {
        psp_id: GuardedPsp(
            connector(psp_id, creds, client, tracer_provider=tracer_provider),
            breakers,
            Bulkhead(psp_id, settings.bulkhead_limit, max_wait=settings.bulkhead_wait_seconds),
            policy=policy,
            attempt_timeout=settings.attempt_timeout_seconds,
        )
        for psp_id, creds in credentials.items()
    }
    secrets = {
        psp_id: creds.webhook_secret.get_secret_value().encode()
        for psp_id, creds in credentials.items()
        if creds.webhook_secret is not None
    }
    return PspRegistry(psps, breakers, secrets)


def http_client(settings: PspSettings) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
    )
    return httpx.AsyncClient(limits=limits, timeout=settings.attempt_timeout_seconds)
