"""The message format: CloudEvents binary mode for Pub/Sub, plus W3C trace context attributes.

The data is the serialized event proto; everything else travels in attributes:
`ce-specversion`, `ce-id`, `ce-type`, `ce-source`, `ce-subject`, `ce-time` (RFC 3339, UTC),
`content-type`, and `traceparent`/`tracestate` when the producer was inside a span.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from services.chassis.events import tracecontext

SPECVERSION = "1.0"
CONTENT_TYPE = "application/protobuf"
_REQUIRED = ("ce-specversion", "ce-id", "ce-type", "ce-source", "ce-subject", "ce-time")


class MalformedEnvelopeError(ValueError):
    """A message without the CloudEvents attributes this mesh relies on."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event on the wire: CloudEvents context attributes and the proto bytes."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: bytes
    traceparent: str | None = None
    tracestate: str | None = None

    def attributes(self) -> dict[str, str]:
        """Pub/Sub message attributes (CloudEvents binary content mode)."""
        attributes = {
            "ce-specversion": SPECVERSION,
            "ce-id": self.id,
            "ce-type": self.type,
            "ce-source": self.source,
            "ce-subject": self.subject,
            "ce-time": format_time(self.time),
            "content-type": CONTENT_TYPE,
        }
        if self.traceparent:
            attributes[tracecontext.TRACEPARENT] = self.traceparent
        if self.tracestate:
            attributes[tracecontext.TRACESTATE] = self.tracestate
        return attributes

    def trace_carrier(self) -> dict[str, str]:
        """The producer's trace context, for `tracecontext.extract`."""
        carrier = {}
        if self.traceparent:
            carrier[tracecontext.TRACEPARENT] = self.traceparent
        if self.tracestate:
            carrier[tracecontext.TRACESTATE] = self.tracestate
        return carrier

    @classmethod
    def from_message(cls, data: bytes, attributes: Mapping[str, str]) -> Envelope:
        """Parse a received message; MalformedEnvelopeError if a required attribute is bad."""
        missing = [name for name in _REQUIRED if not attributes.get(name)]
        if missing:
            raise MalformedEnvelopeError(f"missing CloudEvents attributes: {', '.join(missing)}")
        if attributes["ce-specversion"] != SPECVERSION:
            raise MalformedEnvelopeError(
                f"unsupported ce-specversion {attributes['ce-specversion'][:20]!r}"
            )
        return cls(
            id=attributes["ce-id"],
            type=attributes["ce-type"],
            source=attributes["ce-source"],
            subject=attributes["ce-subject"],
            time=parse_time(attributes["ce-time"]),
            data=data,
            traceparent=attributes.get(tracecontext.TRACEPARENT) or None,
            tracestate=attributes.get(tracecontext.TRACESTATE) or None,
        )


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, microsecond precision."""
    if moment.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Inverse of `format_time` (accepts any RFC 3339 offset)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEnvelopeError(f"ce-time is not RFC 3339: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise MalformedEnvelopeError("ce-time has no UTC offset")
    return moment.astimezone(UTC)
