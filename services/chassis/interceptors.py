"""The server interceptor: trace → authenticate → authorize → validate → tenant scope →
handler, with every DomainError turned into a rich google.rpc.Status on the way out.

It starts every call's server span itself (services/chassis/tracing.py), for our methods and
infrastructure ones (health, reflection) alike, in place of OpenTelemetry's interceptor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from clients.deadline import Deadline, deadline_scope
from services.chassis.access import AccessRule, Authentication
from services.chassis.auth import Principal, RbacPolicy, TokenVerifier
from services.chassis.context import RequestContext
from services.chassis.context import bind as bind_context
from services.chassis.context import reset as reset_context
from services.chassis.errors import DomainError, Internal, PermissionDenied, Unauthenticated
from services.chassis.status import to_grpc_status
from services.chassis.telemetry import RpcMetrics
from services.chassis.tenancy import tenant_of
from services.chassis.tracing import ServerSpans
from services.chassis.validation import RequestValidator

log = logging.getLogger(__name__)


if TYPE_CHECKING:  # grpc's classes are generic only in grpc-stubs, not at runtime
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    Context = grpc.aio.ServicerContext
    _Interceptor = grpc.aio.ServerInterceptor
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]


class ChassisInterceptor(_Interceptor):
    """Applies the access rules declared in the contracts to every RPC of our services.

    Methods without a rule (gRPC health, reflection) are infrastructure and pass through; the
    server refuses to start if one of *our* methods has no rule, so none slips through here.
    """

    def __init__(
        self,
        *,
        rules: Mapping[str, AccessRule],
        verifier: TokenVerifier,
        policy: RbacPolicy,
        validator: RequestValidator,
        error_domain: str,
        metrics: RpcMetrics,
        spans: ServerSpans | None = None,
    ) -> None:
        self._metrics = metrics
        self._spans = spans or ServerSpans()
        self._rules = rules
        self._verifier = verifier
        self._policy = policy
        self._validator = validator
        self._domain = error_domain
        validator.prepare(_request_types(rules))  # no plan compiled on a first request
        self._wrapped: dict[str, tuple[Handler | None, Handler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        """Wrap the handler of a method we have a rule for (once per method and handler)."""
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None and wrapped[0] is handler:
            return wrapped[1]
        rule = self._rules.get(method)
        if handler is None:
            return handler
        if rule is None:  # infrastructure (health, reflection): traced, nothing else
            result = self._traced(method, handler)
        elif handler.unary_unary is not None:
            result = grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, rule, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        elif handler.unary_stream is not None:
            result = grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, rule, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        else:  # client streaming is not part of any contract
            result = self._traced(method, handler)
        self._wrapped[method] = (handler, result)  # generic handlers hand out the same object
        return result

    def _wrap_unary(
        self, method: str, rule: AccessRule, behavior: Callable[..., Awaitable[Any]]
    ) -> Callable[[Message, Context], Awaitable[Any]]:
        # The hot path of every service: the steps of `_serving`, without a context manager.
        record = self._metrics.recorder(method)
        admit = self._admit
        spans = self._spans

        async def unary(request: Message, context: Context) -> Any:
            span, span_token = spans.start(method, context)
            token = None
            started, status = perf_counter(), "OK"
            try:
                try:
                    token = bind_context(admit(method, rule, request, context))
                    # Calls made through clients/ while serving never outlive this request.
                    remaining = context.time_remaining()
                    if remaining is None:
                        return await behavior(request, context)
                    with deadline_scope(Deadline.after(remaining)):
                        return await behavior(request, context)
                except BaseException as error:
                    status = _status_name(context, error)
                    await self._answer(method, context, error)
                    raise
                finally:
                    record(status, perf_counter() - started)
                    if token is not None:
                        reset_context(token)
            except BaseException as escaped:  # what leaves the call: on the span
                spans.failed(span, escaped)
                raise
            finally:
                spans.end(span, span_token, context)

        return unary

    def _wrap_stream(
        self, method: str, rule: AccessRule, behavior: Callable[..., Any]
    ) -> Callable[[Message, Context], AsyncIterator[Any]]:
        spans = self._spans

        async def stream(request: Message, context: Context) -> AsyncIterator[Any]:
            span, span_token = spans.start(method, context)
            try:
                async with self._serving(method, rule, request, context):
                    async for response in behavior(request, context):
                        yield response
            except BaseException as escaped:
                spans.failed(span, escaped)
                raise
            finally:
                spans.end(span, span_token, context)

        return stream

    def _traced(self, method: str, handler: Handler) -> Handler:
        """`handler` with the server span only (for methods without an access rule)."""
        spans = self._spans
        streams_out = handler.response_streaming
        behavior = cast(
            "Callable[..., Any]",
            handler.unary_unary
            or handler.unary_stream
            or handler.stream_unary
            or handler.stream_stream,
        )

        async def unary(request: Any, context: Context) -> Any:
            span, span_token = spans.start(method, context)
            try:
                return await behavior(request, context)
            except BaseException as escaped:
                spans.failed(span, escaped)
                raise
            finally:
                spans.end(span, span_token, context)

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            span, span_token = spans.start(method, context)
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as escaped:
                spans.failed(span, escaped)
                raise
            finally:
                spans.end(span, span_token, context)

        make = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(handler.request_streaming, streams_out)]
        return make(
            stream if streams_out else unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    @contextlib.asynccontextmanager
    async def _serving(
        self, method: str, rule: AccessRule, request: Message, context: Context
    ) -> AsyncIterator[None]:
        """Admit the call and bind its context; turn whatever escapes into a status."""
        token = None
        started, status = perf_counter(), "OK"
        try:
            token = bind_context(self._admit(method, rule, request, context))
            # Calls made through clients/ while serving never outlive this request.
            with deadline_scope(Deadline.of_incoming(context)):
                yield
        except BaseException as error:
            status = _status_name(context, error)
            await self._answer(method, context, error)
            raise
        finally:
            self._metrics.record(method, status, perf_counter() - started)
            if token is not None:
                reset_context(token)

    async def _answer(self, method: str, context: Context, error: BaseException) -> None:
        """Abort the call with a rich status for `error`; return (for the caller to re-raise)
        on a cancellation, the handler's own abort, or an exit."""
        if isinstance(error, (grpc.aio.AbortError, asyncio.CancelledError)):
            return
        if isinstance(error, DomainError):
            await self._abort(context, method, error)
        elif isinstance(error, grpc.aio.AioRpcError):
            # Never flatten a downstream error to INTERNAL: pass its status and details on.
            # (grpc-stubs types trailing_metadata() as _Metadatum; at runtime it is Metadata.)
            trailers = cast("grpc.aio.Metadata", error.trailing_metadata())
            await context.abort(error.code(), error.details() or "", trailers)
        elif isinstance(error, Exception):  # a bug: report INTERNAL, keep details in the log
            log.error("unhandled error in %s", method, exc_info=error)
            await self._abort(context, method, _internal())

    def _admit(
        self, method: str, rule: AccessRule, request: Message, context: Context
    ) -> RequestContext:
        """Run the checks in order; raise the first failure as a DomainError."""
        principal: Principal | None = None
        if rule.authentication is Authentication.BEARER:
            principal = self._verifier.verify(_bearer_token(context))
            if not self._policy.allows(principal.roles, rule.permission):
                raise PermissionDenied(
                    "PERMISSION_DENIED",
                    f"the caller lacks permission {rule.permission}",
                    metadata={"permission": rule.permission},
                )
        _adopt_idempotency_key(request, context)
        self._validator.validate(request)
        return RequestContext(
            method=method,
            principal=principal,
            tenant=tenant_of(principal, request),
            request_id=_request_id(request),
        )

    async def _abort(self, context: Context, method: str, error: DomainError) -> None:
        log.info("%s failed: %s %s", method, error.kind.value, error.reason)
        status = to_grpc_status(error, self._domain)
        await context.abort(status.code, status.details, status.trailing_metadata)


