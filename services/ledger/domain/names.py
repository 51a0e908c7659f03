"""Resource names of the ledger (AIP-122): `tenants/{tenant}/{collection}/{id}`."""

from __future__ import annotations

import re

_NAME = re.compile(
    r"tenants/([a-z][a-z0-9-]{2,62})/(accounts|entries|holds)/([a-z0-9][a-z0-9_-]{0,63})"
)


def account_name(tenant: str, account_id: str) -> str:
    return f"tenants/{tenant}/accounts/{account_id}"


def entry_name(tenant: str, entry_id: str) -> str:
    return f"tenants/{tenant}/entries/{entry_id}"


def hold_name(tenant: str, hold_id: str) -> str:
    return f"tenants/{tenant}/holds/{hold_id}"


def parse(name: str, collection: str) -> tuple[str, str]:
    """(tenant, id) of a resource name in `collection`; ValueError otherwise."""
    match = _NAME.fullmatch(name)
    if match is None or match.group(2) != collection:
        raise ValueError(f"not a ledger {collection} name: {name[:120]!r}")
    return match.group(1), match.group(3)
