"""Every call carries a deadline: the client default, a per-call timeout or deadline, and the
ambient deadline propagated from the incoming request, whichever comes first."""

import pytest

from clients import (
    ClientSettings,
    Deadline,
    DeadlineExceeded,
    RpcClient,
    current_deadline,
    deadline_scope,
)


@pytest.fixture
def client():
    return RpcClient(ClientSettings(default_timeout=3.0))


def assert_server_saw_between(server, low, high):
    # grpc rounds the grpc-timeout header up to a coarser unit (10 s may arrive as 10.1 s).
    remaining = server.attempts("GetWidget")[-1].time_remaining
    assert low < remaining <= high * 1.02 + 0.01


async def test_call_without_timeout_carries_the_client_default(server, stub, messages, client):
    await client.call(stub.GetWidget, messages.GetWidgetRequest())

    assert_server_saw_between(server, 2.5, 3.0)


async def test_per_call_timeout_overrides_the_default(server, stub, messages, client):
    await client.call(stub.GetWidget, messages.GetWidgetRequest(), timeout=10.0)

    assert_server_saw_between(server, 9.5, 10.0)


async def test_explicit_absolute_deadline_bounds_the_call(server, stub, messages, client):
    await client.call(stub.GetWidget, messages.GetWidgetRequest(), deadline=Deadline.after(0.7))

    assert_server_saw_between(server, 0.4, 0.7)


async def test_ambient_deadline_of_the_incoming_request_caps_a_longer_timeout(
    server, stub, messages, client
):
    with deadline_scope(Deadline.after(0.8)):
        await client.call(stub.GetWidget, messages.GetWidgetRequest(), timeout=10.0)

    assert_server_saw_between(server, 0.5, 0.8)


async def test_shorter_per_call_timeout_wins_over_the_ambient_deadline(
    server, stub, messages, client
):
    with deadline_scope(Deadline.after(10.0)):
        await client.call(stub.GetWidget, messages.GetWidgetRequest(), timeout=0.6)

    assert_server_saw_between(server, 0.3, 0.6)


async def test_expired_deadline_fails_without_contacting_the_server(
    server, stub, messages, client, fake_time
):
    passed = Deadline(at=fake_time.now - 1, clock=fake_time.clock)

    with pytest.raises(DeadlineExceeded) as raised:
        await client.call(stub.GetWidget, messages.GetWidgetRequest(), deadline=passed)

    assert server.seen == []
    assert raised.value.attempts == 1


def test_deadline_of_an_incoming_request_comes_from_the_servicer_context(fake_time):
    class Context:
        def __init__(self, remaining):
            self.remaining = remaining

        def time_remaining(self):
            return self.remaining

    incoming = Deadline.of_incoming(Context(2.5), fake_time.clock)

    assert incoming is not None
    assert incoming.remaining() == 2.5
    assert Deadline.of_incoming(Context(None)) is None


def test_nested_deadline_scope_never_extends_the_outer_one(fake_time):
    outer = Deadline.after(1.0, fake_time.clock)
    with deadline_scope(outer):
        with deadline_scope(Deadline.after(5.0, fake_time.clock)) as inner:
            assert inner is outer
        assert current_deadline() is outer
    assert current_deadline() is None


def test_deadline_remaining_counts_down_and_never_goes_negative(fake_time):
    deadline = Deadline.after(1.0, fake_time.clock)
    fake_time.now += 0.25
    assert deadline.remaining() == 0.75
    fake_time.now += 5
    assert deadline.remaining() == 0.0
    assert deadline.expired


def test_non_positive_timeout_is_rejected(client):
    with pytest.raises(ValueError, match="timeout"):
        client.deadline_for(0, None)