def _request_types(rules: Mapping[str, AccessRule]) -> list[Descriptor]:
    """The input message types of the methods (`/pkg.Service/Method`) found in the pool."""
    pool = descriptor_pool.Default()
    found: list[Descriptor] = []
    for method in rules:
        try:
            found.append(pool.FindMethodByName(method.lstrip("/").replace("/", ".")).input_type)
        except KeyError:
            continue
    return found


def _status_name(context: Context, error: BaseException) -> str:
    """The gRPC status name a failed call ends with (the RED metrics' label)."""
    if isinstance(error, grpc.aio.AbortError):
        return _aborted_code(context)  # the handler aborted the call itself
    if isinstance(error, DomainError):
        return error.kind.value
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code().name
    if isinstance(error, Exception):
        return "INTERNAL"
    return "CANCELLED"  # the caller cancelled or its deadline passed (or the process exits)


def _aborted_code(context: Context) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def _internal() -> DomainError:
    return Internal("INTERNAL", "internal error; it has been logged")


def _bearer_token(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
            raise Unauthenticated("TOKEN_MALFORMED", "authorization must be 'Bearer <token>'")
    raise Unauthenticated("TOKEN_MISSING", "missing 'authorization: Bearer <token>' metadata")


def _adopt_idempotency_key(request: Message, context: Context) -> None:
    """Fill an empty `request_id` from `idempotency-key` metadata: the REST facade maps the
    `Idempotency-Key` header there. A request_id set in the body wins."""
    if "request_id" not in request.DESCRIPTOR.fields_by_name or getattr(request, "request_id"):  # noqa: B009
        return
    for key, value in context.invocation_metadata() or ():
        if key == "idempotency-key":
            setattr(request, "request_id", str(value))  # noqa: B010 - field checked above
            return


def _request_id(request: Message) -> str | None:
    if "request_id" in request.DESCRIPTOR.fields_by_name:
        value = getattr(request, "request_id", "")
        return str(value) or None
    return None
