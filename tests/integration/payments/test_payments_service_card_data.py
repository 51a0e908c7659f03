"""PCI scope: the test card number in any string field of any request is refused, and after a
run that tries it everywhere it is in no log record, no database row (outbox included), no
event and no span."""

import logging
import time

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import routing_pb2 as rt
from services.chassis.card_data import is_credential
from services.payments.webhooks import sign
from tests.integration.payments.conftest import WEBHOOK_SECRET, money, new_request_id

pytestmark = pytest.mark.integration

PAN = "4111111111111111"
FORMS = (PAN, "4111 1111 1111 1111", "4111-1111-1111-1111", PAN.encode().hex())


def base_requests(payments, payment):
    """One valid request per RPC (the reconciliation ones too: validation comes first)."""
    parent, rid = payments.parent, new_request_id
    return {
        "AuthorizePayment": payments.authorize_request(
            1_000,
            description="ok",
            metadata={"k": "v"},
        ),
        "CapturePayment": pb.CapturePaymentRequest(
            name=payment.name, amount=money(1), request_id=rid()
        ),
        "VoidPayment": pb.VoidPaymentRequest(name=payment.name, reason="r", request_id=rid()),
        "RefundPayment": payments.refund_request(payment.name, 1, description="d"),
        "GetPayment": pb.GetPaymentRequest(name=payment.name),
        "ListPayments": pb.ListPaymentsRequest(parent=parent),
        "GetRefund": pb.GetRefundRequest(name=f"{payment.name}/refunds/r1"),
        "ListRefunds": pb.ListRefundsRequest(parent=payment.name),
        "GetRoutingConfig": pb.GetRoutingConfigRequest(name=f"{parent}/routingConfig"),
        "UpdateRoutingConfig": pb.UpdateRoutingConfigRequest(
            routing_config=rt.RoutingConfig(
                name=f"{parent}/routingConfig",
                default_psps=["alpha"],
                rules=[rt.RoutingRule(rule_id="r", psps=["alpha"], description="x")],
                etag='W/"1"',
            ),
            request_id=rid(),
        ),
        "HandlePspWebhook": pb.HandlePspWebhookRequest(
            psp="alpha", payload=b"{}", signature="t=1,v1=00", timestamp="t=1,v1=00"
        ),
        "RunReconciliation": pb.RunReconciliationRequest(
            parent=parent, psp="alpha", settlement_report="s", request_id=rid()
        ),
        "GetReconciliationReport": pb.GetReconciliationReportRequest(
            name=f"{parent}/reconciliationReports/x"
        ),
        "ListReconciliationReports": pb.ListReconciliationReportsRequest(parent=parent),
    }


def with_card_number(request: Message, form: str):
    """Copies of `request`, each with `form` in one more string field (nested, repeated and
    map keys and values included), with the path of that field."""
    for path, setter in _string_slots(request.DESCRIPTOR, (), depth=0):
        copy = type(request)()
        copy.CopyFrom(request)
        setter(copy, form)
        yield path, copy


