import pytest

from commerce.ledger.v1 import ledger_service_pb2
from commerce.payments.v1 import payments_service_pb2
from commerce.type.v1 import address_pb2, money_pb2
from services.chassis import card_data
from services.chassis.errors import ErrorKind, InvalidArgument
from services.chassis.validation import CARD_DATA_REJECTED, VALIDATION_FAILED, RequestValidator


@pytest.fixture(scope="module")
def validator():
    return RequestValidator()


def test_a_valid_message_passes(validator):
    validator.validate(money_pb2.Money(currency_code="USD", amount_minor=1234))


def test_a_rule_violation_names_the_field_and_the_rule(validator):
    with pytest.raises(InvalidArgument) as caught:
        validator.validate(money_pb2.Money(currency_code="usd", amount_minor=1))
    error = caught.value
    assert error.kind is ErrorKind.INVALID_ARGUMENT
    assert error.reason == VALIDATION_FAILED
    assert [(v.field, v.reason) for v in error.violations] == [("currency_code", "string.pattern")]
    assert error.metadata == {"field": "currency_code", "rule": "string.pattern"}


def test_repeated_field_violations_carry_the_index(validator):
    address = address_pb2.Address(region_code="US", address_lines=["ok", "x" * 300])
    with pytest.raises(InvalidArgument) as caught:
        validator.validate(address)
    assert [v.field for v in caught.value.violations] == ["address_lines[1]"]


def test_card_numbers_are_rejected_without_echoing_them(validator):
    address = address_pb2.Address(region_code="US", recipient="4242424242424242")
    with pytest.raises(InvalidArgument) as caught:
        validator.validate(address)
    error = caught.value
    assert error.reason == CARD_DATA_REJECTED
    assert error.metadata == {"field": "recipient"}
    assert "4242" not in str(error)
    assert all("4242" not in v.description for v in error.violations)


def test_nul_characters_are_refused_naming_the_field(validator):
    with pytest.raises(InvalidArgument) as caught:
        validator.validate(address_pb2.Address(region_code="US", recipient="a\x00b"))
    assert caught.value.metadata == {"field": "recipient", "rule": "string.no_nul"}


def test_a_card_number_as_a_map_key_is_rejected_and_never_echoed(validator):
    request = ledger_service_pb2.CreateJournalEntryRequest()
    request.journal_entry.metadata["4111111111111111"] = "x"
    with pytest.raises(InvalidArgument) as caught:
        validator.validate(request)
    assert caught.value.reason == CARD_DATA_REJECTED
    assert "4111" not in str(caught.value) + repr(caught.value.metadata)
    assert all("4111" not in v.field for v in caught.value.violations)


def test_a_card_number_anywhere_wins_over_rule_violations_found_before_it(validator):
    # The plans scan strings as they validate: a violation met first must not hide the card.
    batch = ledger_service_pb2.BatchCreateJournalEntriesRequest(parent="not a parent")
    for index in range(60):
        batch.requests.add(parent="tenants/acme", entry_id=f"e{index}")
    batch.requests[57].journal_entry.name = "4242 4242 4242 4242"  # a field without rules
    with pytest.raises(InvalidArgument) as caught:
        validator.validate(batch)
    assert caught.value.reason == CARD_DATA_REJECTED
    assert caught.value.metadata == {"field": "requests[57].journal_entry.name"}


def test_a_nul_in_a_map_value_is_refused_naming_the_entry(validator):
    request = ledger_service_pb2.CreateJournalEntryRequest()
    request.journal_entry.metadata["memo"] = "a\x00b"
    with pytest.raises(InvalidArgument) as caught:
        validator.validate(request)
    assert caught.value.metadata == {
        "field": 'journal_entry.metadata["memo"]',
        "rule": "string.no_nul",
    }


# A hex HMAC-SHA256 whose digits include a Luhn-valid 16-digit run: what about one webhook in a
# hundred carried before `(commerce.auth.v1.credential)` marked the signature fields.
_HEX_SIGNATURE = "ab" + "4242424242424242" + "c0ffee" * 7 + "d"


def _webhook(
    psp: str = "sandbox", signature: str = "sig", timestamp: str = "1"
) -> payments_service_pb2.HandlePspWebhookRequest:
    return payments_service_pb2.HandlePspWebhookRequest(
        psp=psp, payload=b"{}", signature=signature, timestamp=timestamp
    )


def test_credential_fields_are_not_searched_for_card_numbers(validator):
    assert card_data.looks_like_card_number(_HEX_SIGNATURE)
    validator.validate(_webhook(signature=_HEX_SIGNATURE, timestamp=f"t=1,v1={_HEX_SIGNATURE}"))
    assert card_data.card_number_fields(_webhook(signature=_HEX_SIGNATURE)) == []


def test_credential_fields_still_refuse_nul_and_other_fields_still_refuse_card_numbers(validator):
    with pytest.raises(InvalidArgument) as caught:
        validator.validate(_webhook(signature="sig\x00"))
    assert caught.value.reason == VALIDATION_FAILED
    assert caught.value.metadata["field"] == "signature"
    with pytest.raises(InvalidArgument) as caught:
        validator.validate(_webhook(psp="4242424242424242", signature=_HEX_SIGNATURE))
    assert caught.value.reason == CARD_DATA_REJECTED
    assert [v.field for v in caught.value.violations] == ["psp"]
