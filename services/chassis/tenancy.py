"""Which tenant an RPC acts for: the one its resource names name, checked against the caller.

Resource names (AIP-122) start with `tenants/{tenant}/`. A request may carry several — `name`,
`parent`, `<resource>.name` of an update, references such as `order` — and all must name the
same tenant. A user acts only for the tenant in its token; a service identity acts for the
tenant the request names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.chassis.auth import Principal
from services.chassis.errors import PermissionDenied

_RESOURCE_TENANT = re.compile(r"^tenants/([^/]+)(?:/|$)")


def tenant_of(principal: Principal | None, request: Message) -> str | None:
    """The tenant the RPC acts for, or PermissionDenied(TENANT_MISMATCH)."""
    named = _named_of(request)
    if len(named) > 1:
        raise PermissionDenied(
            "TENANT_MISMATCH",
            "a request may name resources of one tenant only",
            metadata={"tenants": ",".join(sorted(named))},
        )
    tenant = next(iter(named), None)
    if principal is None or principal.is_service:
        return tenant or (principal.tenant if principal else None)
    if tenant is not None and tenant != principal.tenant:
        raise PermissionDenied(
            "TENANT_MISMATCH",
            "the request names a resource of another tenant",
            metadata={"tenant": tenant},
        )
    return principal.tenant


def named_tenants(request: Message) -> Iterator[str]:
    """Tenants of the resource names in top-level string fields and in the `name` of top-level
    message fields (the resource of a Create or Update request)."""
    for field, value in request.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
            yield from _tenant_in(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
            nested = value.DESCRIPTOR.fields_by_name.get("name")
            if nested is not None and nested.type == FieldDescriptor.TYPE_STRING:
                yield from _tenant_in(getattr(value, "name"))  # noqa: B009 - dynamic message


_NAMERS: dict[str, Callable[[Message], set[str]]] = {}


def _named_of(request: Message) -> set[str]:
    """`set(named_tenants(request))`, with the fields to look at found once per type."""
    desc = cast("Descriptor", request.DESCRIPTOR)  # the upb and pure descriptors agree
    namer = _NAMERS.get(desc.full_name)
    if namer is None:
        namer = _NAMERS[desc.full_name] = _namer(desc)
    return namer(request)


def _namer(desc: Descriptor) -> Callable[[Message], set[str]]:
    if desc.extension_ranges:  # extensions are set fields too: only ListFields sees them
        return lambda request: set(named_tenants(request))
    strings = [
        (f.name, f.has_presence)
        for f in desc.fields
        if f.type == FieldDescriptor.TYPE_STRING and not f.is_repeated
    ]
    resources = [
        f.name
        for f in desc.fields
        if f.message_type is not None
        and not f.is_repeated
        and (nested := f.message_type.fields_by_name.get("name")) is not None
        and nested.type == FieldDescriptor.TYPE_STRING
    ]
    match = _RESOURCE_TENANT.match

    def named(request: Message) -> set[str]:
        found: set[str] = set()
        for name, has_presence in strings:
            value = getattr(request, name)
            if value and (not has_presence or request.HasField(name)):
                tenant = match(value)
                if tenant:
                    found.add(tenant.group(1))
        for name in resources:
            if request.HasField(name):
                tenant = match(getattr(request, name).name)
                if tenant:
                    found.add(tenant.group(1))
        return found

    return named


def _tenant_in(value: str) -> Iterator[str]:
    match = _RESOURCE_TENANT.match(value)
    if match:
        yield match.group(1)
