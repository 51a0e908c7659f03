"""Request-scoped data (caller, tenant, method, request id) in contextvars."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from services.chassis.auth import Principal


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What every layer below the interceptors may know about the current RPC."""

    method: str
    principal: Principal | None
    tenant: str | None
    request_id: str | None


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "commerce_request_context", default=None
)


def current() -> RequestContext:
    """The context of the RPC being served; a LookupError outside of one."""
    ctx = _current.get()
    if ctx is None:
        raise LookupError("no request context: not inside an RPC served by the chassis")
    return ctx


def bind(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    """Make `ctx` current; pass the token to `reset` when the RPC ends."""
    return _current.set(ctx)


def reset(token: contextvars.Token[RequestContext | None]) -> None:
    """Restore the context that was current before `bind`."""
    _current.reset(token)
