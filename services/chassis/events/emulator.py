"""Starts and stops the local Pub/Sub API server (the project's pstest build) as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

# services/chassis/events/emulator.py -> repository root.
_REPO_ROOT = Path(__file__).resolve().parents[3]
EMULATOR_HOST_ENV = "PUBSUB_EMULATOR_HOST"
_LISTENING = re.compile(r"listening on (\S+:\d+)")
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0


class EmulatorError(RuntimeError):
    """The emulator binary is missing or did not come up."""


def default_binary() -> Path:
    """`.tools/bin/pubsub-emulator`, built by `make deps` from services/pubsub-emulator."""
    return _REPO_ROOT / ".tools" / "bin" / "pubsub-emulator"


class PubSubEmulator:
    """One emulator process on a free loopback port; `host` is what PUBSUB_EMULATOR_HOST takes."""

    def __init__(self, binary: Path | None = None) -> None:
        self._binary = binary or default_binary()
        self._process: subprocess.Popen[str] | None = None
        self._host: str | None = None

    @property
    def host(self) -> str:
        if self._host is None:
            raise EmulatorError("the Pub/Sub emulator is not started")
        return self._host

    def start(self) -> str:
        """Start the server, wait for its address line, and return `127.0.0.1:<port>`."""
        if self._process is not None:
            return self.host
        if not os.access(self._binary, os.X_OK):
            raise EmulatorError(f"{self._binary} not found: run `make deps` to build it")
        self._process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            [str(self._binary), "-host", "127.0.0.1", "-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._host = self._read_address(self._process)
        return self._host

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL if it lingers) and reap it."""
        process, self._process, self._host = self._process, None, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _read_address(self, process: subprocess.Popen[str]) -> str:
        found: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                match = _LISTENING.search(line)
                if match:
                    found.append(match.group(1))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(_START_TIMEOUT_S)
        if not found:
            self.stop_process(process)
            raise EmulatorError("the Pub/Sub emulator did not report its address")
        return found[0]

    @staticmethod
    def stop_process(process: subprocess.Popen[str]) -> None:
        process.kill()
        process.wait()
