"""Page tokens carry a cursor bound to the listing's parameters and reject anything else."""

import pytest

from services.chassis import pages
from services.chassis.errors import DomainError


def test_a_token_round_trips_its_cursor_for_the_same_parameters():
    token = pages.encode({"parent": "tenants/acme"}, {"seq": 42})
    assert pages.decode(token, {"parent": "tenants/acme"}) == {"seq": 42}
    assert pages.decode("", {"parent": "tenants/acme"}) is None


@pytest.mark.parametrize("token", ["garbage!", "e30", pages.encode({"parent": "x"}, {"seq": 1})])
def test_a_malformed_or_foreign_token_is_invalid(token):
    with pytest.raises(DomainError) as caught:
        pages.decode(token, {"parent": "tenants/acme"})
    assert caught.value.reason == "INVALID_PAGE_TOKEN"


def test_page_sizes_default_to_fifty_and_cap_at_five_hundred():
    assert (pages.page_size(0), pages.page_size(7), pages.page_size(10_000)) == (50, 7, 500)
