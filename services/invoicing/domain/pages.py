"""Opaque page tokens: a newest-first cursor bound to the request's parameters; never a grant."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Any

from services.invoicing.domain import errors
from services.invoicing.domain.ports import Cursor

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    return DEFAULT_PAGE_SIZE if requested <= 0 else min(requested, MAX_PAGE_SIZE)


def _binding(params: dict[str, Any]) -> str:
    encoded = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]


def encode(params: dict[str, Any], cursor: dict[str, Any]) -> str:
    body = json.dumps({"p": _binding(params), "c": cursor}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(token: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The cursor in `token` (None for an empty token) or INVALID_PAGE_TOKEN."""
    if not token:
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.invalid_page_token() from None
    if not isinstance(body, dict) or body.get("p") != _binding(params):
        raise errors.invalid_page_token()
    cursor = body.get("c")
    if not isinstance(cursor, dict):
        raise errors.invalid_page_token()
    return cursor


def encode_cursor(params: dict[str, Any], create_time: datetime, resource_id: str) -> str:
    return encode(params, {"t": create_time.isoformat(), "id": resource_id})


def decode_cursor(token: str, params: dict[str, Any]) -> Cursor | None:
    cursor = decode(token, params)
    if cursor is None:
        return None
    try:
        return Cursor(datetime.fromisoformat(str(cursor["t"])), str(cursor["id"]))
    except (KeyError, ValueError):
        raise errors.invalid_page_token() from None