def _string_slots(descriptor, path, depth):
    if depth > 4:
        return
    for field in descriptor.fields:
        here = (*path, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_type = field.message_type.fields_by_name["key"].type
            value_type = field.message_type.fields_by_name["value"].type
            if key_type == FieldDescriptor.TYPE_STRING:
                yield ".".join(here) + "[key]", _map_setter(here, key=True)
            if value_type == FieldDescriptor.TYPE_STRING:
                yield ".".join(here) + "[value]", _map_setter(here, key=False)
        elif field.type == FieldDescriptor.TYPE_STRING:
            yield ".".join(here), _scalar_setter(here, field.is_repeated)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for sub_path, setter in _string_slots(field.message_type, (), depth + 1):
                yield ".".join(here) + "." + sub_path, _nested(here, field.is_repeated, setter)


def _walk(message, path):
    for name in path:
        message = getattr(message, name)
    return message


def _scalar_setter(path, repeated):
    def setter(message, value):
        owner = _walk(message, path[:-1])
        if repeated:
            getattr(owner, path[-1]).append(value)
        else:
            setattr(owner, path[-1], value)

    return setter


def _map_setter(path, *, key):
    def setter(message, value):
        mapping = _walk(message, path)
        if key:
            mapping[value] = "x"
        else:
            mapping["k"] = value

    return setter


def _nested(path, repeated, inner):
    def setter(message, value):
        owner = _walk(message, path[:-1])
        field = getattr(owner, path[-1])
        target = field.add() if repeated else field
        inner(target, value)

    return setter


async def dump_database(admin_url, name):
    engine = create_async_engine(admin_url.set(database=name))
    text_rows = []
    try:
        async with engine.connect() as connection:
            tables = (
                await connection.execute(
                    text(
                        "SELECT table_schema, table_name FROM information_schema.tables"
                        " WHERE table_schema IN ('public', 'alembic')"
                    )
                )
            ).all()
            for schema, table in tables:
                rows = await connection.execute(text(f'SELECT t::text FROM "{schema}"."{table}" t'))  # noqa: S608
                text_rows += [row[0] for row in rows]
    finally:
        await engine.dispose()
    return "\n".join(text_rows)


def leaks(haystack: str) -> bool:
    return any(form.lower() in haystack.lower() for form in FORMS)


async def test_the_card_number_is_refused_everywhere_and_leaks_nowhere(
    payments, caplog, postgres_admin_url, service_database
):
    caplog.set_level(logging.DEBUG)
    await payments.route("alpha")
    payment = await payments.authorize(5_000)
    await payments.capture(payment.name, 2_000, final_capture=True)
    await payments.call("RefundPayment", payments.refund_request(payment.name, 500, refund_id="r1"))
    tried = 0
    for method, request in base_requests(payments, payment).items():
        for path, bad in with_card_number(request, PAN):
            metadata = payments.metadata if method != "HandlePspWebhook" else ()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await getattr(payments.stub, method)(bad, metadata=metadata)
            error = caught.value
            # A credential (the webhook's signature) is not searched for card numbers: there
            # the number is a malformed signature, refused before anything reads the request.
            credential = path in request.DESCRIPTOR.fields_by_name and is_credential(
                request.DESCRIPTOR.fields_by_name[path]
            )
            expected = (
                grpc.StatusCode.UNAUTHENTICATED if credential else grpc.StatusCode.INVALID_ARGUMENT
            )
            assert error.code() == expected, (method, path, error)
            trailers = "".join(str(item) for item in error.trailing_metadata() or ())
            assert not leaks(error.details() or ""), (method, path)
            assert not leaks(trailers), (method, path)
            tried += 1
    # Card data inside an authentic webhook body is refused too (after the signature check).
    body = f'{{"id":"evt_pan","type":"authorization.captured","data":{{"id":"{PAN}"}}}}'.encode()
    signature = sign(WEBHOOK_SECRET, int(time.time()), body)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.stub.HandlePspWebhook(
            pb.HandlePspWebhookRequest(
                psp="alpha", payload=body, signature=signature, timestamp=signature
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # And a token made of a card number never passes as a payment method.
    code, _ = await payments.fails(
        "AuthorizePayment", payments.authorize_request(100, pm=f"pm_{PAN}")
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert tried >= 50  # every string of every request, nested ones included

    logged = "\n".join(
        f"{r.getMessage()} {r.args} {r.exc_text or ''} {getattr(r, '__dict__', '')}"
        for r in caplog.records
    )
    assert caplog.records  # the run did log
    leaked = [
        (r.name, r.getMessage()[:200])
        for r in caplog.records
        if leaks(f"{r.getMessage()} {r.args}")
    ]
    assert leaked == []
    assert not leaks(logged)
    payments_rows = await dump_database(postgres_admin_url, service_database.name)
    ledger_rows = await dump_database(postgres_admin_url, payments.ledger.name)
    assert payment.name in payments_rows  # the dump holds the real rows, outbox included
    assert not leaks(payments_rows)
    assert not leaks(ledger_rows)
    spans = payments.spans.get_finished_spans()
    assert spans
    for span in spans:
        assert not leaks(span.to_json()), span.name
