"""Opaque page tokens (AIP-158): a cursor bound to the request's parameters, so a token used
with other parameters is refused; never a grant of access (the tenant is checked on every
page). Shared by every service's List RPCs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from services.chassis.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    return DEFAULT_PAGE_SIZE if requested <= 0 else min(requested, MAX_PAGE_SIZE)


def _binding(params: dict[str, Any]) -> str:
    encoded = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


def encode(params: dict[str, Any], cursor: dict[str, Any]) -> str:
    """A token for the page after `cursor` of the listing described by `params`."""
    body = json.dumps({"p": _binding(params), "c": cursor}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(token: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The cursor in `token` (None for an empty token) or INVALID_PAGE_TOKEN."""
    if not token:
        return None
    invalid_page_token = InvalidArgument(
        "INVALID_PAGE_TOKEN", "the page token is malformed or was issued for a different request"
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_page_token from None
    if not isinstance(body, dict) or body.get("p") != _binding(params):
        raise invalid_page_token
    cursor = body.get("c")
    if not isinstance(cursor, dict):
        raise invalid_page_token
    return cursor
