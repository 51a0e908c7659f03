"""A per-service client is a small ServiceClient subclass that owns its stub."""

from typing import Any

import grpc
import pytest

from clients import ClientSettings, RetryBudget, RetryPolicy, ServiceClient, Unavailable


def widget_client_class(stub_class, messages):
    # The stub class is built at run time, so the client is generic over Any here.
    class WidgetClient(ServiceClient[Any]):
        def __init__(self, channel, settings=None, **engine):
            super().__init__(stub_class(channel), settings, **engine)

        async def create_widget(self, name):
            return await self.call(self.stub.CreateWidget, messages.CreateWidgetRequest(name=name))

    return WidgetClient


async def test_service_client_method_calls_through_its_stub_with_a_minted_key(
    server, widget_channel, stub, messages
):
    widget_client = widget_client_class(type(stub), messages)(widget_channel)

    widget = await widget_client.create_widget("blue")

    assert widget.name == "blue"
    assert widget.request_id == server.attempts("CreateWidget")[0].request.request_id != ""


async def test_clients_of_one_downstream_can_share_a_retry_budget(
    server, widget_channel, stub, messages, fake_time
):
    shared = RetryBudget(ratio=0.0, min_retries=1, window=60.0, clock=fake_time.clock)
    widget_client = widget_client_class(type(stub), messages)
    settings = ClientSettings(retry=RetryPolicy(initial_backoff=0.01))
    engine = {"budget": shared, "clock": fake_time.clock, "sleep": fake_time.sleep}
    first = widget_client(widget_channel, settings, **engine)
    second = widget_client(widget_channel, settings, **engine)
    server.will("CreateWidget", grpc.StatusCode.UNAVAILABLE)
    await first.create_widget("a")  # succeeds on the budget's only retry

    server.will("CreateWidget", grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(Unavailable) as raised:
        await second.create_widget("b")

    assert raised.value.attempts == 1
    assert len(server.attempts("CreateWidget")) == 3
