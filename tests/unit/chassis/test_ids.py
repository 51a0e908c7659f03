"""Server-assigned ids never look like a card number, so no guard ever refuses a name."""

import re
import uuid

from services.chassis.card_data import looks_like_card_number
from services.chassis.ids import random_id, stable_id
from services.ledger.domain.commands import new_id as ledger_id

ID = re.compile(r"^[a-z2-7]{26}$")


def test_random_ids_are_base32_and_never_card_like():
    drawn = [random_id() for _ in range(20_000)] + [ledger_id() for _ in range(5_000)]
    assert all(ID.match(i) for i in drawn)
    assert not any(looks_like_card_number(i) for i in drawn)
    assert len(set(drawn)) == len(drawn)


def test_hex_ids_would_have_been_refused_now_and_then():
    # Why the ids are not hex: among 20,000 uuid4 hex ids some pass the card-number check.
    assert any(looks_like_card_number(uuid.uuid4().hex) for _ in range(20_000))


def test_stable_ids_are_the_same_for_the_same_source():
    namespace = uuid.uuid4()
    assert stable_id(namespace, "invoice-1") == stable_id(namespace, "invoice-1")
    assert stable_id(namespace, "invoice-1") != stable_id(namespace, "invoice-2")
    assert ID.match(stable_id(namespace, "invoice-1"))
