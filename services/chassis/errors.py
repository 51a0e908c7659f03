"""Domain errors: one root exception, a kind per gRPC status family, a stable reason each.

Pure Python on purpose: domain code raises these without importing grpc; the error interceptor
turns them into `google.rpc.Status` with exactly one `ErrorInfo` (see interceptors/errors.py).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class ErrorKind(enum.Enum):
    """The failure family; maps one-to-one onto a gRPC status code."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: its path in the request (e.g. `lines[0].quantity`) and why."""

    field: str
    description: str
    reason: str = ""


class DomainError(Exception):
    """Root of every error a service reports to its callers.

    `reason` is a stable UPPER_SNAKE word that clients may branch on; `message` is for humans
    and may change. `metadata` carries identifiers that help the caller (never secrets or
    card data).
    """

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(message)
        if not reason or not reason.replace("_", "").isalnum() or not reason.isupper():
            raise ValueError(f"error reason must be UPPER_SNAKE, got {reason!r}")
        self.reason = reason
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: tuple[FieldViolation, ...] = tuple(violations)


class InvalidArgument(DomainError):
    """The request is malformed regardless of system state."""

    kind = ErrorKind.INVALID_ARGUMENT


class NotFound(DomainError):
    """The named resource does not exist (or is not visible to the caller's tenant)."""

    kind = ErrorKind.NOT_FOUND


class AlreadyExists(DomainError):
    """The resource exists, or an idempotency key was reused with a different request."""

    kind = ErrorKind.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The system is not in a state where the operation is allowed (e.g. illegal transition)."""

    kind = ErrorKind.FAILED_PRECONDITION


class Aborted(DomainError):
    """A concurrency conflict (etag mismatch, serialization failure); retry the whole step."""

    kind = ErrorKind.ABORTED


class OutOfRange(DomainError):
    """A value is past a valid range that depends on state (e.g. page past the end)."""

    kind = ErrorKind.OUT_OF_RANGE


class PermissionDenied(DomainError):
    """The caller is authenticated but may not do this."""

    kind = ErrorKind.PERMISSION_DENIED


class Unauthenticated(DomainError):
    """The caller did not prove who it is."""

    kind = ErrorKind.UNAUTHENTICATED


class ResourceExhausted(DomainError):
    """A quota, rate limit or bulkhead is full; retry later."""

    kind = ErrorKind.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    """A dependency is down; safe to retry with backoff."""

    kind = ErrorKind.UNAVAILABLE


class DeadlineExceeded(DomainError):
    """The deadline passed before the operation completed; the outcome may be unknown."""

    kind = ErrorKind.DEADLINE_EXCEEDED


class Internal(DomainError):
    """A bug or broken invariant; never used for a downstream error that has its own status."""

    kind = ErrorKind.INTERNAL


IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyReused(AlreadyExists):
    """The same request_id arrived with a different request: rejected, with no effect."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            IDEMPOTENCY_KEY_REUSED,
            "request_id was already used for a different request",
            metadata={"request_id": request_id},
        )
