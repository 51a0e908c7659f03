"""Typed exceptions for failed calls, decoded from the google.rpc.Status a server attaches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
"""ErrorInfo reason: the request_id was already used with a different request."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One `google.rpc.BadRequest` violation: the field path, why, and its stable rule id."""

    field: str
    description: str
    reason: str = ""


class CommerceError(Exception):
    """Root of every error a Commerce Mesh client raises for a failed call.

    `reason`, `domain` and `metadata` come from the single `google.rpc.ErrorInfo` the contract
    requires; `field_violations` from any `google.rpc.BadRequest`; `status` is the whole decoded
    `google.rpc.Status` (None when the server sent none) for the other detail types.
    `request_id` is the idempotency key the call carried (None when the method has none) so a
    caller can repeat the operation later with the same key; `attempts` counts the attempts
    made, this failed one included.
    Catch a subclass for one status code, or this class for all of them.
    """

    status_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[FieldViolation] = (),
        request_id: str | None = None,
        attempts: int = 1,
        status: Any = None,
    ) -> None:
        super().__init__(message)
        self.code: grpc.StatusCode = code or type(self).status_code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: Mapping[str, str] = MappingProxyType(dict(metadata or {}))
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)
        self.request_id = request_id
        self.attempts = attempts
        self.status = status

    def __str__(self) -> str:
        parts = [f"{self.code.name}: {self.message}"]
        if self.reason:
            parts.append(f"reason={self.reason} domain={self.domain}")
        parts.extend(f"field {v.field}: {v.description}" for v in self.field_violations)
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return "; ".join(parts)


class Cancelled(CommerceError):
    """CANCELLED: the call was cancelled, usually by the caller or a proxy."""

    status_code = grpc.StatusCode.CANCELLED


class Unknown(CommerceError):
    """UNKNOWN: the server failed without saying how."""

    status_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(CommerceError):
    """INVALID_ARGUMENT: the request is wrong whatever the state; see `field_violations`."""

    status_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(CommerceError):
    """DEADLINE_EXCEEDED: the call's deadline passed; the effect may or may not have happened."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(CommerceError):
    """NOT_FOUND: the named resource does not exist (or is not visible to the caller)."""

    status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(CommerceError):
    """ALREADY_EXISTS: the resource to create is there already."""

    status_code = grpc.StatusCode.ALREADY_EXISTS


class IdempotencyKeyReused(AlreadyExists):
    """ALREADY_EXISTS / IDEMPOTENCY_KEY_REUSED: the request_id was used for another request."""


class PermissionDenied(CommerceError):
    """PERMISSION_DENIED: the caller is known but lacks the permission the RPC needs."""

    status_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(CommerceError):
    """RESOURCE_EXHAUSTED: a quota or limit was hit; back off at a higher level."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(CommerceError):
    """FAILED_PRECONDITION: the resource is not in a state that allows the operation."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(CommerceError):
    """ABORTED: a concurrency conflict (etag, transaction); re-read and retry at a higher level."""

    status_code = grpc.StatusCode.ABORTED


class OutOfRange(CommerceError):
    """OUT_OF_RANGE: the request went past a valid range (e.g. a page beyond the end)."""

    status_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(CommerceError):
    """UNIMPLEMENTED: the server does not offer this RPC."""

    status_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(CommerceError):
    """INTERNAL: an invariant broke on the server."""

    status_code = grpc.StatusCode.INTERNAL


class Unavailable(CommerceError):
    """UNAVAILABLE: the server could not be reached or refused the call for now."""

    status_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(CommerceError):
    """DATA_LOSS: unrecoverable data loss or corruption."""

    status_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(CommerceError):
    """UNAUTHENTICATED: the call carried no valid credentials."""

    status_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: Mapping[grpc.StatusCode, type[CommerceError]] = MappingProxyType(
    {
        cls.status_code: cls
        for cls in (
            Cancelled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        )
    }
)


def error_class_for(code: grpc.StatusCode, reason: str = "") -> type[CommerceError]:
    """The exception class for a status code and ErrorInfo reason."""
    if code is grpc.StatusCode.ALREADY_EXISTS and reason == IDEMPOTENCY_KEY_REUSED:
        return IdempotencyKeyReused
    return _BY_CODE.get(code, CommerceError)


def error_from_rpc(error: grpc.RpcError, *, request_id: str | None = None) -> CommerceError:
    """Decode a failed call (status, message and rich details) into its typed exception."""
    code = error.code()
    status = _rich_status(error)
    message = status.message if status is not None else (error.details() or "")
    info = error_details_pb2.ErrorInfo()
    violations: list[FieldViolation] = []
    found_info = False
    for detail in status.details if status is not None else ():
        if not found_info and detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            found_info = detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(v.field, v.description, v.reason)
                for v in bad_request.field_violations
            )
    cls = error_class_for(code, info.reason)
    return cls(
        message,
        code=code,
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
        field_violations=violations,
        request_id=request_id,
        status=status,
    )


def _rich_status(error: grpc.RpcError) -> Any:
    """The google.rpc.Status in `grpc-status-details-bin`, or None if absent or inconsistent."""
    try:
        # grpc_status' sync from_call reads only code(), details() and trailing_metadata(),
        # which an aio AioRpcError offers synchronously; its aio twin wants a live aio.Call.
        return rpc_status.from_call(cast("grpc.Call", error))
    except ValueError:
        # The status proto disagrees with the transport status (a proxy rewrote it): trust the
        # transport code and message rather than details that describe some other failure.
        return None
