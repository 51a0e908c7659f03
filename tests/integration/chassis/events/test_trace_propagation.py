"""Trace: the consumer's span continues the producer's trace across the outbox and Pub/Sub."""

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

pytestmark = pytest.mark.integration


async def test_the_consumer_span_has_the_producers_trace_id(kit, consumers, running_relay):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    await consumers(tracer_provider=provider)
    running_relay(tracer_provider=provider)

    with provider.get_tracer("checkout").start_as_current_span("PlaceOrder") as producer:
        [event_id] = await kit.stage_sequence("tenants/acme/orders/o1", [1])

    async def applied():
        return await kit.effects()

    [(_, _, _, effect_trace_id)] = await kit.wait_until(applied, timeout_s=30)
    consumer_spans = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert len(consumer_spans) == 1
    [span] = consumer_spans
    produced = producer.get_span_context()
    assert span.context.trace_id == produced.trace_id
    # Staging RPC span -> the relay's PRODUCER span (the publish) -> the CONSUMER span.
    [publish] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    assert publish.parent is not None
    assert publish.parent.span_id == produced.span_id
    assert publish.context.trace_id == produced.trace_id
    assert publish.attributes is not None
    assert publish.attributes["messaging.system"] == "gcp_pubsub"
    assert publish.attributes["messaging.message.id"]  # Pub/Sub's id, once acknowledged
    assert span.parent is not None
    assert span.parent.span_id == publish.context.span_id
    assert span.name == "google.protobuf.Int64Value process"
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == event_id
    # The handler ran inside that span, so its own work joins the trace too.
    assert effect_trace_id == format(produced.trace_id, "032x")
