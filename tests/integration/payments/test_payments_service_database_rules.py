"""The database refuses what the domain refuses, whatever the application does: amounts
beyond what was authorized or captured, a changed currency, an illegal transition, an edited
history, refunds beyond the captured amount, a card number posing as a method token."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

pytestmark = pytest.mark.integration


async def refused(payments, statement, **params):
    with pytest.raises(DBAPIError) as caught:
        async with payments.database.tenant_transaction(payments.tenant) as session:
            await session.execute(text(statement), params)
    cause = caught.value.orig
    constraint = getattr(getattr(cause, "diag", None), "constraint_name", None) or ""
    return f"{constraint} {cause}"


@pytest.fixture
async def captured(payments):
    await payments.route("alpha")
    payment = await payments.authorize(5_000, payment_id="rules")
    await payments.capture(payment.name, 2_000, final_capture=True)
    return payment


async def test_amounts_stay_within_their_bounds(payments, captured):
    assert "payments_captured_within_authorized" in await refused(
        payments,
        "UPDATE payments SET amount_captured_minor = 5001 WHERE payment_id = 'rules'",
    )
    assert "payments_refunded_within_captured" in await refused(
        payments,
        "UPDATE payments SET amount_refunded_minor = 2001 WHERE payment_id = 'rules'",
    )
    assert "payments_amounts_monotonic" in await refused(
        payments,
        "UPDATE payments SET amount_captured_minor = 1000 WHERE payment_id = 'rules'",
    )


async def test_what_a_payment_was_created_with_never_changes(payments, captured):
    for statement in (
        "UPDATE payments SET currency_code = 'EUR' WHERE payment_id = 'rules'",
        "UPDATE payments SET amount_minor = 6000 WHERE payment_id = 'rules'",
        "UPDATE payments SET order_name = 'tenants/x/orders/y' WHERE payment_id = 'rules'",
        "UPDATE payments SET method_token = 'pm_other_token' WHERE payment_id = 'rules'",
        "UPDATE payments SET request_id = gen_random_uuid() WHERE payment_id = 'rules'",
    ):
        message = await refused(payments, statement)
        assert "payments_immutable" in message or "violates foreign key" in message, statement


async def test_only_the_state_machine_s_transitions_can_be_recorded(payments, captured):
    assert "payment_transitions_legal" in await refused(
        payments,
        "INSERT INTO payment_transitions (tenant_id, payment_id, sequence, from_state,"
        " to_state, operation, create_time) VALUES (:t, 'rules', 99, 'CAPTURED', 'AUTHORIZED',"
        " 'X', now())",
        t=payments.tenant,
    )
    for statement in (
        "DELETE FROM payment_transitions WHERE payment_id = 'rules'",
        "UPDATE payment_transitions SET create_time = now() WHERE payment_id = 'rules'",
        "DELETE FROM payment_attempts WHERE payment_id = 'rules'",
        "UPDATE payment_attempts SET psp = 'x' WHERE payment_id = 'rules'",
        "DELETE FROM payments WHERE payment_id = 'rules'",
    ):
        assert "append-only" in await refused(payments, statement), statement


async def test_refunds_never_exceed_the_captured_amount(payments, captured):
    assert "refunds_within_captured" in await refused(
        payments,
        "INSERT INTO refunds (tenant_id, payment_id, refund_id, request_id, currency_code,"
        " amount_minor, reason, state, create_time, update_time) VALUES (:t, 'rules', 'big',"
        " gen_random_uuid(), 'USD', 2001, 'OTHER', 'PENDING', now(), now())",
        t=payments.tenant,
    )
    assert "violates foreign key" in await refused(
        payments,
        "INSERT INTO refunds (tenant_id, payment_id, refund_id, request_id, currency_code,"
        " amount_minor, reason, state, create_time, update_time) VALUES (:t, 'rules', 'eur',"
        " gen_random_uuid(), 'EUR', 1, 'OTHER', 'PENDING', now(), now())",
        t=payments.tenant,
    )
    assert "refunds_sum_matches_payment" in await refused(
        payments,
        "INSERT INTO refunds (tenant_id, payment_id, refund_id, request_id, currency_code,"
        " amount_minor, reason, state, create_time, update_time) VALUES (:t, 'rules', 'ghost',"
        " gen_random_uuid(), 'USD', 10, 'OTHER', 'SUCCEEDED', now(), now())",
        t=payments.tenant,
    )


async def test_a_card_number_cannot_be_stored_as_a_method(payments, captured):
    assert "payments_method_token_check" in await refused(
        payments,
        "INSERT INTO payments (tenant_id, payment_id, request_id, order_name, currency_code,"
        " amount_minor, capture_method, method_token, method_type, state, create_time,"
        " update_time) VALUES (:t, 'pan', gen_random_uuid(), 'o', 'USD', 1, 'MANUAL',"
        " 'pm_4111111111111111', 'CARD', 'REQUIRES_AUTHORIZATION', now(), now())",
        t=payments.tenant,
    )


async def test_tenants_never_see_each_other(payments, captured):
    async with payments.database.tenant_transaction("someone-else") as session:
        seen = await session.scalar(text("SELECT count(*) FROM payments"))
    assert seen == 0
