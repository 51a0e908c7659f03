"""The local trace viewer: Zipkin's server (in-memory storage) on loopback, for `make run`.

`scripts/install-trace-viewer.sh` puts the pinned jar under .tools/zipkin/; this module starts
it, waits until it answers `/health`, reads traces back through its HTTP API, and stops it
(SIGTERM, then SIGKILL after a grace period). Services send it spans as Zipkin JSON v2 to
`spans_endpoint` (docs/adr/0018-trace-viewer.md says why Zipkin, and why not OTLP here).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

import httpx

ROOT = Path(__file__).resolve().parents[2]
ZIPKIN_VERSION = "3.6.1"  # keep in step with scripts/install-trace-viewer.sh
ZIPKIN_JAR = ROOT / ".tools" / "zipkin" / f"zipkin-server-{ZIPKIN_VERSION}-exec.jar"
DEFAULT_PORT = 9411
MAX_SPANS = 50_000  # in-memory storage drops the oldest traces beyond this (~500 checkouts)
HEAP = "384m"  # spans carry up to 2 KB of SQL text each: 50,000 of them fit


class TraceViewerUnavailableError(RuntimeError):
    """The viewer is not installed, Java is missing, or it did not become healthy."""


def command(port: int = DEFAULT_PORT, jar: Path = ZIPKIN_JAR) -> list[str] | None:
    """The argv that starts the viewer on 127.0.0.1:`port`, or None if it is not installed."""
    java = shutil.which("java")
    if java is None or not jar.is_file():
        return None
    return [
        java,
        f"-Xmx{HEAP}",
        "-XX:+UseSerialGC",  # one small heap, no GC threads competing with the mesh
        "-XX:TieredStopAtLevel=1",  # start fast; a local viewer never needs C2
        "-jar",
        str(jar),
        # The whole port list, not just the address: a list set from the command line
        # replaces the default one, so a lone `ip` would leave the port random.
        f"--armeria.ports[0].port={port}",
        "--armeria.ports[0].ip=127.0.0.1",  # loopback only: traces may name internal hosts
        "--armeria.ports[0].protocols=http",
    ]


def environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The viewer's environment: in-memory storage, bounded, no self-tracing."""
    return {
        **(os.environ if base is None else base),
        "STORAGE_TYPE": "mem",
        "MEM_MAX_SPANS": str(MAX_SPANS),
        "SELF_TRACING_ENABLED": "false",
        "COLLECTOR_GRPC_ENABLED": "false",
    }


def base_url(port: int = DEFAULT_PORT) -> str:
    return f"http://127.0.0.1:{port}"


def spans_endpoint(port: int = DEFAULT_PORT) -> str:
    """Where an exporter POSTs Zipkin JSON v2 spans."""
    return f"{base_url(port)}/api/v2/spans"


def trace_link(trace_id: int | str, port: int = DEFAULT_PORT) -> str:
    """The viewer's page for one trace (what `make run`/`make demo` print)."""
    hex_id = format(trace_id, "032x") if isinstance(trace_id, int) else trace_id
    return f"{base_url(port)}/zipkin/traces/{hex_id}"


async def is_healthy(port: int = DEFAULT_PORT, request_timeout: float = 2.0) -> bool:
    """Whether the viewer answers `/health` with status UP."""
    try:
        async with httpx.AsyncClient(timeout=request_timeout) as client:
            reply = await client.get(f"{base_url(port)}/health")
    except httpx.HTTPError:
        return False
    return reply.status_code == httpx.codes.OK and reply.json().get("status") == "UP"


async def fetch_trace(
    trace_id: int | str, port: int = DEFAULT_PORT, request_timeout: float = 5.0
) -> list[dict[str, Any]]:
    """The spans the viewer holds for `trace_id` (Zipkin JSON v2); [] if it holds none."""
    hex_id = format(trace_id, "032x") if isinstance(trace_id, int) else trace_id
    async with httpx.AsyncClient(timeout=request_timeout) as client:
        reply = await client.get(f"{base_url(port)}/api/v2/trace/{hex_id}")
    if reply.status_code == httpx.codes.NOT_FOUND:
        return []
    reply.raise_for_status()
    spans: list[dict[str, Any]] = reply.json()
    return spans


async def wait_for_trace(
    trace_id: int | str, *, min_spans: int = 1, port: int = DEFAULT_PORT, within: float = 15.0
) -> list[dict[str, Any]]:
    """Poll until the viewer holds at least `min_spans` spans of the trace (export is async)."""
    deadline = time.monotonic() + within
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans = await fetch_trace(trace_id, port)
        if len(spans) >= min_spans:
            return spans
        await asyncio.sleep(0.2)
    return spans


@dataclass
class TraceViewer:
    """One Zipkin server process; `start` waits until healthy, `stop` always reaps it."""

    port: int = DEFAULT_PORT
    log_path: Path | None = None  # the server's output; discarded if None
    jar: Path = ZIPKIN_JAR
    startup_timeout: float = 90.0
    _process: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return base_url(self.port)

    @property
    def spans_endpoint(self) -> str:
        return spans_endpoint(self.port)

    def trace_link(self, trace_id: int | str) -> str:
        return trace_link(trace_id, self.port)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the server and wait until `/health` says UP; raises (and reaps) otherwise."""
        argv = command(self.port, self.jar)
        if argv is None:
            raise TraceViewerUnavailableError(
                f"{self.jar} or java is missing; run scripts/install-trace-viewer.sh"
            )
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            env=environment(),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log if self._log is not None else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the orchestrator, which stops us in order
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                code = self._process.returncode
                await self.stop()
                raise TraceViewerUnavailableError(f"zipkin exited with {code} during start-up")
            if await is_healthy(self.port):
                return
            await asyncio.sleep(0.25)
        await self.stop()
        raise TraceViewerUnavailableError(f"zipkin not healthy after {self.startup_timeout}s")

    async def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; the exit code (None if not run).

        The JVM exits with 143 (128 + SIGTERM) when it stops on SIGTERM.
        """
        process, self._process = self._process, None
        code = None
        if process is not None:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), grace)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            code = process.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
