"""`make run`: bring up what exists of the mesh on this machine, and say plainly what does not.

Starts PostgreSQL (embedded under .data/, or the one COMMERCE_DATABASE_URL names), then every
service that has a `services/<name>/__main__.py`, each on its fixed local port, and stops them
all on Ctrl-C. `python -m services.devrun token` prints a JWT the local services accept.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass

import jwt

from services.chassis.db.embedded import EmbeddedPostgres, default_data_dir

DATA = default_data_dir().parent
ROOT = DATA.parent
DEV_KEY = DATA / "dev-jwt.key"
DEV_ISSUER = DEV_AUDIENCE = "commerce-mesh"


@dataclass(frozen=True)
class Component:
    """A part of the mesh, how to start it, where it listens, and the issue that builds it."""

    name: str
    issue: int
    port: int | None = None
    service: str | None = None  # the service whose settings (COMMERCE_<SERVICE>_*) it reads
    module: str | None = None  # Python: started if the module has a __main__
    binary: str | None = None  # Go: built by `make deps` into .tools/bin
    args: tuple[str, ...] = ()
    scheme: str = "grpc"


PUBSUB_PORT = 8085
COMPONENTS = (
    Component(
        "Pub/Sub emulator (pstest)",
        4,
        PUBSUB_PORT,
        binary="pubsub-emulator",
        args=("-port", str(PUBSUB_PORT)),
        scheme="pubsub",
    ),
    Component("ledger", 3, 50051, "ledger", "services.ledger"),
    Component("ledger outbox relay", 4, None, "ledger", "services.ledger", args=("relay",)),
    Component("payments", 5, 50052, "payments", "services.payments"),
    Component("checkout", 6, 50053, "checkout", "services.checkout"),
    Component("invoicing", 7, 50054, "invoicing", "services.invoicing"),
    Component("REST gateway (grpc-gateway)", 8, 8080, binary="gateway", scheme="http"),
    Component("trace viewer", 9),
)


def dev_key() -> str:
    """The local HS256 signing secret, generated once under .data/ (never committed)."""
    if not DEV_KEY.exists():
        DEV_KEY.parent.mkdir(parents=True, exist_ok=True)
        DEV_KEY.write_text(secrets.token_urlsafe(48))
        DEV_KEY.chmod(0o600)
    return DEV_KEY.read_text().strip()


def dev_token(tenant: str | None, roles: list[str], subject: str, ttl_seconds: int) -> str:
    """A JWT for local calls, signed with the local secret."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": subject,
        "roles": roles,
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if tenant:
        claims["tenant"] = tenant
    return jwt.encode(claims, dev_key(), algorithm="HS256")


def _command(component: Component) -> list[str] | None:
    """How to start the component, or None if it does not exist yet."""
    if component.binary is not None:
        binary = ROOT / ".tools" / "bin" / component.binary
        return [str(binary), *component.args] if binary.exists() else None
    if component.module is None:
        return None
    try:
        if importlib.util.find_spec(f"{component.module}.__main__") is None:
            return None
    except ModuleNotFoundError:  # the service's package does not exist yet
        return None
    return [sys.executable, "-m", component.module, *component.args]


def _env(component: Component, started: list[Component], database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{PUBSUB_PORT}",
        "PUBSUB_PROJECT_ID": "commerce-local",
    }
    if component.binary == "gateway":
        return {
            **env,
            "COMMERCE_GATEWAY_ADDR": f"127.0.0.1:{component.port}",
            "COMMERCE_GATEWAY_OPENAPI": str(ROOT / "gen" / "openapi" / "commerce.swagger.json"),
            **{
                f"COMMERCE_GATEWAY_{s.service.upper()}_ADDR": f"127.0.0.1:{s.port}"
                for s in started
                if s.service and s.port
            },
        }
    if component.service is None:
        return env
    prefix = f"COMMERCE_{component.service.upper()}_"
    env.update(
        {
            f"{prefix}AUTH__KEY_FILE": str(DEV_KEY),
            f"{prefix}AUTH__ALGORITHMS": '["HS256"]',
            # Stable role passwords: the server and its workers provision the same database.
            f"{prefix}OWNER_PASSWORD": _dev_secret(f"{component.service}-owner"),
            f"{prefix}APP_PASSWORD": _dev_secret(f"{component.service}-app"),
            "COMMERCE_DATABASE_URL": database_url,
        }
    )
    if component.port:
        env[f"{prefix}PORT"] = str(component.port)
    return env


def _dev_secret(name: str) -> str:
    path = DATA / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


async def _apply_topology(env: dict[str, str]) -> None:
    """Wait for the emulator, then create the mesh's topics and subscriptions on it."""
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", PUBSUB_PORT)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        break
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.chassis.events.cli", "topology", "apply", env=env
    )
    if await cli.wait() != 0:
        print("  (applying the Pub/Sub topology failed; see above)")


async def run() -> int:
    """Start everything that exists, report the rest, and wait for Ctrl-C."""
    dev_key()
    configured = os.environ.get("COMMERCE_DATABASE_URL")
    embedded: EmbeddedPostgres | None = None
    if configured:
        database_url = configured
    else:
        embedded = EmbeddedPostgres()
        # The superuser URL: each service provisions its own database and roles from it.
        database_url = embedded.start().render_as_string(hide_password=False)
    print("Commerce Mesh — local run")
    where = "configured by COMMERCE_DATABASE_URL" if configured else f"embedded, data in {DATA}"
    print(f"  {'PostgreSQL 16':<46} {database_url}\n  {'':<46} ({where})")
    children: list[asyncio.subprocess.Process] = []
    started: list[Component] = []
    for component in COMPONENTS:
        argv = _command(component)
        if argv is None:
            print(f"  {component.name:<46} not built yet (issue #{component.issue})")
            continue
        env = _env(component, started, database_url)
        children.append(await asyncio.create_subprocess_exec(*argv, env=env))
        started.append(component)
        where = f"{component.scheme}://127.0.0.1:{component.port}" if component.port else "running"
        print(f"  {component.name:<46} {where}")
        if component.binary == "pubsub-emulator":
            await _apply_topology(env)
    print("\nREST docs: http://127.0.0.1:8080/docs  (spec: /openapi.json)")
    print("A token for grpcurl or curl:  .venv/bin/python -m services.devrun token --tenant acme")
    print("Ctrl-C stops everything.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    waiters = [asyncio.create_task(child.wait()) for child in children]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
    for child in children:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)  # services drain gracefully on SIGTERM
    await asyncio.gather(*(child.wait() for child in children))
    stopper.cancel()
    if embedded is not None:
        embedded.stop()
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """`run` (default) or `token`."""
    parser = argparse.ArgumentParser(prog="python -m services.devrun", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    token = commands.add_parser("token", help="print a JWT the local services accept")
    token.add_argument("--tenant", default="acme")
    token.add_argument("--role", dest="roles", action="append", default=None)
    token.add_argument("--subject", default="developer")
    token.add_argument("--ttl", type=int, default=3600)
    args = parser.parse_args(argv)
    if args.command == "token":
        print(dev_token(args.tenant, args.roles or ["tenant_admin"], args.subject, args.ttl))
        return 0
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
