"""Outgoing metadata: a bearer token from the pluggable provider and pass-through entries."""

import grpc
import pytest

from clients import ClientSettings, RetryPolicy, RpcClient


def metadata_seen(server, method="GetWidget"):
    return [seen.metadata for seen in server.attempts(method)]


async def test_sync_token_provider_sends_a_bearer_authorization(server, stub, messages):
    client = RpcClient(ClientSettings(token_provider=lambda: "svc-token"))

    await client.call(stub.GetWidget, messages.GetWidgetRequest())

    assert metadata_seen(server)[0]["authorization"] == "Bearer svc-token"


async def test_async_token_provider_is_asked_again_for_every_attempt(
    server, stub, messages, fake_time
):
    issued = iter(["t1", "t2", "t3"])

    async def token():
        return next(issued)

    server.will("GetWidget", grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    client = RpcClient(
        ClientSettings(token_provider=token, retry=RetryPolicy(initial_backoff=0.01)),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )

    await client.call(stub.GetWidget, messages.GetWidgetRequest())

    assert [m["authorization"] for m in metadata_seen(server)] == [
        "Bearer t1",
        "Bearer t2",
        "Bearer t3",
    ]


async def test_client_and_call_metadata_pass_through_with_the_call_winning_a_shared_key(
    server, stub, messages
):
    client = RpcClient(ClientSettings(metadata=(("x-client", "checkout"), ("x-tier", "a"))))
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    await client.call(
        stub.GetWidget,
        messages.GetWidgetRequest(),
        metadata=(("traceparent", traceparent), ("x-tier", "b")),
    )

    seen = metadata_seen(server)[0]
    assert seen["traceparent"] == traceparent
    assert seen["x-client"] == "checkout"
    assert seen["x-tier"] == "b"
    assert "authorization" not in seen


async def test_authorization_given_per_call_replaces_the_service_token(server, stub, messages):
    client = RpcClient(ClientSettings(token_provider=lambda: "svc-token"))

    await client.call(
        stub.GetWidget,
        messages.GetWidgetRequest(),
        metadata=(("authorization", "Bearer end-user"),),
    )

    assert metadata_seen(server)[0]["authorization"] == "Bearer end-user"


async def test_empty_token_is_a_configuration_error(server, stub, messages):
    client = RpcClient(ClientSettings(token_provider=lambda: ""))

    with pytest.raises(ValueError, match="empty token"):
        await client.call(stub.GetWidget, messages.GetWidgetRequest())

    assert server.seen == []
