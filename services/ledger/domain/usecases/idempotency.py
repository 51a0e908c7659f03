"""Claiming request ids: first use records the result, a replay returns it, a reuse fails."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.chassis.errors import IdempotencyKeyReused
from services.ledger.domain.ports import IdempotencyKey, StoredKey, UnitOfWork


def _check(key: IdempotencyKey, stored: StoredKey | None) -> Mapping[str, Any] | None:
    if stored is None:
        return None
    if stored.method != key.method or stored.fingerprint != key.fingerprint:
        raise IdempotencyKeyReused(key.request_id)
    return stored.result


async def claim(
    uow: UnitOfWork, key: IdempotencyKey, result: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """None when this request is new; the first request's result when it is a replay."""
    (stored,) = await uow.idempotency.claim([key], [result])
    return _check(key, stored)


async def claim_each(
    uow: UnitOfWork, keys: Sequence[IdempotencyKey], results: Sequence[Mapping[str, Any]]
) -> None:
    """Claim the keys of a batch's items; any of them used before fails the whole batch."""
    if not keys:
        return
    stored = await uow.idempotency.claim(keys, results)
    for index, (key, found) in enumerate(zip(keys, stored, strict=True)):
        if found is not None:
            error = IdempotencyKeyReused(key.request_id)
            error.metadata["index"] = str(index)
            raise error
