"""Who the caller is (JWT bearer verification) and what it may do (RBAC over permissions)."""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from services.chassis.errors import Unauthenticated

TENANT_ID = re.compile(r"^[a-z][a-z0-9-]{2,62}$")
# Roles with this prefix are service identities: they act for the tenant named in the request.
SERVICE_ROLE_PREFIX = "service:"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an end user or operator of one tenant, or a service."""

    subject: str
    tenant: str | None
    roles: frozenset[str]

    @property
    def is_service(self) -> bool:
        """True for a service identity, which may act for any tenant it is asked about."""
        return any(role.startswith(SERVICE_ROLE_PREFIX) for role in self.roles)


class TokenVerifier:
    """Verifies JWT bearer tokens: signature, expiry, issuer, audience, and our claims.

    Claims: `sub` (subject), `tenant` (required unless a role is a service identity) and
    `roles` (a list of strings).

    A caller sends the same token on every call until it nears expiry, and verifying its
    signature is most of what authentication costs (RS256/ES256: tens to hundreds of µs). So
    the principals of the last `cache_size` tokens that verified are kept, keyed by the whole
    token (signature included: a token that differs in any byte is verified afresh), until
    the token's `exp` plus the leeway — exactly when PyJWT would start refusing it. Once
    valid, `nbf`/`iat` stay satisfied; the key, issuer and audience are fixed per verifier.
    Failures are never cached. See docs/adr/0020.
    """

    def __init__(
        self,
        *,
        key: str,
        algorithms: Iterable[str],
        issuer: str,
        audience: str,
        leeway_seconds: int = 30,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._algorithms = list(algorithms)
        if not self._algorithms or any(a.lower() == "none" for a in self._algorithms):
            raise ValueError("JWT algorithms must be non-empty and never 'none'")
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._cache_size = cache_size
        self._clock = clock
        self._verified: dict[str, tuple[Principal, float]] = {}  # token → (principal, until)

    def verify(self, token: str) -> Principal:
        """The principal the token proves, or Unauthenticated with a stable reason."""
        cached = self._verified.get(token)
        if cached is not None:
            if self._clock() < cached[1]:
                return cached[0]
            del self._verified[token]  # expired: verify again, which says TOKEN_EXPIRED
        principal, claims = self._decode(token)
        if self._cache_size > 0:
            if len(self._verified) >= self._cache_size:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[token] = (principal, float(claims["exp"]) + self._leeway)
        return principal

    def _decode(self, token: str) -> tuple[Principal, dict[str, Any]]:
        """Full verification with PyJWT, then our claims."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("TOKEN_EXPIRED", "the bearer token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("TOKEN_INVALID", f"the bearer token is invalid: {exc}") from exc
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("TOKEN_INVALID", "the 'roles' claim must be a list of strings")
        tenant = claims.get("tenant")
        principal = Principal(subject=str(claims["sub"]), tenant=tenant, roles=frozenset(roles))
        if tenant is None and not principal.is_service:
            raise Unauthenticated("TOKEN_INVALID", "the token names no tenant")
        if tenant is not None and (not isinstance(tenant, str) or not TENANT_ID.match(tenant)):
            raise Unauthenticated("TOKEN_INVALID", "the 'tenant' claim is not a valid tenant id")
        return principal, claims


@dataclass(frozen=True, slots=True)
class RbacPolicy:
    """Maps roles to permission patterns: exact (`ledger.entries.create`), a family
    (`ledger.*`), a verb across families (`*.get`), or everything (`*`)."""

    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, grants: Mapping[str, Iterable[str]]) -> RbacPolicy:
        """Build a policy from role → permission patterns."""
        return cls({role: frozenset(patterns) for role, patterns in grants.items()})

    @classmethod
    def from_toml(cls, path: Path) -> RbacPolicy:
        """Load `[roles]` tables (`role = ["perm", "prefix.*"]`) from a TOML file."""
        with path.open("rb") as handle:
            document = tomllib.load(handle)
        roles = document.get("roles")
        if not isinstance(roles, dict):
            raise TypeError(f"{path}: expected a [roles] table")
        return cls.from_mapping(roles)

    def allows(self, roles: Iterable[str], permission: str) -> bool:
        """True if any of `roles` grants `permission`."""
        return any(
            _matches(pattern, permission)
            for role in roles
            for pattern in self.grants.get(role, frozenset())
        )


def _matches(pattern: str, permission: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return permission.startswith(pattern[:-1])
    if pattern.startswith("*."):
        return permission.endswith(pattern[1:])
    return pattern == permission
