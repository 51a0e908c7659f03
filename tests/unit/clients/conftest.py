"""A real in-process grpc.aio server for a made-up WidgetService, built from descriptors at run
time so the client tests need no generated domain code."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.rpc import status_pb2
from grpc_status import rpc_status

PACKAGE = "clientstest.v1"
SERVICE = f"{PACKAGE}.WidgetService"
STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING


def _message(name: str, *fields: str) -> descriptor_pb2.DescriptorProto:
    proto = descriptor_pb2.DescriptorProto(name=name)
    for number, field_name in enumerate(fields, start=1):
        proto.field.add(name=field_name, number=number, type=STRING, json_name=field_name)
    return proto


def _build_messages() -> SimpleNamespace:
    service_file = descriptor_pb2.FileDescriptorProto(
        name="clientstest/v1/widget_service.proto", package=PACKAGE, syntax="proto3"
    )
    service_file.message_type.extend(
        [
            _message("CreateWidgetRequest", "request_id", "name"),
            _message("GetWidgetRequest", "name"),
            _message("DeleteWidgetRequest", "name"),
            _message("Widget", "name", "request_id"),
        ]
    )
    service = service_file.service.add(name="WidgetService")
    for method, request in (
        ("CreateWidget", "CreateWidgetRequest"),
        ("GetWidget", "GetWidgetRequest"),
        ("DeleteWidget", "DeleteWidgetRequest"),
    ):
        service.method.add(
            name=method, input_type=f".{PACKAGE}.{request}", output_type=f".{PACKAGE}.Widget"
        )
    # A file with no service: method names then come from AIP request naming.
    loose_file = descriptor_pb2.FileDescriptorProto(
        name="clientstest/v1/loose.proto", package=PACKAGE, syntax="proto3"
    )
    loose_file.message_type.extend(
        [_message("ListGadgetsRequest", "parent"), _message("Listener", "name")]
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(service_file)
    pool.Add(loose_file)
    return SimpleNamespace(
        **{
            name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in (
                "CreateWidgetRequest",
                "GetWidgetRequest",
                "DeleteWidgetRequest",
                "Widget",
                "ListGadgetsRequest",
                "Listener",
            )
        }
    )


MESSAGES = _build_messages()
REQUEST_TYPES = {
    "CreateWidget": MESSAGES.CreateWidgetRequest,
    "GetWidget": MESSAGES.GetWidgetRequest,
    "DeleteWidget": MESSAGES.DeleteWidgetRequest,
}


@dataclass(frozen=True)
class Seen:
    """One attempt as the server received it."""

    method: str
    request: Any
    metadata: dict[str, str]
    time_remaining: float | None


@dataclass
class WidgetServer:
    """Answers each attempt with the next scripted outcome (then successes) and records it.

    Outcomes: a grpc.StatusCode (plain abort), a google.rpc.Status (rich abort, packed with
    grpc_status.rpc_status.to_status), a float (answer after that many seconds), or None.
    """

    port: int = 0
    script: dict[str, list[Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def reset(self) -> None:
        self.script.clear()
        self.seen.clear()

    def will(self, method: str, *outcomes: Any) -> None:
        self.script.setdefault(method, []).extend(outcomes)

    def attempts(self, method: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.method == method]

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                method: grpc.unary_unary_rpc_method_handler(
                    self._answer(method),
                    request_deserializer=request_type.FromString,
                    response_serializer=MESSAGES.Widget.SerializeToString,
                )
                for method, request_type in REQUEST_TYPES.items()
            },
        )

    def _answer(self, method: str) -> Any:
        async def answer(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            self.seen.append(
                Seen(
                    method,
                    request,
                    dict(context.invocation_metadata() or ()),
                    context.time_remaining(),
                )
            )
            queue = self.script.get(method)
            outcome = queue.pop(0) if queue else None
            if isinstance(outcome, float):
                await asyncio.sleep(outcome)
            elif isinstance(outcome, grpc.StatusCode):
                await context.abort(outcome, f"scripted {outcome.name}")
            elif isinstance(outcome, status_pb2.Status):
                status = rpc_status.to_status(outcome)
                await context.abort(status.code, status.details, status.trailing_metadata)
            return MESSAGES.Widget(
                name=getattr(request, "name", ""), request_id=getattr(request, "request_id", "")
            )

        return answer


class WidgetStub:
    """What a generated `WidgetServiceStub(channel)` would be, minus the code generation."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        for method, request_type in REQUEST_TYPES.items():
            setattr(
                self,
                method,
                channel.unary_unary(
                    f"/{SERVICE}/{method}",
                    request_serializer=request_type.SerializeToString,
                    response_deserializer=MESSAGES.Widget.FromString,
                ),
            )


class FakeTime:
    """A clock that only moves when the client sleeps, so backoff costs no real time."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="session")
async def widget_server():
    server_state = WidgetServer()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((server_state.handler(),))
    server_state.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield server_state
    await server.stop(None)


@pytest.fixture(scope="session")
async def widget_channel(widget_server):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{widget_server.port}")
    yield channel
    await channel.close(None)


@pytest.fixture
def server(widget_server):
    widget_server.reset()
    return widget_server


@pytest.fixture
def stub(widget_channel):
    return WidgetStub(widget_channel)


@pytest.fixture
def messages():
    return MESSAGES


@pytest.fixture
def fake_time():
    return FakeTime()
