"""W3C trace context in and out of plain string maps (outbox rows, Pub/Sub attributes)."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# Always W3C, whatever global propagator the process configured: the attribute names are part
# of the message format, not a deployment choice.
_PROPAGATOR = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"
TRACER_NAME = "commerce.events"  # the relay's PRODUCER and the consumers' CONSUMER spans
TRACESTATE = "tracestate"


def capture(context: Context | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate` if any) of the current span (or of `context`'s);
    empty outside a span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier


def extract(carrier: Mapping[str, str]) -> Context:
    """A context whose parent is the remote span described by `carrier` (if valid)."""
    return _PROPAGATOR.extract(dict(carrier))
