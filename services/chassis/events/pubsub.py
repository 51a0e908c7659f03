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

from google.cloud import pubsub_v1  # type: ignore[import-untyped]
from google.cloud.pubsub_v1.subscriber.scheduler import (  # type: ignore[import-untyped]
    ThreadScheduler,
)
from google.cloud.pubsub_v1.types import (  # type: ignore[import-untyped]
    BatchSettings,
    FlowControl,
    PublisherOptions,
)

PROJECT_ENV = "PUBSUB_PROJECT_ID"
DEFAULT_PROJECT = "commerce-local"

# Relay batches are handed to the client all at once; a short latency flushes them promptly.
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


async def wait_published(future: Any) -> str:
    """Await a publish future from the client's thread; returns the message id."""
    return str(await asyncio.wrap_future(future))
