"""Tenant ids: only lower-case slugs reach `set_config('app.tenant_id', ...)`."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.chassis.db.database import (
    TENANT_ID_PATTERN,
    InvalidTenantIdError,
    validate_tenant_id,
)


@pytest.mark.parametrize("tenant_id", ["acme", "acme-corp", "t01", "a" + "b" * 62])
def test_lower_case_slugs_of_3_to_63_characters_are_accepted(tenant_id):
    assert validate_tenant_id(tenant_id) == tenant_id


@pytest.mark.parametrize(
    "tenant_id",
    [
        "",
        "ab",  # too short
        "a" + "b" * 63,  # 64 characters
        "Acme",  # upper case
        "1acme",  # must start with a letter
        "-acme",
        "acme_corp",  # underscore
        "acme corp",
        "acme\n",  # a `$` anchor would let the newline through
        "acme'; DROP TABLE notes; --",
        "acmé",
    ],
)
def test_anything_else_is_refused(tenant_id):
    with pytest.raises(InvalidTenantIdError):
        validate_tenant_id(tenant_id)


def test_a_non_string_tenant_id_is_refused():
    with pytest.raises(InvalidTenantIdError):
        validate_tenant_id(None)  # type: ignore[arg-type]


def test_invalid_tenant_id_error_is_a_value_error():
    assert issubclass(InvalidTenantIdError, ValueError)


@given(st.from_regex(r"\A[a-z][a-z0-9-]{2,62}\Z"))
def test_every_id_matching_the_documented_pattern_is_accepted(tenant_id):
    assert validate_tenant_id(tenant_id) == tenant_id


@given(st.text(max_size=80))
def test_validation_accepts_exactly_the_full_pattern_matches(candidate):
    accepted = TENANT_ID_PATTERN.fullmatch(candidate) is not None
    try:
        validate_tenant_id(candidate)
    except InvalidTenantIdError:
        assert not accepted
    else:
        assert accepted
        assert candidate.isascii()
        assert "\n" not in candidate
