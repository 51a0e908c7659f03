"""PSP webhook signatures: HMAC-SHA256 over `<timestamp>.<raw body>`, within a tolerance window."""

from __future__ import annotations

import hashlib
import hmac

from services.chassis.errors import Unauthenticated

SIGNATURE_HEADER = "Sandbox-Signature"
"""Value `t=<unix seconds>,v1=<hex digest>[,v1=...]` (Stripe-Signature's shape); several `v1`
while a secret is rotated. Authentic when any `v1` matches and `t` is within the tolerance
of now in either direction (a stale replay, or a sender clock far ahead)."""
GATEWAY_SIGNATURE_HEADER = "Webhook-Signature"
GATEWAY_TIMESTAMP_HEADER = "Webhook-Timestamp"
"""The REST gateway's PSP-neutral webhook headers (services/gateway/webhook.go): it moves them
into HandlePspWebhookRequest.signature and .timestamp. The sandbox sends its signature under
both names, so its webhooks also arrive through the gateway (the local mesh's path)."""
DEFAULT_TOLERANCE_SECONDS = 300
SIGNATURE_INVALID = "WEBHOOK_SIGNATURE_INVALID"
TIMESTAMP_OUT_OF_TOLERANCE = "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE"


def compute_signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.<body>`."""
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={compute_signature(secret, timestamp, body)}"


def verify(
    secret: bytes,
    body: bytes,
    header: str,
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """The signed timestamp of an authentic webhook; raises Unauthenticated otherwise.

    The signature is checked before the timestamp, so a forged header learns nothing about
    the window; digests are compared in constant time.
    """
    timestamp, signatures = _parse(header)
    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise Unauthenticated(SIGNATURE_INVALID, "webhook signature does not match")
    if abs(now - timestamp) > tolerance:
        raise Unauthenticated(
            TIMESTAMP_OUT_OF_TOLERANCE,
            f"webhook timestamp is more than {tolerance}s away from now",
            metadata={"tolerance_seconds": str(tolerance)},
        )
    return timestamp


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise Unauthenticated(SIGNATURE_INVALID, "webhook signature header is malformed")
    return timestamp, signatures
