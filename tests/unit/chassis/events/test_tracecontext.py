"""W3C trace context: captured from the current span, empty outside one, extracted back."""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.chassis.events import tracecontext


def test_nothing_is_captured_outside_a_span():
    assert tracecontext.capture() == {}


def test_the_current_span_is_captured_and_extracted_as_the_remote_parent():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("producer") as span:
        carrier = tracecontext.capture()

    parent = trace.get_current_span(tracecontext.extract(carrier)).get_span_context()
    assert parent.trace_id == span.get_span_context().trace_id
    assert parent.span_id == span.get_span_context().span_id
    assert parent.is_remote
