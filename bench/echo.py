"""A trivial grpc.aio echo server and client: the same machine's bare gRPC call rate."""

from __future__ import annotations

from collections.abc import Callable

import grpc

METHOD = "/bench.Echo/Echo"


def _identity(data: bytes) -> bytes:
    return data


async def _echo(request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def start_echo_server() -> tuple[grpc.aio.Server, int]:
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
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def echo_call(
    channel: grpc.aio.Channel,
) -> Callable[[bytes], grpc.aio.UnaryUnaryCall[bytes, bytes]]:
    return channel.unary_unary(
        METHOD, request_serializer=_identity, response_deserializer=_identity
    )
