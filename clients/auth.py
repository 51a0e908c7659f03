"""Outgoing call metadata: a bearer token from a pluggable provider plus pass-through entries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

AUTHORIZATION = "authorization"

TokenProvider = Callable[[], str | Awaitable[str]]
"""Returns the current access token (sync or async); called before every attempt so a
provider that caches and refreshes tokens stays in charge of expiry."""

MetadataPairs = Sequence[tuple[str, str]]
"""gRPC metadata as (lower-case key, value) pairs, e.g. ("traceparent", "00-...")."""


async def bearer_token(provider: TokenProvider) -> str:
    """The provider's token, awaited if need be; an empty token is a configuration error."""
    value = provider()
    token = value if isinstance(value, str) else await value
    if not token:
        raise ValueError("the token provider returned an empty token")
    return token


async def outgoing_metadata(
    client_metadata: MetadataPairs,
    call_metadata: MetadataPairs,
    token_provider: TokenProvider | None,
) -> tuple[tuple[str, str], ...]:
    """Client-wide entries, then per-call ones (which replace client entries of the same key),
    then `authorization: Bearer <token>` unless the call already carries its own credentials
    (e.g. an end user's token it forwards on purpose)."""
    call_keys = {key for key, _ in call_metadata}
    pairs = [(key, value) for key, value in client_metadata if key not in call_keys]
    pairs.extend(call_metadata)
    if token_provider is not None and all(key != AUTHORIZATION for key, _ in pairs):
        pairs.append((AUTHORIZATION, f"Bearer {await bearer_token(token_provider)}"))
    return tuple(pairs)
