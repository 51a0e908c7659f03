import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.ledger.v1 import ledger_service_pb2
from commerce.type.v1 import address_pb2, ids_pb2
from services.chassis import card_data
from services.chassis.card_data import card_number_fields, looks_like_card_number, luhn_valid


def _with_luhn_check_digit(body: str) -> str:
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("a Luhn check digit always exists")


def test_known_test_card_numbers_are_detected():
    assert looks_like_card_number("4242424242424242")
    assert looks_like_card_number("card 4242 4242 4242 4242 please")
    assert looks_like_card_number("5555-5555-5555-4444")
    assert looks_like_card_number("378282246310005")  # 15-digit Amex


def test_numbers_failing_luhn_or_out_of_length_are_not_card_numbers():
    assert not looks_like_card_number("4242424242424241")
    assert not looks_like_card_number("424242424242")  # 12 digits
    assert not looks_like_card_number("42424242424242424242")  # 20 digits
    assert not looks_like_card_number("INV-2026-000123")
    assert not looks_like_card_number("3f2a6c1e-8d4b-4c1a-9e7f-0b5d2c4a6e8f")


@given(st.text(alphabet="0123456789", min_size=12, max_size=18))
def test_every_luhn_valid_13_to_19_digit_number_is_detected(body):
    assert looks_like_card_number(_with_luhn_check_digit(body))


def test_grouped_card_numbers_must_use_one_separator_in_card_like_groups():
    assert looks_like_card_number("3782 822463 10005")  # Amex 4-6-5
    assert looks_like_card_number("4111-1111-1111-1111-")  # trailing punctuation is fine
    assert not looks_like_card_number("4111-1111 1111-1111")  # mixed separators
    assert not looks_like_card_number("411-11111-1111-1111")  # not how PANs are grouped


@given(st.uuids())
def test_uuids_are_never_taken_for_card_numbers(value):
    assert not looks_like_card_number(str(value))


@given(st.text(alphabet="0123456789", min_size=12, max_size=15))
def test_every_luhn_valid_number_grouped_in_fours_is_detected(body):
    digits = _with_luhn_check_digit(body)
    grouped = " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    assert looks_like_card_number(grouped)


def test_fields_holding_card_numbers_are_named_by_path_in_nested_and_repeated_fields():
    address = address_pb2.Address(
        region_code="US", address_lines=["1 Main St", "4111 1111 1111 1111"]
    )
    assert card_number_fields(address) == ["address_lines[1]"]
    customer = ids_pb2.CustomerRef(customer_id="4111111111111111")
    assert card_number_fields(customer) == ["customer_id"]


def test_a_clean_message_has_no_card_fields():
    assert card_number_fields(address_pb2.Address(region_code="DE", postal_code="10115")) == []


def test_a_card_number_run_touching_letters_is_still_detected():
    assert looks_like_card_number("cc4111111111111111")
    assert looks_like_card_number("pan:4111111111111111x")


def test_card_numbers_in_map_keys_are_found_without_putting_them_in_the_path():
    request = ledger_service_pb2.CreateJournalEntryRequest()
    request.journal_entry.metadata["card-4111111111111111"] = "x"
    request.journal_entry.metadata["memo"] = "4111111111111111"
    paths = card_number_fields(request)
    assert sorted(paths) == ['journal_entry.metadata["memo"]', "journal_entry.metadata[<key>]"]
    assert not any("4111" in path for path in paths)


def _by_the_pattern_alone(text: str) -> bool:
    """looks_like_card_number without its fast exits: every candidate, Luhn-checked."""
    for match in card_data._CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and card_data.luhn_valid(digits):
            return True
    return False


@settings(max_examples=300, derandomize=True)
@given(st.text(alphabet="0123456789 -ab/", min_size=10, max_size=40))
def test_the_fast_exits_never_change_the_answer(text):
    # Length < 13, fewer than 13 digits in all, no 4 digits in a row, a canonical UUID:
    # each exit may only skip strings the pattern itself would not take for a card number.
    assert looks_like_card_number(text) == _by_the_pattern_alone(text)


@pytest.mark.parametrize(
    "text",
    ["capture of tenants/acme/payments/p-0001", "4242 4242 424", "ref 4242-4242-4242"],
)
def test_text_with_fewer_than_13_digits_is_never_a_card_number(text):
    assert not looks_like_card_number(text)
