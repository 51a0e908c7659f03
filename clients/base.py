"""The call engine every service client shares: deadline, metadata, idempotency key, retries,
typed errors."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypedDict, TypeVar, Unpack

import grpc
from google.protobuf.message import Message

from clients.auth import MetadataPairs, TokenProvider, outgoing_metadata
from clients.deadline import Clock, Deadline, current_deadline
from clients.errors import CommerceError, DeadlineExceeded, error_from_rpc
from clients.idempotency import classify, with_request_id
from clients.retry import Jitter, RetryBudget, RetryPolicy, Sleep, retrying

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT")
StubT = TypeVar("StubT")
_RequestT_contra = TypeVar("_RequestT_contra", bound=Message, contravariant=True)
_ResponseT_co = TypeVar("_ResponseT_co", covariant=True)


class UnaryUnaryMethod(Protocol[_RequestT_contra, _ResponseT_co]):
    """A unary RPC of a generated grpc.aio stub, e.g. `stub.CreateAccount`."""

    def __call__(
        self,
        request: _RequestT_contra,
        /,
        *,
        timeout: float | None = ...,
        metadata: Sequence[tuple[str, str | bytes]] | None = ...,
    ) -> Awaitable[_ResponseT_co]: ...


def new_request_id() -> str:
    """A fresh idempotency key: a random UUID (AIP-155)."""
    return str(uuid.uuid4())


class EngineOptions(TypedDict, total=False):
    """Collaborators of `RpcClient` beyond its settings; tests replace clock, sleep and jitter."""

    budget: RetryBudget | None
    clock: Clock
    sleep: Sleep
    jitter: Jitter
    new_request_id: Callable[[], str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    """Per-client defaults; every call can override the deadline and the retry policy."""

    default_timeout: float = 5.0
    """Seconds a call may take when the caller gives no timeout or deadline."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    token_provider: TokenProvider | None = None
    """Source of `authorization: Bearer <token>`: this service's own identity."""
    metadata: MetadataPairs = ()
    """Sent on every call, e.g. a fixed ("x-client", "checkout")."""

    def __post_init__(self) -> None:
        if self.default_timeout <= 0:
            raise ValueError("default_timeout must be positive")


@dataclass(frozen=True)
class CallResult(Generic[ResponseT]):
    """A response with how it was obtained."""

    response: ResponseT
    request_id: str | None
    """The idempotency key sent (minted if the request had none); None if the method has none."""
    attempts: int


class RpcClient:
    """Sends unary calls through any generated aio stub with the mesh's resilience rules.

    Every call gets a deadline: the earliest of the caller's `deadline`, its `timeout` (or the
    client's default timeout) and the ambient deadline of the incoming request
    (`clients.deadline.deadline_scope`). Retries follow `clients.retry`; failures raise
    `clients.errors.CommerceError` subclasses. Use one client per downstream so its retry
    budget sees all the traffic to it.
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        budget: RetryBudget | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        jitter: Jitter = random.uniform,
        new_request_id: Callable[[], str] = new_request_id,
    ) -> None:
        self.settings = settings or ClientSettings()
        self.budget = budget or RetryBudget(clock=clock)
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._new_request_id = new_request_id

    async def call(
        self,
        method: UnaryUnaryMethod[RequestT, ResponseT],
        request: RequestT,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, enforced by the server too
        deadline: Deadline | None = None,
        metadata: MetadataPairs = (),
        retry: RetryPolicy | None = None,
    ) -> ResponseT:
        """Send `request` and return the response, or raise a `CommerceError` subclass."""
        result = await self.call_detailed(
            method, request, timeout=timeout, deadline=deadline, metadata=metadata, retry=retry
        )
        return result.response

    async def call_detailed(
        self,
        method: UnaryUnaryMethod[RequestT, ResponseT],
        request: RequestT,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, enforced by the server too
        deadline: Deadline | None = None,
        metadata: MetadataPairs = (),
        retry: RetryPolicy | None = None,
    ) -> CallResult[ResponseT]:
        """Like `call`, also reporting the request_id used and the attempts made."""
        bound = self.deadline_for(timeout, deadline)
        policy = retry or self.settings.retry
        idempotent = classify(request).retryable
        to_send, request_id = with_request_id(request, self._new_request_id)
        self.budget.record_call()
        controller = retrying(
            policy,
            idempotent=idempotent,
            deadline=bound,
            budget=self.budget,
            sleep=self._sleep,
            jitter=self._jitter,
        )
        attempts = 0
        try:
            async for attempt in controller:
                with attempt:
                    attempts += 1
                    response = await self._attempt(
                        method,
                        to_send,
                        deadline=bound,
                        policy=policy,
                        metadata=metadata,
                        request_id=request_id,
                    )
                    return CallResult(response, request_id, attempts)
        except CommerceError as error:
            error.attempts = attempts
            raise
        raise AssertionError("tenacity ended without a result or an error")  # pragma: no cover

    def deadline_for(self, timeout: float | None, deadline: Deadline | None) -> Deadline:
        """The deadline a call gets from its arguments, the default and the ambient deadline."""
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        own = None if timeout is None else Deadline.after(timeout, self._clock)
        if deadline is not None:
            own = deadline.earliest(own)
        if own is None:
            own = Deadline.after(self.settings.default_timeout, self._clock)
        return own.earliest(current_deadline())

    async def _attempt(
        self,
        method: UnaryUnaryMethod[RequestT, ResponseT],
        request: RequestT,
        *,
        deadline: Deadline,
        policy: RetryPolicy,
        metadata: MetadataPairs,
        request_id: str | None,
    ) -> ResponseT:
        timeout = deadline.remaining()
        if policy.attempt_timeout is not None:
            timeout = min(timeout, policy.attempt_timeout)
        if timeout <= 0:
            raise DeadlineExceeded(
                "the deadline passed before the call was sent", request_id=request_id
            )
        outgoing = await outgoing_metadata(
            self.settings.metadata, metadata, self.settings.token_provider
        )
        try:
            return await method(request, timeout=timeout, metadata=outgoing)
        except grpc.RpcError as error:
            raise error_from_rpc(error, request_id=request_id) from error


class ServiceClient(RpcClient, Generic[StubT]):
    """Base of the one small client per service: holds its stub and the shared call engine.

    A service client builds its stub from a channel and wraps each RPC it uses::

        class LedgerClient(ServiceClient["ledger_service_pb2_grpc.LedgerServiceAsyncStub"]):
            def __init__(self, channel: grpc.aio.Channel, settings: ClientSettings) -> None:
                super().__init__(ledger_service_pb2_grpc.LedgerServiceStub(channel), settings)

            async def get_entry(self, name: str) -> ledger_pb2.Entry:
                return await self.call(self.stub.GetEntry, GetEntryRequest(name=name))
    """

    def __init__(
        self, stub: StubT, settings: ClientSettings | None = None, **engine: Unpack[EngineOptions]
    ) -> None:
        super().__init__(settings, **engine)
        self.stub = stub
