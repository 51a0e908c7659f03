"""Settlement report adapters: local files under a root, and HTTP(S) under allowed base URLs.

A report location arrives in an RPC, so neither adapter reads anything it was not configured
to: files outside `root` and URLs outside `allowed_bases` are refused (no path traversal, no
requests to arbitrary hosts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from services.payments.reconciliation.ports import ReportUnavailableError, SettlementReports

MAX_REPORT_BYTES = 64 * 1024 * 1024
"""A settlement report larger than this is refused rather than held in memory."""


class FileSettlementReports:
    """Reports as files under `root`, named by a relative path, an absolute path inside
    `root`, or a file:// URI."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def check(self, location: str) -> Path:
        """The file `location` names; ReportUnavailableError when it is outside the root."""
        path = Path(urlsplit(location).path if location.startswith("file://") else location)
        resolved = (self._root / path).resolve()
        if not resolved.is_relative_to(self._root):
            msg = f"{location} is outside the settlement report directory"
            raise ReportUnavailableError(msg)
        return resolved

    async def fetch(self, psp: str, location: str) -> str:
        del psp  # the file is the report, whoever the PSP
        return await asyncio.to_thread(_read, self.check(location), location)


def _read(path: Path, location: str) -> str:
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            msg = f"{location} is larger than {MAX_REPORT_BYTES} bytes"
            raise ReportUnavailableError(msg)
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        msg = f"cannot read {location}: {exc.strerror or exc}"
        raise ReportUnavailableError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = f"{location} is not UTF-8 text (byte {exc.start})"
        raise ReportUnavailableError(msg) from exc


class HttpSettlementReports:
    """Reports downloaded over HTTP(S) from URLs under one of `allowed_bases`
    (e.g. the PSP sandbox's `http://127.0.0.1:8181/v1/settlements`)."""

    def __init__(
        self, client: httpx.AsyncClient, allowed_bases: Sequence[str], timeout: float = 30.0
    ) -> None:
        self._client = client
        self._bases = tuple(urlsplit(base) for base in allowed_bases)
        self._timeout = timeout

    def _allowed(self, location: str) -> bool:
        """Same scheme and host as a base, and its path or below it (no dot segments)."""
        url = urlsplit(location)
        if url.username or url.password or ".." in url.path.split("/"):
            return False
        for base in self._bases:
            root = base.path.rstrip("/")
            if (url.scheme, url.netloc) == (base.scheme, base.netloc) and (
                url.path.rstrip("/") == root or url.path.startswith(root + "/")
            ):
                return True
        return False

    def check(self, location: str) -> None:
        """ReportUnavailableError unless `location` is under an allowed base URL."""
        if not self._allowed(location):
            msg = f"{location} is not under an allowed settlement report URL"
            raise ReportUnavailableError(msg)

    async def fetch(self, psp: str, location: str) -> str:
        del psp
        self.check(location)
        try:
            async with self._client.stream("GET", location, timeout=self._timeout) as response:
                if response.status_code != httpx.codes.OK:
                    msg = f"downloading {location} answered HTTP {response.status_code}"
                    raise ReportUnavailableError(msg)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_REPORT_BYTES:
                        msg = f"{location} is larger than {MAX_REPORT_BYTES} bytes"
                        raise ReportUnavailableError(msg)
        except httpx.HTTPError as exc:
            msg = f"cannot download {location}: {type(exc).__name__}"
            raise ReportUnavailableError(msg) from exc
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = f"{location} is not UTF-8 text (byte {exc.start})"
            raise ReportUnavailableError(msg) from exc


class SettlementReportsByScheme:
    """Chooses the adapter by the location's URI scheme; a bare path is a file."""

    def __init__(self, by_scheme: Mapping[str, SettlementReports]) -> None:
        self._by_scheme = dict(by_scheme)

    def _adapter(self, location: str) -> SettlementReports:
        scheme = urlsplit(location).scheme or "file"
        adapter = self._by_scheme.get(scheme)
        if adapter is None:
            msg = f"settlement reports at {scheme}:// locations are not configured"
            raise ReportUnavailableError(msg)
        return adapter

    def check(self, location: str) -> None:
        """Refuse, before any run starts, a location no configured adapter may read
        (ReportUnavailableError): an unconfigured scheme, a URL outside the allowed bases,
        a path outside the report directory. Reachability is the run's to find out."""
        adapter = self._adapter(location)
        check = getattr(adapter, "check", None)
        if check is not None:
            check(location)

    async def fetch(self, psp: str, location: str) -> str:
        return await self._adapter(location).fetch(psp, location)
