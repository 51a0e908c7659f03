"""The canonical encoding and the chain: stable bytes, the documented hash, and every break."""

import hashlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain import chain
from services.ledger.domain.entries import ChainLink, EntryDraft, Posting, TraceLink

WHEN = datetime(2026, 11, 21, 1, 2, 3, 456789, tzinfo=UTC)


def draft(entry_id="e1", amount=100, **fields):
    return EntryDraft(
        entry_id,
        (Posting("cash", "USD", amount, "memo"), Posting("sales", "USD", -amount)),
        **fields,
    )


def test_the_content_is_sorted_compact_json_independent_of_dict_order():
    one = chain.content("acme", draft(metadata={"b": "2", "a": "1"}))
    other = chain.content("acme", draft(metadata={"a": "1", "b": "2"}))
    assert one == other
    assert one.startswith(b'{"description":"","effective_time_us":null,"hold":""')
    assert b'"account":"tenants/acme/accounts/cash"' in one


def test_every_recorded_field_changes_the_content():
    base = chain.content("acme", draft())
    variants = [
        draft(amount=101),
        draft(entry_id="e2"),
        draft(description="x"),
        draft(metadata={"k": "v"}),
        draft(effective_time=WHEN),
        draft(reverses="e0"),
        draft(hold="h1"),
        draft(trace=TraceLink("a" * 32, "b" * 16)),
    ]
    assert all(chain.content("acme", v) != base for v in variants)
    assert chain.content("other", draft()) != base


def test_the_link_hash_is_sha256_of_previous_sequence_time_and_content():
    body = chain.content("acme", draft())
    expected = hashlib.sha256(
        bytes(32) + (7).to_bytes(8, "big") + chain.micros(WHEN).to_bytes(8, "big") + body
    ).digest()
    assert chain.link_hash(bytes(32), 7, WHEN, body) == expected
    assert chain.micros(WHEN) == 1_795_222_923_456_789  # 2026-11-21T01:02:03.456789Z


def chained(drafts):
    links, previous = [], chain.GENESIS_HASH
    for sequence, d in enumerate(drafts, start=1):
        digest = chain.link_hash(previous, sequence, WHEN, chain.content("acme", d))
        links.append(chain.StoredLink(ChainLink(sequence, previous, digest, WHEN), d))
        previous = digest
    return links


def test_an_intact_chain_verifies_to_its_head():
    links = chained([draft(f"e{i}", i + 1) for i in range(4)])
    verifier = chain.ChainVerifier("acme", 1, chain.GENESIS_HASH)
    assert verifier.feed(links)
    assert (verifier.checked, verifier.head_hash) == (4, links[-1].link.hash)


def test_an_altered_entry_is_a_hash_mismatch_at_its_sequence():
    links = chained([draft(f"e{i}", i + 1) for i in range(4)])
    links[2] = chain.StoredLink(links[2].link, draft("e2", 999))
    verifier = chain.ChainVerifier("acme", 1, chain.GENESIS_HASH)
    assert not verifier.feed(links)
    assert verifier.first_break is not None
    assert (verifier.first_break.sequence, verifier.first_break.kind) == (
        3,
        chain.BreakKind.HASH_MISMATCH,
    )
    assert verifier.first_break.entry_id == "e2"


def test_a_missing_link_is_a_gap_and_a_relinked_one_a_previous_hash_mismatch():
    links = chained([draft(f"e{i}", i + 1) for i in range(4)])
    gap = chain.ChainVerifier("acme", 1, chain.GENESIS_HASH)
    gap.feed([links[0], links[2], links[3]])
    assert gap.first_break is not None
    assert (gap.first_break.sequence, gap.first_break.kind) == (2, chain.BreakKind.SEQUENCE_GAP)
    relinked = chain.ChainVerifier("acme", 1, chain.GENESIS_HASH)
    forged = ChainLink(2, b"\x01" * 32, links[1].link.hash, WHEN)
    relinked.feed([links[0], chain.StoredLink(forged, links[1].draft)])
    assert relinked.first_break is not None
    assert relinked.first_break.kind is chain.BreakKind.PREVIOUS_HASH_MISMATCH


_text = st.text(max_size=12)  # any Unicode: quotes, backslashes, controls, non-BMP, surrogates
_ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)


@st.composite
def _drafts(draw):
    return EntryDraft(
        draw(_ids),
        tuple(
            Posting(draw(_ids), draw(_text), draw(st.integers()), draw(_text))
            for _ in range(draw(st.integers(0, 4)))
        ),
        description=draw(_text),
        metadata=draw(st.dictionaries(_text, _text, max_size=4)),
        effective_time=draw(st.none() | st.datetimes(timezones=st.just(UTC))),
        reverses=draw(st.none() | _ids),
        hold=draw(st.none() | _ids),
        trace=TraceLink(draw(_text), draw(_text)),
    )


@settings(max_examples=400)
@given(_drafts(), _ids)
def test_the_direct_encoding_is_byte_for_byte_the_canonical_json(entry, tenant):
    assert chain.content(tenant, entry) == chain.canonical_json(tenant, entry)


def test_values_of_unexpected_types_take_the_json_path():
    odd = draft(amount=True)  # an int subclass: json writes `true`
    assert chain.content("acme", odd) == chain.canonical_json("acme", odd)
    assert b'"amount_minor":true' in chain.content("acme", odd)
    assert chain.content("acme", draft(metadata={"k": 1})) == chain.canonical_json(
        "acme", draft(metadata={"k": 1})
    )


def test_a_non_string_field_takes_the_json_path():
    odd = EntryDraft("e1", (Posting("cash", "USD", 5, None), Posting("sales", "USD", -5)))  # type: ignore[arg-type]
    assert chain.content("acme", odd) == chain.canonical_json("acme", odd)
    assert b'"memo":null' in chain.content("acme", odd)
