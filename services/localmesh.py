"""The whole mesh as local processes on loopback, started in order and each waited for until
healthy; stopped in reverse order with SIGTERM, so every part drains.

Used by `make run` and `make demo` (services/devrun.py, fixed ports, data under .data/) and by
the end-to-end tests (tests/e2e, free ports, a private data directory). A part whose code does
not exist yet is reported and skipped, so the mesh grows as the services land.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import grpc
import httpx
import jwt
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.chassis import traceviewer
from services.chassis.db.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools" / "bin"
PUBSUB_PROJECT = "commerce-local"
ISSUER = AUDIENCE = "commerce-mesh"  # the chassis' defaults (services/chassis/config.py)

Probe = Literal["grpc", "http", "tcp"]


@dataclass(frozen=True)
class Part:
    """One process of the mesh: how to start it, how to tell it is healthy, who builds it."""

    key: str  # also the name of its port in `ports` (and of its log file)
    title: str
    issue: int
    probe: Probe
    service: str | None = None  # whose settings (COMMERCE_<SERVICE>_*) it reads
    module: str | None = None  # Python: started if `<module>.__main__` exists
    binary: str | None = None  # Go: built by `make deps` into .tools/bin
    args: tuple[str, ...] = ()
    health_path: str = "/readyz"  # for probe="http"
    worker: bool = False  # a service's worker: probed on its WORKER__HEALTH_PORT

    @property
    def scheme(self) -> str:
        return self.probe


GRPC_SERVICES = ("ledger", "payments", "checkout", "invoicing")

PARTS: tuple[Part, ...] = (
    Part("traceviewer", "trace viewer (Zipkin)", 9, "http", health_path="/health"),
    Part("pubsub", "Pub/Sub emulator (pstest)", 4, "tcp", binary="pubsub-emulator"),
    Part("ledger", "ledger", 3, "grpc", "ledger", "services.ledger"),
    Part("ledger-relay", "ledger outbox relay", 4, "grpc", "ledger", "services.ledger",
         args=("relay",), worker=True),
    Part("psp-sandbox", "PSP sandbox (HTTP)", 5, "http", module="services.payments.sandbox",
         health_path="/admin/config"),
    Part("payments", "payments", 5, "grpc", "payments", "services.payments"),
    Part("payments-relay", "payments outbox relay", 5, "grpc", "payments", "services.payments",
         args=("relay",), worker=True),
    Part("checkout", "checkout", 6, "grpc", "checkout", "services.checkout"),
    Part("checkout-relay", "checkout outbox relay", 6, "grpc", "checkout", "services.checkout",
         args=("relay",), worker=True),
    Part("checkout-recovery", "checkout saga recovery", 6, "grpc", "checkout",
         "services.checkout", args=("recover",), worker=True),
    Part("invoicing", "invoicing", 7, "grpc", "invoicing", "services.invoicing"),
    Part("invoicing-relay", "invoicing outbox relay", 7, "grpc", "invoicing",
         "services.invoicing", args=("relay",), worker=True),
    Part("invoicing-consumer", "invoicing event consumer", 7, "grpc", "invoicing",
         "services.invoicing", args=("consume",), worker=True),
    Part("invoicing-ledger-poster", "invoicing ledger poster", 7, "grpc", "invoicing",
         "services.invoicing", args=("post-ledger",), worker=True),
    Part("gateway", "REST gateway (grpc-gateway)", 8, "http", binary="gateway"),
)  # fmt: skip

DEV_PORTS: Mapping[str, int] = {
    "traceviewer": traceviewer.DEFAULT_PORT,
    "pubsub": 8085,
    "ledger": 50051,
    "payments": 50052,
    "checkout": 50053,
    "invoicing": 50054,
    "psp-sandbox": 8090,
    "gateway": 8080,
    # Workers answer health checks from 50060 on; every Python process serves /metrics.
    **{p.key: 50060 + i for i, p in enumerate(p for p in PARTS if p.worker)},
    **{f"{p.key}-metrics": 9464 + i for i, p in enumerate(p for p in PARTS if p.service)},
}


def sign_token(
    key: str, *, tenant: str | None, roles: list[str], subject: str, ttl: int = 3600
) -> str:
    """An HS256 JWT the local mesh accepts (its services verify with the same secret)."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": subject,
        "roles": roles,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl,
    }
    if tenant:
        claims["tenant"] = tenant
    return jwt.encode(claims, key, algorithm="HS256")


def free_ports(keys: Iterable[str] = DEV_PORTS) -> dict[str, int]:
    """A free loopback port for every key (for tests beside a running `make run`)."""
    sockets = []
    try:
        for _ in keys:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return {key: s.getsockname()[1] for key, s in zip(keys, sockets, strict=True)}
    finally:
        for s in sockets:
            s.close()


