"""DomainError → google.rpc.Status with exactly one ErrorInfo (+ BadRequest violations)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.chassis.errors import DomainError, ErrorKind

_CODES: dict[ErrorKind, tuple[grpc.StatusCode, int]] = {
    kind: (getattr(grpc.StatusCode, kind.value), getattr(code_pb2, kind.value))
    for kind in ErrorKind
}


def grpc_code(kind: ErrorKind) -> grpc.StatusCode:
    """The gRPC status code of an error kind."""
    return _CODES[kind][0]


def to_status(error: DomainError, domain: str) -> status_pb2.Status:
    """The rich status for `error`: ErrorInfo(reason, domain, metadata) and field violations."""
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
    )
    details.append(info)
    if error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description, reason=v.reason
                )
                for v in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        details.append(packed)
    return status_pb2.Status(code=_CODES[error.kind][1], message=error.message, details=details)


def to_grpc_status(error: DomainError, domain: str) -> grpc.Status:
    """`to_status` in the form `ServicerContext.abort` accepts (details in trailers)."""
    return rpc_status.to_status(to_status(error, domain))
