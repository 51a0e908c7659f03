"""Decides from the request's descriptor whether a call may be repeated, and stamps its key."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

REQUEST_ID_FIELD = "request_id"
READ_METHOD_PREFIXES = ("Get", "List", "Verify", "Render")

MessageT = TypeVar("MessageT", bound=Message)


class CallKind(enum.Enum):
    """How safe it is to send a call again."""

    READ = "read"
    """Get*/List*/Verify*/Render*: no side effect, so repeating it is harmless."""
    KEYED_WRITE = "keyed_write"
    """Has a request_id: the server answers a repeat with the first response (AIP-155)."""
    UNSAFE = "unsafe"
    """Anything else: a repeat could apply the effect twice, so it is never retried."""

    @property
    def retryable(self) -> bool:
        return self is not CallKind.UNSAFE


# Message types are few and live as long as the process: one entry each.
_KIND_BY_TYPE: dict[type[Message], CallKind] = {}


def classify(request: Message) -> CallKind:
    """The kind of the method that takes `request`, decided from its message descriptor."""
    request_type = type(request)
    kind = _KIND_BY_TYPE.get(request_type)
    if kind is None:
        kind = _KIND_BY_TYPE[request_type] = _classify(request_type)
    return kind


def _classify(request_type: type[Message]) -> CallKind:
    if has_request_id(request_type):
        return CallKind.KEYED_WRITE
    names = method_names(request_type)
    if names and all(_is_read(name) for name in names):
        return CallKind.READ
    return CallKind.UNSAFE


def has_request_id(request_type: type[Message]) -> bool:
    """Whether the request type has a singular string `request_id` (an AIP-155 key)."""
    field = request_type.DESCRIPTOR.fields_by_name.get(REQUEST_ID_FIELD)
    return (
        field is not None and field.type == FieldDescriptor.TYPE_STRING and not _is_repeated(field)
    )


def method_names(request_type: type[Message]) -> tuple[str, ...]:
    """Names of the RPCs that take this request type.

    Looked up in the services of the request's own file (our contracts declare a service and
    its request messages together); failing that, AIP naming: `<Method>Request`.
    """
    request = request_type.DESCRIPTOR
    names = tuple(
        method.name
        for service in request.file.services_by_name.values()
        for method in service.methods
        if method.input_type.full_name == request.full_name
    )
    if names:
        return names
    suffix = "Request"
    if request.name.endswith(suffix) and len(request.name) > len(suffix):
        return (request.name.removesuffix(suffix),)
    return ()


def with_request_id(request: MessageT, new_id: Callable[[], str]) -> tuple[MessageT, str | None]:
    """The request to send and its idempotency key, minting one if the field is empty.

    The caller's message is left untouched: a copy carries the minted key, so each `call()` is
    one logical operation and all its attempts share the key. Requests without the field pass
    through with key None.
    """
    if not has_request_id(type(request)):
        return request, None
    current: str = getattr(request, REQUEST_ID_FIELD)
    if current:
        return request, current
    stamped = type(request)()
    stamped.CopyFrom(request)
    minted = new_id()
    setattr(stamped, REQUEST_ID_FIELD, minted)
    return stamped, minted


def _is_repeated(field: Any) -> bool:
    # A property on the runtime's descriptors; types-protobuf still declares it a method.
    return bool(field.is_repeated)


def _is_read(method_name: str) -> bool:
    # Word boundary after the verb, so "Getaway" or "Listen" are not mistaken for reads.
    return any(
        method_name.startswith(prefix)
        and (len(method_name) == len(prefix) or method_name[len(prefix)].isupper())
        for prefix in READ_METHOD_PREFIXES
    )
