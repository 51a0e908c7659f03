"""Builds grpc.aio channels with the mesh's transport defaults and optional (m)TLS from files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.trace import TracerProvider

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Room for rendered invoice PDFs; anything larger belongs in object storage, not a reply."""

DEFAULT_OPTIONS: Mapping[str, int | str] = {
    # Notice dead connections (a pod killed without FIN) within ~40 s instead of minutes.
    # Servers must allow pings this often (chassis: grpc.http2.min_recv_ping_interval_...).
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    # Spread calls over every address a (headless) Service name resolves to; pick_first, the
    # default, would pin a client to one pod for the life of the connection.
    "grpc.service_config": json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}),
    "grpc.primary_user_agent": "commerce-mesh-clients",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    """TLS for a channel, read from files (mounted secrets); with a client pair it is mTLS."""

    ca_cert: Path | None = None
    """PEM roots that sign the server's certificate (None: the system roots)."""
    client_cert: Path | None = None
    """PEM certificate chain that identifies this service to the server."""
    client_key: Path | None = None
    """PEM private key of `client_cert`."""
    server_name: str | None = None
    """Name to verify the server's certificate against when it differs from the target host."""

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("mTLS needs both client_cert and client_key, or neither")

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials built from the files (read now, so a missing file fails fast)."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_cert),
            private_key=_read(self.client_key),
            certificate_chain=_read(self.client_cert),
        )


def channel_options(
    tls: TlsFiles | None = None, overrides: Mapping[str, int | str] | None = None
) -> list[tuple[str, int | str]]:
    """The defaults, the TLS name override if any, then `overrides` (which win)."""
    options: dict[str, int | str] = dict(DEFAULT_OPTIONS)
    if tls is not None and tls.server_name is not None:
        options["grpc.ssl_target_name_override"] = tls.server_name
    options.update(overrides or {})
    return list(options.items())


def create_channel(
    target: str,
    *,
    tls: TlsFiles | None = None,
    options: Mapping[str, int | str] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> grpc.aio.Channel:
    """An aio channel to `target` (e.g. "dns:///ledger:50051"), plaintext when `tls` is None.

    Plaintext is for loopback and meshes whose sidecars already encrypt; configure `tls` for
    anything else. Create one per downstream and share it: channels multiplex calls. Every
    call is traced and carries the W3C trace context (the process-wide tracer provider unless
    one is given), so a downstream span continues the caller's trace.
    """
    merged = channel_options(tls, options)
    tracing = aio_client_interceptors(tracer_provider=tracer_provider)  # type: ignore[no-untyped-call]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=merged, interceptors=tracing)
    return grpc.aio.secure_channel(target, tls.credentials(), options=merged, interceptors=tracing)


def _read(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()
