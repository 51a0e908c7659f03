"""The google-cloud-pubsub clients, built the way the relay, consumers and CLI need them.

google-cloud-pubsub ships no type information for `google.cloud.pubsub_v1`; this module is the
one place that imports it, and hands out the clients as `Any` behind small typed helpers.
With PUBSUB_EMULATOR_HOST set, the clients talk plaintext to the emulator without credentials.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from typing import Any

import grpc
from google.cloud import pubsub_v1  # type: ignore[import-untyped]
from google.cloud.pubsub_v1.subscriber.scheduler import (  # type: ignore[import-untyped]
    ThreadScheduler,
)
from google.cloud.pubsub_v1.types import (  # type: ignore[import-untyped]
    BatchSettings,
    FlowControl,
    PublisherOptions,
)
from google.pubsub_v1 import types as gapic_types
from google.pubsub_v1.services.publisher import PublisherAsyncClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport

PROJECT_ENV = "PUBSUB_PROJECT_ID"
DEFAULT_PROJECT = "commerce-local"

# Publishers of this client (dead letters, the CLI) send few messages; flush them promptly.
_PUBLISH_LATENCY_S = 0.002
_PUBLISH_MAX_MESSAGES = 1000


def project_id() -> str:
    """The Google Cloud project: PUBSUB_PROJECT_ID, else the local default."""
    return os.environ.get(PROJECT_ENV) or DEFAULT_PROJECT


def topic_path(project: str, topic: str) -> str:
    return f"projects/{project}/topics/{topic}"


def subscription_path(project: str, subscription: str) -> str:
    return f"projects/{project}/subscriptions/{subscription}"


def ordered_publisher() -> Any:
    """A PublisherClient with message ordering on and short batching latency."""
    return pubsub_v1.PublisherClient(
        batch_settings=BatchSettings(
            max_messages=_PUBLISH_MAX_MESSAGES, max_latency=_PUBLISH_LATENCY_S
        ),
        publisher_options=PublisherOptions(enable_message_ordering=True),
    )


def batch_publisher() -> Any:
    """An asyncio Publish client (the GAPIC `PublisherAsyncClient`, grpc.aio) for a caller that
    forms its own batches, as the relay does (`publish_request`). Create it on the event loop
    that uses it; with PUBSUB_EMULATOR_HOST set it talks plaintext to the emulator."""
    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if host:
        channel = grpc.aio.insecure_channel(host)
        return PublisherAsyncClient(transport=PublisherGrpcAsyncIOTransport(channel=channel))
    return PublisherAsyncClient()


def subscriber() -> Any:
    """A SubscriberClient (also the admin client for subscriptions)."""
    return pubsub_v1.SubscriberClient()


def flow_control(max_messages: int) -> Any:
    """How many messages one streaming pull may hold unacknowledged."""
    return FlowControl(max_messages=max_messages)


class _InlineScheduler(ThreadScheduler):  # type: ignore[misc]
    """Runs the message callback on the stream's own thread instead of a thread pool.

    For callbacks that only hand the message over (the consumer queues it on its event loop):
    it saves a thread hop per message. Not shared between streams (like ThreadScheduler).
    """

    def __init__(self) -> None:
        super().__init__(concurrent.futures.ThreadPoolExecutor(max_workers=1))

    def schedule(self, callback: Any, *args: Any, **kwargs: Any) -> None:
        callback(*args, **kwargs)


def inline_scheduler() -> Any:
    """A scheduler for `subscribe(..., scheduler=)` whose callback must never block."""
    return _InlineScheduler()


# Pub/Sub's limits per Publish request are 1,000 messages and 10 MB; stay a little below.
MAX_REQUEST_MESSAGES = 1000
MAX_REQUEST_BYTES = 9_000_000
_RAW_MESSAGE = gapic_types.PubsubMessage.pb()


def message(data: bytes, ordering_key: str, attributes: dict[str, str]) -> Any:
    """A Pub/Sub message for `publish_request` (the raw protobuf, as the client builds it)."""
    return _RAW_MESSAGE(data=data, ordering_key=ordering_key, attributes=attributes)


def message_size(raw: Any) -> int:
    """The serialized size of a `message()`, for splitting requests below the limits."""
    return int(raw.ByteSize())


async def publish_request(
    client: Any, topic: str, messages: list[Any], deadline_s: float
) -> list[str]:
    """One Publish RPC on a `batch_publisher()` carrying `messages`, which must share one
    ordering key (Pub/Sub's rule for a request), with the API's default retry policy. Returns
    the message ids, in order; the request succeeds or fails as a whole.

    Unlike `PublisherClient.publish` there is no batching machinery (a sequencer per key, a
    new thread per batch to send it, a future per message): the caller has its batch already
    and awaits the outcome on its own event loop.
    """
    wrapped = [gapic_types.PubsubMessage.wrap(raw) for raw in messages]
    response = await client.publish(topic=topic, messages=wrapped, timeout=deadline_s)
    ids = [str(message_id) for message_id in response.message_ids]
    if len(ids) != len(messages):
        raise RuntimeError(f"Pub/Sub returned {len(ids)} message ids for {len(messages)}")
    return ids


async def wait_published(future: Any) -> str:
    """Await a publish future from the client's thread; returns the message id."""
    return str(await asyncio.wrap_future(future))
