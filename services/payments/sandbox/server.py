"""Start and stop the sandbox on a loopback port (0 picks a free one)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from aiohttp import web

from services.payments.sandbox.app import SandboxState, create_app
from services.payments.sandbox.config import SandboxConfig, is_loopback
from services.payments.sandbox.notifier import Notifier


@dataclass(slots=True)
class RunningSandbox:
    url: str
    state: SandboxState
    runner: web.AppRunner

    async def close(self) -> None:
        await self.state.notifier.close()
        await self.runner.cleanup()


async def start_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    config: SandboxConfig | None = None,
    webhook_secret: bytes | None = None,
) -> RunningSandbox:
    """A running sandbox; without `webhook_secret` webhooks are signed with a random one."""
    if not is_loopback(host):
        raise ValueError("the sandbox listens on loopback only")
    holder: list[SandboxState] = []
    notifier = Notifier(
        webhook_secret or secrets.token_bytes(32),
        lambda: holder[0].config.webhook_url if holder else "",
    )
    state = SandboxState(config=config or SandboxConfig(), notifier=notifier)
    holder.append(state)
    # A short grace: a slow-token answer still sleeping must not hold shutdown for a minute.
    runner = web.AppRunner(
        create_app(state), handle_signals=False, access_log=None, shutdown_timeout=2.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningSandbox(f"http://{bound_host}:{bound_port}", state, runner)
