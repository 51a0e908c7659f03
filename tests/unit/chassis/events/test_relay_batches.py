"""The relay's publish step: one Publish request per subject (ordering key = subject; Pub/Sub
takes one key per request), split at Pub/Sub's request limits and sent in order; after a failed
request only the subject's accepted prefix counts as published, and a failing subject holds
back only itself."""

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from services.chassis.events import pubsub
from services.chassis.events.envelope import Envelope
from services.chassis.events.outbox_store import OutboxRecord
from services.chassis.events.relay import Relay

TOPIC = "projects/p/topics/ledger-events"


class FakePublisher:
    """Records Publish requests; a request fails as a whole (like Pub/Sub's) if it carries a
    message whose ce-id is in `failing`."""

    def __init__(self, failing=()):
        self.failing = set(failing)
        self.requests = []
        self.published = []

    async def publish(self, *, topic, messages, **options):
        carried = [(m.ordering_key, m.attributes["ce-id"]) for m in messages]
        self.requests.append(carried)
        if len({key for key, _ in carried}) != 1:
            raise ValueError("all messages of a request must share one ordering key")
        if any(ce_id in self.failing for _, ce_id in carried):
            raise RuntimeError("publish failed")
        self.published += [(topic, *message) for message in carried]
        first = len(self.published) - len(carried)
        return SimpleNamespace(message_ids=[f"m{first + i}" for i in range(len(carried))])


def record(position, subject):
    return OutboxRecord(
        position=position,
        created_at=datetime.now(UTC),
        envelope=Envelope(
            id=f"e{position}",
            type="commerce.ledger.v1.JournalEntryPosted",
            source="//commerce-mesh/ledger",
            subject=subject,
            time=datetime.now(UTC),
            data=b"x",
        ),
    )


def publish(relay, records):
    return asyncio.run(relay._publish(records))


FIRST, SECOND, THIRD = "tenants/a/x/1", "tenants/a/x/2", "tenants/a/x/3"


def test_each_subject_goes_out_in_one_request_with_the_subject_as_ordering_key():
    publisher = FakePublisher()
    relay = Relay(None, topic_path=TOPIC, publisher=publisher)  # type: ignore[arg-type]
    records = [record(1, FIRST), record(2, SECOND), record(3, FIRST)]

    assert publish(relay, records) == records
    assert sorted(publisher.requests) == [[(FIRST, "e1"), (FIRST, "e3")], [(SECOND, "e2")]]
    assert {topic for topic, _, _ in publisher.published} == {TOPIC}


def test_a_failed_request_holds_back_its_subject_only():
    publisher = FakePublisher(failing={"e2"})
    relay = Relay(None, topic_path=TOPIC, publisher=publisher)  # type: ignore[arg-type]
    records = [
        record(1, FIRST),
        record(2, FIRST),  # fails, and with it the request carrying FIRST's rows
        record(3, SECOND),
        record(4, FIRST),
        record(5, THIRD),
    ]

    published = publish(relay, records)

    assert [r.position for r in published] == [3, 5]
    assert sorted(publisher.requests) == [
        [(FIRST, "e1"), (FIRST, "e2"), (FIRST, "e4")],
        [(SECOND, "e3")],
        [(THIRD, "e5")],
    ]


def test_requests_are_split_at_the_limit_in_order_and_a_subjects_accepted_prefix_counts(
    monkeypatch,
):
    monkeypatch.setattr(pubsub, "MAX_REQUEST_MESSAGES", 2)
    publisher = FakePublisher(failing={"e5"})
    relay = Relay(None, topic_path=TOPIC, publisher=publisher)  # type: ignore[arg-type]
    records = [record(position, FIRST) for position in range(1, 8)] + [record(8, SECOND)]

    published = publish(relay, records)

    # FIRST: [e1 e2] and [e3 e4] go out, [e5 e6] fails, so [e7] is not even sent.
    assert [r.position for r in published] == [1, 2, 3, 4, 8]
    assert [request for request in publisher.requests if request[0][0] == FIRST] == [
        [(FIRST, "e1"), (FIRST, "e2")],
        [(FIRST, "e3"), (FIRST, "e4")],
        [(FIRST, "e5"), (FIRST, "e6")],
    ]


def test_requests_are_split_below_the_byte_limit(monkeypatch):
    publisher = FakePublisher()
    relay = Relay(None, topic_path=TOPIC, publisher=publisher)  # type: ignore[arg-type]
    records = [record(position, FIRST) for position in range(1, 6)]
    size = pubsub.message_size(relay._outgoing(records[0]).message)
    monkeypatch.setattr(pubsub, "MAX_REQUEST_BYTES", 2 * size)

    assert publish(relay, records) == records
    assert [len(request) for request in publisher.requests] == [2, 2, 1]


@pytest.mark.parametrize("count", [0, 1])
def test_nothing_or_one_record(count):
    publisher = FakePublisher()
    relay = Relay(None, topic_path=TOPIC, publisher=publisher)  # type: ignore[arg-type]
    records = [record(1, FIRST)][:count]

    assert publish(relay, records) == records
    assert len(publisher.requests) == count
