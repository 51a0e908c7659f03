"""Idempotency keys as the sandbox honours them: same key and body replay the first answer."""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    fingerprint: str
    status: int
    body: bytes


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join((method.encode(), path.encode(), body))).hexdigest()


class IdempotencyStore:
    """First answers by key; one lock per key so concurrent twins wait and then replay."""

    def __init__(self) -> None:
        self._answers: dict[str, StoredAnswer] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._attempts: defaultdict[str, int] = defaultdict(int)

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks[key]

    def get(self, key: str) -> StoredAnswer | None:
        return self._answers.get(key)

    def put(self, key: str, answer: StoredAnswer) -> None:
        self._answers[key] = answer

    def count_attempt(self, key: str) -> int:
        """How many times this key has been seen, this time included."""
        self._attempts[key] += 1
        return self._attempts[key]
