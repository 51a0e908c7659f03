"""Access rules read from the contracts: the `(commerce.auth.v1.access)` option of each RPC."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

from commerce.auth.v1 import annotations_pb2


class Authentication(enum.Enum):
    """How a caller of an RPC proves who it is (mirrors commerce.auth.v1.Authentication)."""

    BEARER = "BEARER"
    PSP_SIGNATURE = "PSP_SIGNATURE"


@dataclass(frozen=True, slots=True)
class AccessRule:
    """The permission an RPC needs and how its caller authenticates."""

    permission: str
    authentication: Authentication


class MissingAccessRuleError(Exception):
    """A served RPC declares no permission; the server refuses to start."""

    def __init__(self, methods: Iterable[str]) -> None:
        self.methods = sorted(methods)
        super().__init__(
            "every RPC must declare (commerce.auth.v1.access); missing on: "
            + ", ".join(self.methods)
        )


def access_rules(services: Iterable[ServiceDescriptor]) -> Mapping[str, AccessRule]:
    """Rules keyed by full method path (`/pkg.Service/Method`) for every method of `services`.

    Raises MissingAccessRuleError naming every method without a permission, so one start-up
    reports all of them.
    """
    rules: dict[str, AccessRule] = {}
    missing: list[str] = []
    for service in services:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            options = method.GetOptions()
            rule = options.Extensions[annotations_pb2.access]
            if not options.HasExtension(annotations_pb2.access) or not rule.permission:
                missing.append(path)
                continue
            rules[path] = AccessRule(
                permission=rule.permission,
                authentication=(
                    Authentication.PSP_SIGNATURE
                    if rule.authentication == annotations_pb2.AUTHENTICATION_PSP_SIGNATURE
                    else Authentication.BEARER
                ),
            )
    if missing:
        raise MissingAccessRuleError(missing)
    return rules
