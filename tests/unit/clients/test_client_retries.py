"""Retries against a real server: only idempotent calls, only retryable codes, one request_id per
logical call, inside the overall deadline and the retry budget, with full-jitter waits."""

import asyncio
import time
import uuid

import grpc
import pytest

from clients import (
    Aborted,
    ClientSettings,
    CommerceError,
    DeadlineExceeded,
    InvalidArgument,
    RetryBudget,
    RetryPolicy,
    RpcClient,
    Unavailable,
)

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05)


def fake_time_client(fake_time, *, policy=FAST, budget=None, timeout=5.0, jitter=None):
    return RpcClient(
        ClientSettings(default_timeout=timeout, retry=policy),
        budget=budget,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        jitter=jitter or (lambda _low, high: high),
    )


async def test_unavailable_twice_then_success_succeeds_with_the_same_request_id_on_all_attempts(
    server, stub, messages, fake_time
):
    server.will("CreateWidget", UNAVAILABLE, UNAVAILABLE)
    client = fake_time_client(fake_time)

    result = await client.call_detailed(stub.CreateWidget, messages.CreateWidgetRequest(name="w"))

    sent_ids = [seen.request.request_id for seen in server.attempts("CreateWidget")]
    assert sent_ids == [result.request_id] * 3
    assert uuid.UUID(result.request_id).version == 4
    assert result.attempts == 3
    assert result.response.request_id == result.request_id


async def test_minted_request_id_leaves_the_callers_request_untouched(
    server, stub, messages, fake_time
):
    request = messages.CreateWidgetRequest(name="w")

    result = await fake_time_client(fake_time).call_detailed(stub.CreateWidget, request)

    assert request.request_id == ""
    assert server.attempts("CreateWidget")[0].request.request_id == result.request_id


async def test_request_id_set_by_the_caller_is_sent_unchanged_on_every_attempt(
    server, stub, messages, fake_time
):
    server.will("CreateWidget", UNAVAILABLE)
    key = "7f1d3c1e-9a55-4f4e-9a57-3f1bba2d1a10"

    result = await fake_time_client(fake_time).call_detailed(
        stub.CreateWidget, messages.CreateWidgetRequest(request_id=key, name="w")
    )

    assert result.request_id == key
    assert [s.request.request_id for s in server.attempts("CreateWidget")] == [key, key]


async def test_each_logical_call_mints_its_own_request_id(server, stub, messages, fake_time):
    client = fake_time_client(fake_time)
    request = messages.CreateWidgetRequest(name="w")

    first = await client.call_detailed(stub.CreateWidget, request)
    second = await client.call_detailed(stub.CreateWidget, request)

    assert first.request_id != second.request_id


async def test_read_without_request_id_is_retried_on_unavailable(server, stub, messages, fake_time):
    server.will("GetWidget", UNAVAILABLE, UNAVAILABLE)

    result = await fake_time_client(fake_time).call_detailed(
        stub.GetWidget, messages.GetWidgetRequest(name="w")
    )

    assert result.attempts == 3
    assert result.request_id is None


async def test_mutation_without_request_id_is_not_retried(server, stub, messages, fake_time):
    server.will("DeleteWidget", UNAVAILABLE)

    with pytest.raises(Unavailable) as raised:
        await fake_time_client(fake_time).call(
            stub.DeleteWidget, messages.DeleteWidgetRequest(name="w")
        )

    assert len(server.attempts("DeleteWidget")) == 1
    assert raised.value.attempts == 1
    assert raised.value.request_id is None
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    ],
)
async def test_keyed_write_failing_with_a_non_retryable_status_is_sent_once(
    server, stub, messages, fake_time, code
):
    server.will("CreateWidget", code)

    with pytest.raises(CommerceError) as raised:
        await fake_time_client(fake_time).call(
            stub.CreateWidget, messages.CreateWidgetRequest(name="w")
        )

    assert raised.value.code is code
    assert raised.value.attempts == 1
    assert len(server.attempts("CreateWidget")) == 1


async def test_invalid_argument_is_never_retried_even_for_a_read(server, stub, messages, fake_time):
    server.will("GetWidget", grpc.StatusCode.INVALID_ARGUMENT)

    with pytest.raises(InvalidArgument):
        await fake_time_client(fake_time).call(stub.GetWidget, messages.GetWidgetRequest())

    assert len(server.attempts("GetWidget")) == 1


async def test_aborted_is_left_to_the_caller_even_with_a_request_id(
    server, stub, messages, fake_time
):
    server.will("CreateWidget", grpc.StatusCode.ABORTED)

    with pytest.raises(Aborted) as raised:
        await fake_time_client(fake_time).call(
            stub.CreateWidget, messages.CreateWidgetRequest(name="w")
        )

    assert raised.value.request_id == server.attempts("CreateWidget")[0].request.request_id


