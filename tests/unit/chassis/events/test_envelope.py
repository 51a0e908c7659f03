"""The message format: CloudEvents binary-mode attributes plus W3C trace context, both ways."""

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.chassis.events.envelope import Envelope, MalformedEnvelopeError, format_time

ENVELOPE = Envelope(
    id="6f1c1c9e-8d5e-4a43-9a61-1c2d3e4f5a6b",
    type="commerce.ledger.v1.JournalEntryPosted",
    source="//commerce-mesh/ledger",
    subject="tenants/acme/entries/e1",
    time=datetime(2026, 11, 21, 1, 2, 3, 456789, tzinfo=UTC),
    data=b"\x0a\x02e1",
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    tracestate="vendor=1",
)


def test_attributes_are_cloudevents_binary_mode_with_trace_context():
    assert ENVELOPE.attributes() == {
        "ce-specversion": "1.0",
        "ce-id": ENVELOPE.id,
        "ce-type": "commerce.ledger.v1.JournalEntryPosted",
        "ce-source": "//commerce-mesh/ledger",
        "ce-subject": "tenants/acme/entries/e1",
        "ce-time": "2026-11-21T01:02:03.456789Z",
        "content-type": "application/protobuf",
        "traceparent": ENVELOPE.traceparent,
        "tracestate": "vendor=1",
    }


def test_a_received_message_parses_back_into_the_same_envelope():
    assert Envelope.from_message(ENVELOPE.data, ENVELOPE.attributes()) == ENVELOPE


def test_trace_attributes_are_left_out_when_the_producer_had_no_span():
    plain = dataclasses.replace(ENVELOPE, traceparent=None, tracestate=None)
    assert "traceparent" not in plain.attributes()
    assert plain.trace_carrier() == {}


@pytest.mark.parametrize("missing", ["ce-id", "ce-type", "ce-source", "ce-subject", "ce-time"])
def test_a_message_without_a_required_attribute_is_malformed(missing):
    attributes = ENVELOPE.attributes()
    del attributes[missing]
    with pytest.raises(MalformedEnvelopeError, match=missing):
        Envelope.from_message(b"", attributes)


def test_an_unknown_specversion_is_malformed():
    with pytest.raises(MalformedEnvelopeError, match="specversion"):
        Envelope.from_message(b"", {**ENVELOPE.attributes(), "ce-specversion": "0.3"})


@pytest.mark.parametrize("value", ["yesterday", "2026-11-21T01:02:03"])
def test_a_time_that_is_not_rfc3339_with_an_offset_is_malformed(value):
    with pytest.raises(MalformedEnvelopeError, match="ce-time"):
        Envelope.from_message(b"", {**ENVELOPE.attributes(), "ce-time": value})


def test_times_are_written_in_utc():
    moment = datetime(2026, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    assert format_time(moment) == "2026-01-01T00:00:00.000000Z"


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone"):
        format_time(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
