"""The W3C trace and span id of the current OpenTelemetry span (empty when there is none)."""

from __future__ import annotations

from opentelemetry import trace

from services.ledger.domain.entries import TraceLink


def current_trace() -> TraceLink:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return TraceLink()
    return TraceLink(f"{context.trace_id:032x}", f"{context.span_id:016x}")
