"""The bare gRPC ceiling: a trivial grpc.aio echo server (no interceptors, no validation, no
database) that answers each request with its own bytes.

`python -m bench.echo --port N` serves it in its own process, as the services run in theirs;
bench/common/echo.js drives it with k6 (its contract: bench/common/echo.proto).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable

import grpc

METHOD = "/bench.Echo/Echo"


def _identity(data: bytes) -> bytes:
    return data


async def _echo(request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def start_echo_server(host: str = "127.0.0.1", port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                _echo, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound


def echo_call(
    channel: grpc.aio.Channel,
) -> Callable[[bytes], grpc.aio.UnaryUnaryCall[bytes, bytes]]:
    return channel.unary_unary(
        METHOD, request_serializer=_identity, response_deserializer=_identity
    )


async def _serve(port: int) -> None:
    server, bound = await start_echo_server(port=port)
    sys.stdout.write(f"echo listening on 127.0.0.1:{bound}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
