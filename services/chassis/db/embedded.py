"""Runs a real PostgreSQL 16 from the pgserver wheel for local runs and tests; socket only.

The server listens on no TCP address, only on a unix socket inside its data directory
(mode 0700). The `postgres` superuser is trusted on that socket, since only the directory's
owner (and root) can reach it; every other role must give its password (scram-sha-256).

As root, pgserver runs PostgreSQL as an unprivileged OS user `pgserver` (created with
`useradd` if missing), chowns the data directory to it and adds o+rx to every parent
directory so that user can reach it. Several processes may share one data directory: a start
finds a running server and reuses it, and the server stops when the last process stops.
"""

from __future__ import annotations

import os
import time
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import psycopg
from sqlalchemy.engine import URL

from services.chassis.db.settings import libpq_conninfo

if TYPE_CHECKING:
    from types import TracebackType

SUPERUSER = "postgres"
# services/chassis/db/embedded.py -> repository root.
_REPO_ROOT = Path(__file__).resolve().parents[3]
# Unix socket paths are limited to 107 bytes; beyond that pgserver would move the socket
# out of the private data directory, to a world-reachable one when run as root.
_MAX_SOCKET_PATH = 107
_SOCKET_NAME = ".s.PGSQL.5432"
_RELOAD_TIMEOUT_S = 10.0
_PG_HBA = """\
# Written by services/chassis/db/embedded.py. No TCP listener: unix socket only.
# TYPE  DATABASE  USER      METHOD
local   all       postgres  trust
local   all       all       scram-sha-256
"""


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL could not be started as required."""


def default_data_dir() -> Path:
    """`.data/postgres` in the repository (`/.data/` is git-ignored)."""
    return _REPO_ROOT / ".data" / "postgres"


def _import_pgserver() -> Any:
    # pgserver resolves a runtime directory at import and platformdirs warns when
    # XDG_RUNTIME_DIR is unset (containers, CI); the /tmp fallback is fine for its lock file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver  # noqa: PLC0415 - imported on first start only: it has import-time effects

    return pgserver


class EmbeddedPostgres:
    """One data directory's server, as seen from this process. `start()` is idempotent."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._data_dir = (data_dir or default_data_dir()).expanduser().resolve()
        self._server: Any = None
        self._handle = ExitStack()

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def admin_url(self) -> URL:
        """Superuser URL: `postgresql+psycopg://postgres@/postgres?host=<data dir>&port=5432`."""
        if self._server is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL is not started")
        info = self._server.get_postmaster_info()
        return URL.create(
            "postgresql+psycopg",
            username=SUPERUSER,
            database="postgres",
            query={"host": str(info.socket_dir), "port": str(info.port)},
        )

    def start(self) -> URL:
        """Start (or reuse) the server and return the admin URL. Blocks for a few seconds at most
        on first use; from async code call it through `asyncio.to_thread`."""
        if self._server is None:
            self._prepare_data_dir()
            pgserver = _import_pgserver()
            server = pgserver.get_server(self._data_dir, cleanup_mode="stop")
            # pgserver counts `with` handles per process and stops on the last one.
            self._server = self._handle.enter_context(server)
            _require_private_socket(self._server.get_postmaster_info().socket_dir, self._data_dir)
            _require_passwords(self._data_dir, self.admin_url)
        return self.admin_url

    def stop(self) -> None:
        """Release this handle; the server shuts down cleanly when no handle in any process is
        left (a process that dies without stopping leaves it running for the next start)."""
        self._server = None
        self._handle.close()

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

    def _prepare_data_dir(self) -> None:
        if len(os.fsencode(self._data_dir / _SOCKET_NAME)) > _MAX_SOCKET_PATH:
            raise EmbeddedPostgresError(
                f"data directory path too long for a unix socket: {self._data_dir}"
            )
        self._data_dir.parent.mkdir(parents=True, exist_ok=True)


def _require_private_socket(socket_dir: Path | None, data_dir: Path) -> None:
    if socket_dir is None or Path(socket_dir).resolve() != data_dir:
        raise EmbeddedPostgresError(
            f"the server at {data_dir} listens outside its data directory ({socket_dir})"
        )


def _require_passwords(data_dir: Path, admin_url: URL) -> None:
    """Make every role but the superuser authenticate with its password, then reload."""
    hba_file = data_dir / "pg_hba.conf"
    if hba_file.read_text() == _PG_HBA:
        return
    conninfo = libpq_conninfo(admin_url)
    loaded_before = _config_load_time(conninfo)
    # Rewritten in place, so the file keeps the server user as its owner when run as root.
    hba_file.write_text(_PG_HBA)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    # The postmaster reloads asynchronously; a fresh session reports its reload time.
    deadline = time.monotonic() + _RELOAD_TIMEOUT_S
    while _config_load_time(conninfo) == loaded_before:
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError("PostgreSQL did not reload pg_hba.conf")
        time.sleep(0.05)


def _config_load_time(conninfo: str) -> object:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT pg_conf_load_time()").fetchone()
    return None if row is None else row[0]
