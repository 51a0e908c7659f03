"""Real servers for the payments tests: PSP sandboxes on port 0, and stripe-mock if installed.

stripe-mock is found through `$STRIPE_MOCK_BIN`, `.tools/bin/stripe-mock` (where `make`
installs Go tools) or `$PATH`; tests that need it are skipped, saying so, when it is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from services.payments.sandbox.config import SandboxConfig
from services.payments.sandbox.server import RunningSandbox, start_sandbox

WEBHOOK_SECRET = b"whsec_integration_tests_only"
_REPO = Path(__file__).resolve().parents[3]
_LISTENING = re.compile(r"Listening for HTTP at address: (127\.0\.0\.1:\d+)")


@dataclass
class RecordingClient:
    """An httpx client that remembers every request it sent (to check forwarded headers)."""

    client: httpx.AsyncClient
    sent: list[httpx.Request] = field(default_factory=list)

    def keys_sent_to(self, base_url: str) -> list[str]:
        return [
            r.headers.get("Idempotency-Key", "")
            for r in self.sent
            if str(r.url).startswith(base_url) and r.method == "POST"
        ]


@pytest.fixture
async def http() -> AsyncIterator[RecordingClient]:
    recording = RecordingClient(httpx.AsyncClient())

    async def remember(request: httpx.Request) -> None:
        recording.sent.append(request)

    recording.client.event_hooks["request"] = [remember]
    async with recording.client:
        yield recording


@pytest.fixture
async def sandbox_factory():
    """`await sandbox_factory(**knobs)`: a fresh sandbox on a free loopback port."""
    started: list[RunningSandbox] = []

    async def start(**knobs: object) -> RunningSandbox:
        config = SandboxConfig(**knobs)  # type: ignore[arg-type]
        sandbox = await start_sandbox(config=config, webhook_secret=WEBHOOK_SECRET)
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        await sandbox.close()


@pytest.fixture
async def sandbox(sandbox_factory):
    """A fresh sandbox with default knobs."""
    return await sandbox_factory()


@pytest.fixture
def webhook_secret() -> bytes:
    """The secret every test sandbox signs its webhooks with."""
    return WEBHOOK_SECRET


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting is refused before anything is sent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _stripe_mock_binary() -> str | None:
    candidates = [os.environ.get("STRIPE_MOCK_BIN", ""), str(_REPO / ".tools/bin/stripe-mock")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("stripe-mock")


@pytest.fixture(scope="session")
def stripe_mock_url() -> Iterator[str]:
    """Base URL of Stripe's official mock on a loopback port (HTTP and HTTPS both loopback)."""
    binary = _stripe_mock_binary()
    if binary is None:
        pytest.skip("stripe-mock not installed (go module github.com/stripe/stripe-mock)")
    process = subprocess.Popen(  # noqa: S603 - our own test binary, fixed arguments
        [binary, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for _ in range(20):
            match = _LISTENING.search(process.stdout.readline())
            if match:
                yield f"http://{match.group(1)}"
                break
        else:
            pytest.fail("stripe-mock did not report its HTTP address")
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