def command(part: Part) -> list[str] | None:
    """How to start the part, or None while its code does not exist."""
    if part.key == "traceviewer":
        return traceviewer.command()  # None unless installed (make deps) and Java is there
    if part.binary is not None:
        binary = TOOLS / part.binary
        return [str(binary)] if binary.exists() else None
    assert part.module is not None
    try:
        if importlib.util.find_spec(f"{part.module}.__main__") is None:
            return None
    except ModuleNotFoundError:  # the service's package does not exist yet
        return None
    return [sys.executable, "-m", part.module, *part.args]


@dataclass
class Running:
    """A started part."""

    part: Part
    process: asyncio.subprocess.Process
    port: int | None
    log_path: Path
    log_file: IO[bytes]

    @property
    def address(self) -> str:
        if self.part.worker:
            return f"health grpc://127.0.0.1:{self.port}"
        return f"{self.part.scheme}://127.0.0.1:{self.port}"


class PartFailedError(RuntimeError):
    """A part exited or never became healthy; the message carries the end of its log."""


@dataclass
class LocalMesh:
    """Processes for every part that exists, sharing one PostgreSQL and one Pub/Sub server."""

    data_dir: Path
    ports: Mapping[str, int]
    jwt_key_file: Path
    secret: Callable[[str], str]  # a stable secret per name (role passwords, webhook secret)
    database_url: str | None = None  # a superuser URL; the embedded PostgreSQL otherwise
    extra_env: Mapping[str, str] = field(default_factory=dict)
    only: frozenset[str] | None = None  # start just these parts (keys); all that exist by default
    health_timeout: float = 90.0
    running: list[Running] = field(default_factory=list)
    skipped: list[Part] = field(default_factory=list)
    _embedded: EmbeddedPostgres | None = None

    async def start(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Start PostgreSQL, then each part in order, waiting until it is healthy."""
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        if self.database_url is None:
            progress("PostgreSQL (embedded) starting")
            self._embedded = EmbeddedPostgres(self.data_dir / "postgres")
            url = await asyncio.to_thread(self._embedded.start)
            self.database_url = url.render_as_string(hide_password=False)
        for part in PARTS:
            if self.only is not None and part.key not in self.only:
                continue
            argv = command(part)
            if argv is None:
                self.skipped.append(part)
                continue
            progress(f"{part.title} starting")
            running = await self._spawn(part, argv)
            self.running.append(running)
            await self._wait_healthy(running)
            if part.key == "pubsub":
                await self._apply_topology()
            progress(f"{part.title} healthy at {running.address}")

    async def stop(self) -> list[tuple[str, int]]:
        """SIGTERM every part, newest first, and wait; the parts that exited abnormally."""
        failed: list[tuple[str, int]] = []
        for running in reversed(self.running):
            process = running.process
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            # 143: the JVM's exit status on SIGTERM (the trace viewer).
            if process.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                failed.append((running.part.key, process.returncode or 0))
            running.log_file.close()
        self.running.clear()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None
        return failed

    def token(self, tenant: str | None, roles: list[str], subject: str = "local") -> str:
        """A JWT the mesh's services accept."""
        key = self.jwt_key_file.read_text().strip()
        return sign_token(key, tenant=tenant, roles=roles, subject=subject)

    def url(self, key: str) -> str:
        return f"127.0.0.1:{self.ports[key]}"

    def env(self, part: Part) -> dict[str, str]:
        """The environment a part runs with: where everything is, keys, passwords."""
        env = {
            **os.environ,
            "PUBSUB_EMULATOR_HOST": self.url("pubsub"),
            "PUBSUB_PROJECT_ID": PUBSUB_PROJECT,
            **self.extra_env,
        }
        if part.key == "traceviewer":
            return traceviewer.environment(env)
        if part.key == "pubsub":
            return env
        if part.binary == "gateway":
            # Only the services that run: its readiness waits for every service it dials.
            serving = {r.part.key for r in self.running} & set(GRPC_SERVICES)
            env.update(
                {
                    "COMMERCE_GATEWAY_ADDR": self.url("gateway"),
                    "COMMERCE_GATEWAY_OPENAPI": str(ROOT / "gen/openapi/commerce.swagger.json"),
                    **{f"COMMERCE_GATEWAY_{s.upper()}_ADDR": self.url(s) for s in serving},
                }
            )
            if any(r.part.key == "traceviewer" for r in self.running):
                env["COMMERCE_GATEWAY_ZIPKIN_ENDPOINT"] = traceviewer.spans_endpoint(
                    self.ports["traceviewer"]
                )
            return env
        if part.service is None:  # the PSP sandbox: it notifies payments through the REST facade
            env["SANDBOX_WEBHOOK_SECRET"] = self.secret("psp-sandbox-webhook")
            env["SANDBOX_WEBHOOK_URL"] = f"http://{self.url('gateway')}/v1/webhooks/sandbox"
            return env
        prefix = f"COMMERCE_{part.service.upper()}_"
        assert self.database_url is not None
        env.update(
            {
                f"{prefix}HOST": "127.0.0.1",
                f"{prefix}PORT": str(self.ports[part.service]),
                f"{prefix}AUTH__KEY_FILE": str(self.jwt_key_file),
                f"{prefix}AUTH__ALGORITHMS": '["HS256"]',
                # Stable role passwords: the server and its workers provision one database.
                f"{prefix}OWNER_PASSWORD": self.secret(f"{part.service}-owner"),
                f"{prefix}APP_PASSWORD": self.secret(f"{part.service}-app"),
                f"{prefix}TELEMETRY__METRICS_HOST": "127.0.0.1",
                f"{prefix}TELEMETRY__METRICS_PORT": str(self.ports[f"{part.key}-metrics"]),
                "COMMERCE_DATABASE_URL": self.database_url,
                **{f"{prefix}{s.upper()}_ADDR": self.url(s) for s in GRPC_SERVICES},
            }
        )
        # The service's own identity toward the services it calls (`<DEP>_TOKEN_FILE`).
        token_file = self._write_secret(
            f"{part.service}.jwt",
            sign_token(
                self.jwt_key_file.read_text().strip(),
                tenant=None,
                roles=[f"service:{part.service}"],
                subject=part.service,
                ttl=30 * 24 * 3600,
            ),
        )
        env.update({f"{prefix}{s.upper()}_TOKEN_FILE": str(token_file) for s in GRPC_SERVICES})
        if part.service == "payments":
            env[f"{prefix}PSP__CREDENTIALS_FILE"] = str(self._psp_credentials())
        if part.service == "checkout":  # recovery runs as its own part, as on GKE
            env[f"{prefix}SAGA__RECOVER_IN_SERVER"] = "false"
        if part.worker:
            env[f"{prefix}WORKER__HEALTH_PORT"] = str(self.ports[part.key])
        if any(r.part.key == "traceviewer" for r in self.running):
            env[f"{prefix}TELEMETRY__ZIPKIN_ENDPOINT"] = traceviewer.spans_endpoint(
                self.ports["traceviewer"]
            )
        return env

    def _write_secret(self, name: str, content: str) -> Path:
        directory = self.data_dir / "secrets"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / name
        path.touch(mode=0o600)
        path.write_text(content)
        return path

    def _psp_credentials(self) -> Path:
        """The PSPs payments routes to: the local sandbox (services/payments/sandbox)."""
        return self._write_secret(
            "psp-credentials.toml",
            "[psps.sandbox]\n"
            'kind = "sandbox"\n'
            f'base_url = "http://{self.url("psp-sandbox")}"\n'
            f'webhook_secret = "{self.secret("psp-sandbox-webhook")}"\n',
        )

    async def _spawn(self, part: Part, argv: list[str]) -> Running:
        if part.key == "traceviewer":
            argv = traceviewer.command(self.ports["traceviewer"]) or argv
        elif part.key == "pubsub":
            argv = [*argv, "-port", str(self.ports["pubsub"])]
        elif part.key == "psp-sandbox":
            argv = [*argv, "--port", str(self.ports["psp-sandbox"])]
        log_path = self.data_dir / "logs" / f"{part.key}.log"
        log_file = log_path.open("ab")
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=self.env(part),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the parts in order
        )
        return Running(part, process, self.ports.get(part.key), log_path, log_file)

    async def _wait_healthy(self, running: Running) -> None:
        deadline = time.monotonic() + self.health_timeout
        while time.monotonic() < deadline:
            if running.process.returncode is not None:
                raise PartFailedError(self._failure(running, "exited during start-up"))
            if await _healthy(running):
                return
            await asyncio.sleep(0.2)
        raise PartFailedError(self._failure(running, f"not healthy after {self.health_timeout}s"))

    def _failure(self, running: Running, what: str) -> str:
        running.log_file.flush()
        tail = running.log_path.read_text(errors="replace").splitlines()[-30:]
        return f"{running.part.title} {what}; end of {running.log_path}:\n" + "\n".join(tail)

    async def _apply_topology(self) -> None:
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.chassis.events.cli",
            "topology",
            "apply",
            env=self.env(PARTS[0]),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await cli.communicate()
        if cli.returncode != 0:
            raise PartFailedError("applying the Pub/Sub topology failed:\n" + output.decode())


async def _healthy(running: Running) -> bool:
    port = running.port
    assert port is not None
    match running.part.probe:
        case "tcp":
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True
        case "http":
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    reply = await client.get(f"http://127.0.0.1:{port}{running.part.health_path}")
            except httpx.HTTPError:
                return False
            return reply.status_code == httpx.codes.OK
        case "grpc":
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=2
                    )
                    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
            return False
