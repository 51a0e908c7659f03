"""Signed webhooks from the sandbox to the configured URL, sent in the background."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from services.payments.ids import random_id
from services.payments.webhooks import (
    GATEWAY_SIGNATURE_HEADER,
    GATEWAY_TIMESTAMP_HEADER,
    SIGNATURE_HEADER,
    sign,
)

_ATTEMPTS = 3
_HTTP_SUCCESS_MAX = 299


class Notifier:
    """Delivers `{id, type, created, data}` events, each up to three times, never blocking."""

    def __init__(self, secret: bytes, webhook_url: Callable[[], str]) -> None:
        self._secret = secret
        self._webhook_url = webhook_url
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(2.0))
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered: list[str] = []

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        url = self._webhook_url()
        if not url:
            return
        event = {
            "id": random_id("evt_", 20),
            "type": event_type,
            "created": int(time.time()),
            "data": data,
        }
        task = asyncio.get_running_loop().create_task(self._deliver(url, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, event: dict[str, Any]) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        for attempt in range(_ATTEMPTS):
            now = int(time.time())
            signature = sign(self._secret, now, body)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature,
                GATEWAY_SIGNATURE_HEADER: signature,
                GATEWAY_TIMESTAMP_HEADER: str(now),
            }
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.HTTPError:
                pass
            else:
                if response.status_code <= _HTTP_SUCCESS_MAX:
                    self.delivered.append(str(event["id"]))
                    return
            await asyncio.sleep(0.05 * 2**attempt)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()
