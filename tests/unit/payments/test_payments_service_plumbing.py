"""The service's pure plumbing: request fingerprints, ledger ids, webhook payloads, the PSP
credentials file, and the enum mapping between the contract and the domain."""

import re
import uuid

import pytest

from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from commerce.type.v1.money_pb2 import Money as MoneyPb
from services.chassis.errors import DomainError
from services.payments import ledger, messages
from services.payments.config import load_psp_file
from services.payments.domain.attempts import Operation
from services.payments.domain.methods import CaptureMethod
from services.payments.domain.states import PaymentState
from services.payments.service import PaymentsService, fingerprint

LEDGER_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def test_the_fingerprint_ignores_the_request_id_and_sees_every_other_change():
    request = pb.CapturePaymentRequest(
        name="tenants/acme/payments/p1",
        amount=MoneyPb(currency_code="USD", amount_minor=100),
        request_id=str(uuid.uuid4()),
    )
    same = pb.CapturePaymentRequest()
    same.CopyFrom(request)
    same.request_id = str(uuid.uuid4())
    assert fingerprint(same) == fingerprint(request)
    changed = pb.CapturePaymentRequest()
    changed.CopyFrom(request)
    changed.amount.amount_minor = 101
    assert fingerprint(changed) != fingerprint(request)
    final = pb.CapturePaymentRequest()
    final.CopyFrom(request)
    final.final_capture = True
    assert fingerprint(final) != fingerprint(request)
    assert len(fingerprint(request)) == 32


def test_ledger_ids_are_deterministic_valid_and_distinct_per_step():

    first = ledger.request_id("acme", "p1", "hold", "1", "req-a")
    assert first == ledger.request_id("acme", "p1", "hold", "1", "req-a")
    assert uuid.UUID(first).version == 5
    others = {
        ledger.request_id("acme", "p1", "hold", "1", "req-b"),
        ledger.request_id("acme", "p2", "hold", "1", "req-a"),
        ledger.request_id("other", "p1", "hold", "1", "req-a"),
    }
    assert first not in others
    assert len(others) == 3
    long_id = "p" * 64
    holds = {ledger.hold_id("acme", long_id, n) for n in (1, 2, 3)}
    assert len(holds) == 3
    assert all(re.match(LEDGER_ID, h) for h in holds)
    for spec in ledger.ACCOUNTS:
        assert re.match(LEDGER_ID, ledger.account_id(spec, "USD"))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "WEBHOOK_PAYLOAD_INVALID"),
        (b"[1, 2]", "WEBHOOK_PAYLOAD_INVALID"),
        (b'{"type": "authorization.captured", "data": {}}', "WEBHOOK_PAYLOAD_INVALID"),
        (b'{"id": "evt_1", "type": "authorization.captured"}', "WEBHOOK_PAYLOAD_INVALID"),
        (b'{"id": "evt_1", "type": "x", "data": {"id": 5}}', "WEBHOOK_PAYLOAD_INVALID"),
        (b'{"id": "evt_1", "type": "x", "data": {"id": "4111111111111111"}}', "VALIDATION_FAILED"),
    ],
)
def test_malformed_webhook_payloads_are_refused(payload, reason):
    with pytest.raises(DomainError) as caught:
        PaymentsService._parse_webhook("alpha", payload)
    assert caught.value.reason == reason
    assert "4111" not in str(caught.value)


def test_a_refund_event_is_matched_by_its_authorization():
    delivery = PaymentsService._parse_webhook(
        "alpha",
        b'{"id":"evt_9","type":"refund.succeeded","data":{"id":"re_1","authorization":"auth_7"}}',
    )
    assert (delivery.event_id, delivery.event_type, delivery.psp_reference) == (
        "evt_9",
        "refund.succeeded",
        "auth_7",
    )


def test_the_credentials_file_is_validated_without_echoing_secrets(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(
        '[psps.alpha]\nkind = "sandbox"\nbase_url = "http://127.0.0.1:1"\n'
        'webhook_secret = "whsec_x"\n'
        '[psps.stripe]\nkind = "stripe"\nbase_url = "http://127.0.0.1:2"\napi_key = "sk_test_1"\n'
    )
    loaded = load_psp_file(good)
    assert set(loaded) == {"alpha", "stripe"}
    assert "sk_test_1" not in repr(loaded)
    bad = tmp_path / "bad.toml"
    bad.write_text('[psps.alpha]\nkind = "paypal"\nbase_url = "x"\napi_key = "sk_live_secret"\n')
    with pytest.raises(ValueError, match="invalid") as caught:
        load_psp_file(bad)
    assert "sk_live_secret" not in str(caught.value)


def test_enums_map_by_name_both_ways():
    assert messages.payment_state(res.PAYMENT_STATE_PARTIALLY_REFUNDED) is (
        PaymentState.PARTIALLY_REFUNDED
    )
    assert messages.payment_state(res.PAYMENT_STATE_UNSPECIFIED) is None
    assert messages.capture_method(res.CAPTURE_METHOD_MANUAL) is CaptureMethod.MANUAL
    assert messages.operation(Operation.STATUS_INQUIRY) == res.PAYMENT_OPERATION_STATUS_INQUIRY
    with pytest.raises(DomainError) as caught:
        messages.capture_method(res.CAPTURE_METHOD_UNSPECIFIED)
    assert caught.value.reason == "VALIDATION_FAILED"
    with pytest.raises(DomainError):
        messages.refund_reason(99)


def test_etags_round_trip_and_foreign_ones_are_refused():
    assert messages.etag_version('W/"7"') == 7
    assert messages.etag_version("garbage") is None


def test_generated_ids_never_look_like_card_numbers(monkeypatch):
    from services.chassis.card_data import looks_like_card_number  # noqa: PLC0415
    from services.payments import ids  # noqa: PLC0415

    # A PAN-like draw first (a 16-digit Luhn-valid run), then an ordinary one.
    draws = iter(["4111111111111111abcdef01", "abcdef0123456789abcdef01"])
    monkeypatch.setattr("services.payments.ids.secrets.token_hex", lambda _n: next(draws))
    assert ids.random_id("pay-") == "pay-abcdef0123456789abcdef01"
    monkeypatch.undo()
    assert not any(looks_like_card_number(ids.random_id("re-")) for _ in range(2000))


@pytest.mark.parametrize(
    ("payload", "reference"),
    [
        (
            b'{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}',
            "pi_1",
        ),
        (
            (
                b'{"id":"evt_2","type":"charge.refunded",'
                b'"data":{"object":{"id":"ch_1","payment_intent":"pi_2"}}}'
            ),
            "pi_2",
        ),
        (b'{"id":"evt_3","type":"authorization.voided","data":{"id":"sbx_auth_1"}}', "sbx_auth_1"),
    ],
)
def test_stripe_and_sandbox_events_name_their_payment(payload, reference):
    assert PaymentsService._parse_webhook("psp", payload).psp_reference == reference


def test_ledger_hold_ids_never_look_like_card_numbers():
    from services.chassis.card_data import looks_like_card_number  # noqa: PLC0415

    # Hex hold ids did, about once in 250 payments: the ledger then refused every hold.
    ids = [ledger.hold_id("acme", f"pay-{n}", k) for n in range(5_000) for k in (1, 2)]
    assert not any(looks_like_card_number(i) for i in ids)
    assert all(re.match(LEDGER_ID, i) for i in ids)
