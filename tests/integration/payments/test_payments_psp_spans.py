"""Every HTTP request to a PSP is a CLIENT span (`<METHOD> <route template>`) under the caller's
span, against the real sandbox: the response status, an error status on a refusal or a
transport failure — and nothing of the request: no path values, query, body, header, token
or amount. No trace context leaves for the PSP (ADR 0011)."""

import uuid

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from clients.deadline import Deadline
from services.payments.domain.money import Money
from services.payments.psp.http import PSP_ATTRIBUTE
from services.payments.psp.model import AuthorizeRequest, FailureKind, PspFailure
from services.payments.psp.sandbox_connector import SandboxConnector

pytestmark = pytest.mark.integration
PSP = "sandbox-eu"
TRACE_HEADERS = {"traceparent", "tracestate", "baggage", "b3", "x-b3-traceid", "uber-trace-id"}


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider


def authorize_request(token: str, key: str) -> AuthorizeRequest:
    return AuthorizeRequest(
        amount=Money(7_531, "EUR"),
        payment_method_token=token,
        idempotency_key=key,
        description="order secret-order-77",
    )


def client_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]


def values(span: ReadableSpan) -> str:
    return " ".join(f"{k}={v!s}" for k, v in (span.attributes or {}).items()) + " " + span.name


async def test_each_psp_request_is_a_client_span_with_its_route_and_status(
    http, sandbox, provider, spans
):
    connector = SandboxConnector(http.client, sandbox.url, psp_id=PSP, tracer_provider=provider)
    key, capture_key = str(uuid.uuid4()), str(uuid.uuid4())
    with provider.get_tracer("test").start_as_current_span("payments.authorize") as parent:
        auth = await connector.authorize(
            authorize_request("pm_sandbox_ok", key), deadline=Deadline.after(5)
        )
        await connector.capture(
            auth.psp_reference,
            Money(7_531, "EUR"),
            final=True,
            idempotency_key=capture_key,
            deadline=Deadline.after(5),
        )
        found = await connector.find_authorization(key, deadline=Deadline.after(5))
        assert found is not None
    authorize, capture, find = client_spans(spans)
    assert [s.name for s in (authorize, capture, find)] == [
        "POST /v1/authorizations",
        "POST /v1/authorizations/{id}/captures",
        "GET /v1/authorizations",
    ]
    host, port = sandbox.url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    for span, method, status in ((authorize, "POST", 201), (capture, "POST", 200)):
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id
        assert span.context.trace_id == parent.get_span_context().trace_id
        assert span.status.status_code is StatusCode.UNSET
        attributes = dict(span.attributes or {})
        assert attributes["http.request.method"] == method
        assert attributes["http.response.status_code"] == status
        assert attributes[PSP_ATTRIBUTE] == PSP
        assert (attributes["server.address"], attributes["server.port"]) == (host, int(port))
        assert "error.type" not in attributes
    assert find.attributes is not None
    assert find.attributes["url.template"] == "/v1/authorizations"
    # Nothing of the request: not the PSP reference in the path, the idempotency key in the
    # query or header, the token, the amount or the description from the body.
    for span in (authorize, capture, find):
        text = values(span)
        for secret in (auth.psp_reference, key, capture_key, "pm_sandbox_ok", "7531", "secret"):
            assert secret not in text, (span.name, secret)
        assert not {"url.full", "url.query", "url.path"} & set(span.attributes or {})
    # And the PSP never saw our trace context, though a span was current for every request.
    assert http.sent
    for sent in http.sent:
        assert not TRACE_HEADERS & {name.lower() for name in sent.headers}


async def test_a_declined_and_an_unreachable_psp_are_error_spans(
    http, sandbox, closed_port_url, provider, spans
):
    connector = SandboxConnector(http.client, sandbox.url, psp_id=PSP, tracer_provider=provider)
    with pytest.raises(PspFailure) as declined:
        await connector.authorize(
            authorize_request("pm_sandbox_insufficient_funds", str(uuid.uuid4())),
            deadline=Deadline.after(5),
        )
    assert declined.value.kind is FailureKind.DECLINED
    away = SandboxConnector(http.client, closed_port_url, psp_id=PSP, tracer_provider=provider)
    with pytest.raises(PspFailure):
        await away.retrieve("auth_123", deadline=Deadline.after(2))
    refused, unreachable = client_spans(spans)
    assert refused.name == "POST /v1/authorizations"
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes is not None
    assert refused.attributes["http.response.status_code"] == 402
    assert refused.attributes["error.type"] == "402"
    assert not refused.events  # no exception text recorded
    assert unreachable.name == "GET /v1/authorizations/{id}"
    assert unreachable.status.status_code is StatusCode.ERROR
    assert unreachable.attributes is not None
    assert unreachable.attributes["error.type"] == "ConnectError"
    assert "http.response.status_code" not in unreachable.attributes
    assert "auth_123" not in values(unreachable)


async def test_a_malformed_reference_sends_nothing_and_makes_no_span(
    http, sandbox, provider, spans
):
    connector = SandboxConnector(http.client, sandbox.url, psp_id=PSP, tracer_provider=provider)
    with pytest.raises(PspFailure) as refused:
        await connector.retrieve("../admin?x=1", deadline=Deadline.after(2))
    assert refused.value.skipped
    assert client_spans(spans) == []
    assert http.sent == []
