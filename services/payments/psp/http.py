"""Send one HTTP request to a PSP and turn every way it can fail into a classified PspFailure.

Every request sent is a CLIENT span, `<METHOD> <route template>` (ADR 0011): method, route
template, PSP id, server address and the response status — never the URL's path values or
query, the body or any header. No trace context is sent to a PSP: the span ends at our edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from clients.deadline import Deadline
from services.payments.domain.attempts import FailureCode
from services.payments.psp.classify import classify_status, classify_transport_error
from services.payments.psp.model import FailureKind, PspFailure

IDEMPOTENCY_HEADER = "Idempotency-Key"
TRACER_NAME = "commerce-mesh.payments.psp"
PSP_ATTRIBUTE = "commerce.psp.id"
ErrorReader = Callable[[httpx.Response, FailureKind], PspFailure]
"""Builds the failure for an error response, adding the PSP's own codes."""

_HTTP_SUCCESS_MAX = 299
_HTTP_CLIENT_ERROR_MIN = 400
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,255}")


async def send(
    client: httpx.AsyncClient,
    psp: str,
    method: str,
    url: str,
    *,
    route: str,
    deadline: Deadline,
    tracer: trace.Tracer | None = None,
    idempotency_key: str | None = None,
    read_error: ErrorReader,
    should_retry_header: str | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """The PSP's 2xx response; anything else raises PspFailure.

    A request with an idempotency key is a mutating one: the key travels in the
    `Idempotency-Key` header, and an unanswered send is AMBIGUOUS rather than safe.
    `route` is the path template of `url` (`/v1/authorizations/{id}`): the span's name.
    """
    mutating = idempotency_key is not None
    headers: dict[str, str] = dict(kwargs.pop("headers", {}) or {})
    if idempotency_key is not None:
        headers[IDEMPOTENCY_HEADER] = idempotency_key
    timeout = deadline.remaining()
    if timeout <= 0:
        raise PspFailure(FailureKind.RETRYABLE_SAFE, psp, "no time left", skipped=True)
    tracer = tracer or trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"{method} {route}",
        kind=SpanKind.CLIENT,
        attributes=_request_attributes(psp, method, url, route),
        record_exception=False,  # exception texts may carry PSP references
        set_status_on_exception=False,
    ) as span:
        try:
            response = await client.request(
                method, url, headers=headers, timeout=httpx.Timeout(timeout), **kwargs
            )
        except httpx.HTTPError as error:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR))
            kind = classify_transport_error(error, mutating=mutating)
            raise PspFailure(kind, psp, f"{method} {_path(url)}: {type(error).__name__}") from error
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= _HTTP_CLIENT_ERROR_MIN:
            span.set_attribute("error.type", str(response.status_code))
            span.set_status(Status(StatusCode.ERROR))
    if response.status_code <= _HTTP_SUCCESS_MAX:
        return response
    verdict = _should_retry(response.headers, should_retry_header)
    kind = classify_status(response.status_code, mutating=mutating, should_retry=verdict)
    raise read_error(response, kind)


def path_segment(psp: str, reference: str) -> str:
    """A PSP reference checked before it goes into a URL path (no `/`, `?`, `..` tricks)."""
    if not _REFERENCE.fullmatch(reference):
        raise PspFailure(FailureKind.PERMANENT, psp, "malformed PSP reference", skipped=True)
    return reference


def _request_attributes(psp: str, method: str, url: str, route: str) -> dict[str, str | int]:
    parsed = httpx.URL(url)
    attributes: dict[str, str | int] = {
        PSP_ATTRIBUTE: psp,
        "http.request.method": method,
        "url.template": route,
        "url.scheme": parsed.scheme,
        "server.address": parsed.host,
    }
    if parsed.port is not None:
        attributes["server.port"] = parsed.port
    return attributes


def _should_retry(headers: Mapping[str, str], name: str | None) -> bool | None:
    if name is None or name not in headers:
        return None
    return headers[name].strip().lower() == "true"


def _path(url: str) -> str:
    # Query strings may hold PSP references or dates; the path is enough to say what failed.
    return url.split("?", 1)[0]


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object ({} when it is not one)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def http_failure(
    response: httpx.Response,
    kind: FailureKind,
    *,
    psp_id: str,
    psp_code: str,
    reference: str,
    declines: Mapping[str, FailureCode],
) -> PspFailure:
    """The failure a PSP's HTTP error answer stands for, in our codes."""
    if kind is FailureKind.DECLINED:
        code = declines.get(psp_code, FailureCode.DECLINED)
    elif kind is FailureKind.RETRYABLE_SAFE:
        code = FailureCode.PSP_UNAVAILABLE
    else:
        code = FailureCode.PROCESSING_ERROR
    return PspFailure(
        kind,
        psp_id,
        f"HTTP {response.status_code} {psp_code}".strip(),
        code=code,
        psp_code=psp_code,
        psp_reference=reference,
        http_status=response.status_code,
    )