async def test_exhausted_attempts_raise_the_last_error_with_request_id_and_attempt_count(
    server, stub, messages, fake_time
):
    server.will("CreateWidget", *[UNAVAILABLE] * 5)

    with pytest.raises(Unavailable) as raised:
        await fake_time_client(fake_time).call(
            stub.CreateWidget, messages.CreateWidgetRequest(name="w")
        )

    attempts = server.attempts("CreateWidget")
    assert raised.value.attempts == FAST.max_attempts == len(attempts)
    assert {seen.request.request_id for seen in attempts} == {raised.value.request_id}


async def test_retries_stop_before_the_overall_deadline(server, stub, messages, fake_time):
    # Waits (jitter pinned to its bound) are 0.3 then 0.6 s: the third attempt starts at
    # 0.9 s of a 1 s deadline, and the next 1.2 s wait would overrun it, so the call ends.
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.3, max_backoff=10.0)
    server.will("GetWidget", *[UNAVAILABLE] * 10)
    client = fake_time_client(fake_time, policy=policy, timeout=1.0)

    with pytest.raises(Unavailable) as raised:
        await client.call(stub.GetWidget, messages.GetWidgetRequest(name="w"))

    assert raised.value.attempts == 3
    assert fake_time.sleeps == pytest.approx([0.3, 0.6])
    remaining = [seen.time_remaining for seen in server.attempts("GetWidget")]
    assert remaining == pytest.approx([1.0, 0.7, 0.1], abs=0.05)


async def test_per_attempt_deadline_exceeded_is_retried_for_a_read_while_time_remains(
    server, stub, messages
):
    server.will("GetWidget", 0.5)
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, attempt_timeout=0.1)
    client = RpcClient(ClientSettings(default_timeout=2.0, retry=policy))

    result = await client.call_detailed(stub.GetWidget, messages.GetWidgetRequest(name="w"))

    assert result.attempts == 2
    assert server.attempts("GetWidget")[0].time_remaining == pytest.approx(0.1, abs=0.02)


async def test_deadline_exceeded_is_final_when_the_overall_deadline_is_spent(
    server, stub, messages
):
    server.will("GetWidget", 0.5)
    client = RpcClient(ClientSettings(retry=FAST))
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded) as raised:
        await client.call(stub.GetWidget, messages.GetWidgetRequest(name="w"), timeout=0.15)

    assert raised.value.attempts == 1
    assert time.monotonic() - started < 0.4


async def test_deadline_exceeded_of_an_unsafe_call_is_not_retried(server, stub, messages):
    server.will("DeleteWidget", 0.5)
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, attempt_timeout=0.1)
    client = RpcClient(ClientSettings(default_timeout=2.0, retry=policy))

    with pytest.raises(DeadlineExceeded):
        await client.call(stub.DeleteWidget, messages.DeleteWidgetRequest(name="w"))

    assert len(server.attempts("DeleteWidget")) == 1


async def test_budget_stops_retries_once_exhausted(server, stub, messages, fake_time):
    budget = RetryBudget(ratio=0.0, min_retries=2, window=60.0, clock=fake_time.clock)
    server.will("GetWidget", *[UNAVAILABLE] * 10)
    client = fake_time_client(fake_time, budget=budget)

    with pytest.raises(Unavailable) as first:
        await client.call(stub.GetWidget, messages.GetWidgetRequest(name="w"))
    with pytest.raises(Unavailable) as second:
        await client.call(stub.GetWidget, messages.GetWidgetRequest(name="w"))

    assert first.value.attempts == 3  # the first attempt plus the two retries the budget holds
    assert second.value.attempts == 1
    assert len(server.attempts("GetWidget")) == 4


async def test_retry_policy_given_per_call_overrides_the_clients(server, stub, messages, fake_time):
    server.will("GetWidget", UNAVAILABLE)

    with pytest.raises(Unavailable):
        await fake_time_client(fake_time).call(
            stub.GetWidget, messages.GetWidgetRequest(), retry=RetryPolicy.disabled()
        )

    assert len(server.attempts("GetWidget")) == 1


async def test_backoff_waits_are_drawn_from_full_jitter_bounds(server, stub, messages, fake_time):
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.1, backoff_multiplier=2, max_backoff=0.3)
    drawn = []

    def jitter(low, high):
        drawn.append((low, high))
        return high / 2

    server.will("GetWidget", *[UNAVAILABLE] * 4)
    client = fake_time_client(fake_time, policy=policy, jitter=jitter)

    await client.call(stub.GetWidget, messages.GetWidgetRequest(name="w"))

    assert drawn == pytest.approx([(0, 0.1), (0, 0.2), (0, 0.3), (0, 0.3)])
    assert fake_time.sleeps == pytest.approx([0.05, 0.1, 0.15, 0.15])


async def test_cancelling_the_caller_cancels_the_call_without_retrying(server, stub, messages):
    server.will("GetWidget", 1.0)
    client = RpcClient(ClientSettings(retry=FAST))
    call = asyncio.create_task(client.call(stub.GetWidget, messages.GetWidgetRequest(name="w")))
    await asyncio.sleep(0.1)

    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call
    assert len(server.attempts("GetWidget")) == 1
