"""The relay's publish step: ordering key = subject, and after a failure only each subject's
accepted prefix counts as published, with the paused key resumed."""

import asyncio
import concurrent.futures
from datetime import UTC, datetime

from services.chassis.events.envelope import Envelope
from services.chassis.events.outbox_store import OutboxRecord
from services.chassis.events.relay import Relay

TOPIC = "projects/p/topics/ledger-events"


class FakePublisher:
    """Records publishes; fails the ones whose ce-id is in `failing` (and, like the real client
    with ordering, every later message of a key that failed)."""

    def __init__(self, failing=()):
        self.failing = set(failing)
        self.published = []
        self.resumed = []
        self._paused = set()

    def publish(self, topic, data, *, ordering_key, timeout, **attributes):
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        if attributes["ce-id"] in self.failing or ordering_key in self._paused:
            self._paused.add(ordering_key)
            future.set_exception(RuntimeError("publish failed"))
        else:
            self.published.append((topic, ordering_key, attributes["ce-id"], data))
            future.set_result(f"m{len(self.published)}")
        return future

    def resume_publish(self, topic, ordering_key):
        self.resumed.append((topic, ordering_key))
        self._paused.discard(ordering_key)


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


def test_each_event_is_published_with_its_subject_as_ordering_key():
    publisher = FakePublisher()
    relay = Relay(None, topic_path=TOPIC, publisher=publisher)  # type: ignore[arg-type]
    records = [record(1, "tenants/a/x/1"), record(2, "tenants/a/x/2")]

    assert publish(relay, records) == records
    assert [(key, ce_id) for _, key, ce_id, _ in publisher.published] == [
        ("tenants/a/x/1", "e1"),
        ("tenants/a/x/2", "e2"),
    ]


def test_a_failure_keeps_that_subjects_later_rows_unpublished_and_resumes_its_key():
    publisher = FakePublisher(failing={"e2"})
    relay = Relay(None, topic_path=TOPIC, publisher=publisher)  # type: ignore[arg-type]
    first, second, third = "tenants/a/x/1", "tenants/a/x/2", "tenants/a/x/3"
    records = [
        record(1, first),
        record(2, first),  # fails
        record(3, second),
        record(4, first),  # rejected: its key is paused
        record(5, third),
    ]

    published = publish(relay, records)

    assert [r.position for r in published] == [1, 3, 5]
    assert publisher.resumed == [(TOPIC, first)]
