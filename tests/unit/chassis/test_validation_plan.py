"""The compiled validation plans against protovalidate itself, for every contract message type.

Differential: for generated messages (valid and invalid values, chosen from each field's own
rules), the plan must report exactly protovalidate's violations — same field paths, rule ids,
messages, in the same order. VALIDATION_EXAMPLES raises the number of examples per type.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import time
import uuid
from typing import Any

import protovalidate
import pytest
import re2  # type: ignore[import-untyped]
from buf.validate import validate_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerce.ledger.v1 import ledger_service_pb2 as ledger_pb
from commerce.ledger.v1 import resources_pb2 as ledger_res
from commerce.type.v1.money_pb2 import Money
from services.chassis.card_data import has_refused_strings, has_suspect_strings
from services.chassis.validation import (
    PlanCompiler,
    SuspectString,
    _matcher,
    _python_regex,
    protovalidate_violations,
    violation_triples,
)

EXAMPLES = int(os.environ.get("VALIDATION_EXAMPLES", "10"))
NOW = int(time.time())


def _contract_types() -> list[Descriptor]:
    found: dict[str, Descriptor] = {}
    for package in ("type", "ledger", "payments", "checkout", "invoicing"):
        root = importlib.import_module(f"commerce.{package}.v1")
        for info in pkgutil.iter_modules(root.__path__):
            if info.name.endswith("_pb2") and not info.name.endswith("_grpc"):
                module = importlib.import_module(f"commerce.{package}.v1.{info.name}")
                for desc in module.DESCRIPTOR.message_types_by_name.values():
                    if not desc.name.endswith("Response"):  # responses nest the same resources
                        found[desc.full_name] = desc
    return sorted(found.values(), key=lambda d: d.full_name)


TYPES = _contract_types()


@pytest.fixture(scope="module")
def plans() -> PlanCompiler:
    return PlanCompiler()


@pytest.fixture(scope="module")
def reference() -> protovalidate.Validator:
    return protovalidate.Validator()


def _rules(fd: FieldDescriptor) -> validate_pb2.FieldRules:
    if validate_pb2.field in fd.GetOptions().Extensions:
        rules: validate_pb2.FieldRules = fd.GetOptions().Extensions[validate_pb2.field]
        return rules
    return validate_pb2.FieldRules()


_NAMES = st.sampled_from(
    [
        "tenants/acme",
        "tenants/acme/accounts/cash",
        "tenants/acme/accounts/cash-2",
        "tenants/other/accounts/cash",
        "tenants/acme/entries/e1",
        "tenants/acme/holds/h1",
        "tenants/acme/checkouts/c1",
        "tenants/acme/invoices/i1",
        "tenants/acme/numberingConfig",
        "tenants/acme/payments/p1",
        "tenants/acme/orders/o1",
        "lines",
        "customer.email",
        "memo",
        "USD",
        "usd",
        "EUR",
        "{prefix}-{seq:6}",
        "{prefix}{year}-{month}-{seq}{seq}",
        "a@example.com",
        "not an email",
        "rules",
        "default_psps",
        "rules.psps",
        "default_psps_x",
    ]
)


# Strings the card-data guard refuses, and near misses it must let through.
_CARD_LIKE = [
    "4111 1111 1111 1111",
    "pan 4242424242424242",
    "4242424242424241",
    "1234-5678-9012",
    "nul\x00inside",
    "\x00",
    "INV-2026-000123",
]


def _string(fd: FieldDescriptor, rules: Any) -> st.SearchStrategy[str]:
    choices: list[st.SearchStrategy[str]] = [
        st.just(""),
        _NAMES,
        st.uuids().map(str),
        st.text(max_size=6),
        st.sampled_from(_CARD_LIKE),
    ]
    if rules.HasField("pattern"):
        choices.append(st.from_regex(rules.pattern, fullmatch=True).filter(lambda s: len(s) < 300))
    choices.extend(
        st.integers(max(0, limit - 1), limit + 1).map(lambda n: "x" * n)
        for limit in (rules.max_len, rules.min_len)
        if limit
    )
    return st.one_of(choices)


def _integer(fd: FieldDescriptor, rules: Any) -> st.SearchStrategy[int]:
    unsigned = fd.type in (
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
    )
    wide = fd.type in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    )
    bits = 64 if wide else 32
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    edges = {0, 1, -1, 100, 1_000_000_000_000}
    if rules is not None:
        for name in ("gt", "gte", "lt", "lte", "const"):
            if rules.HasField(name):
                value = getattr(rules, name)
                edges.update({value - 1, value, value + 1})
        edges.update(getattr(rules, "in", []))
        edges.update(rules.not_in)
    in_range = sorted(v for v in edges if low <= v <= high)
    return st.one_of(st.sampled_from(in_range), st.integers(low, high))


def _scalar(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    rules = _rules(fd)
    kind = rules.WhichOneof("type")
    typed = getattr(rules, kind) if kind else None
    if fd.is_repeated and rules.repeated.HasField("items"):
        kind = rules.repeated.items.WhichOneof("type")
        typed = getattr(rules.repeated.items, kind) if kind else None
    if fd.type == FieldDescriptor.TYPE_STRING:
        return _string(fd, typed if kind == "string" else validate_pb2.StringRules())
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=8)
    if fd.type == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        return st.sampled_from([*fd.enum_type.values_by_number, 99])
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=False, width=32)
    return _integer(fd, typed)


def _message(desc: Descriptor, depth: int) -> st.SearchStrategy[Message]:
    cls = GetMessageClass(desc)
    if desc.full_name == "google.protobuf.Timestamp":
        return st.builds(
            cls, seconds=st.integers(NOW - 40 * 86_400, NOW + 40 * 86_400), nanos=st.just(0)
        )
    if desc.full_name == "google.protobuf.Duration":
        return st.builds(cls, seconds=st.integers(-10, 40 * 86_400), nanos=st.just(0))
    if desc.full_name == "google.protobuf.FieldMask":
        return st.builds(cls, paths=st.lists(_NAMES, max_size=3))
    if desc.full_name.startswith("google.protobuf."):
        return st.builds(cls)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for fd in desc.fields:
        strategy = _field(fd, depth)
        if strategy is not None:
            fields[fd.name] = strategy

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for name, strategy in fields.items():
            if not draw(st.booleans()):
                continue
            _assign(message, desc.fields_by_name[name], draw(strategy))
        return message

    return build()


def _assign(message: Message, fd: FieldDescriptor, value: Any) -> None:
    target = getattr(message, fd.name)
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        value_fd = fd.message_type.fields_by_name["value"]
        for key, item in value.items():
            if value_fd.message_type is not None:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif fd.is_repeated:
        target.extend(value)
    elif fd.message_type is not None:
        target.CopyFrom(value)
    else:
        setattr(message, fd.name, value)


def _field(fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        key_fd = fd.message_type.fields_by_name["key"]
        value_fd = fd.message_type.fields_by_name["value"]
        rules = _rules(fd)
        keys = (
            _string(key_fd, rules.map.keys.string)
            if key_fd.type == FieldDescriptor.TYPE_STRING
            else _scalar(key_fd)
        )
        if value_fd.message_type is not None:
            if depth > 2:
                return None
            values: st.SearchStrategy[Any] = _message(value_fd.message_type, depth + 1)
        elif value_fd.type == FieldDescriptor.TYPE_STRING:
            values = _string(value_fd, rules.map.values.string)
        else:
            values = _scalar(value_fd)
        return st.dictionaries(keys, values, max_size=2)
    if fd.message_type is not None:
        if depth > 2:
            return None
        single = _message(fd.message_type, depth + 1)
        return st.lists(single, max_size=3) if fd.is_repeated else single
    single = _scalar(fd)
    return st.lists(single, max_size=3) if fd.is_repeated else single


_STRATEGIES = {desc.full_name: _message(desc, 0) for desc in TYPES}


@pytest.mark.parametrize("desc", TYPES, ids=[d.full_name for d in TYPES])
def test_plans_report_exactly_what_protovalidate_reports(
    desc: Descriptor, plans: PlanCompiler, reference: protovalidate.Validator
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        derandomize=True,
    )
    @given(_STRATEGIES[desc.full_name])
    def check(message: Message) -> None:
        expected = violation_triples(protovalidate_violations(reference, message))
        assert violation_triples(plans.violations(message)) == expected

    check()


@pytest.fixture(scope="module")
def scanning_plans() -> PlanCompiler:
    return PlanCompiler(scan_strings=True)


@pytest.mark.parametrize("desc", TYPES, ids=[d.full_name for d in TYPES])
def test_the_compiled_string_scan_flags_exactly_the_messages_the_exact_walk_refuses(
    desc: Descriptor, plans: PlanCompiler, scanning_plans: PlanCompiler
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        derandomize=True,
    )
    @given(_STRATEGIES[desc.full_name])
    def check(message: Message) -> None:
        refused = has_refused_strings(message)
        assert has_suspect_strings(message) == refused
        # The plans that scan as they validate (a server's): the same refusal, and for a
        # clean message the same violations as the plans alone.
        try:
            scanned = violation_triples(scanning_plans.violations(message))
        except SuspectString:
            assert refused
        else:
            assert not refused
            assert scanned == violation_triples(plans.violations(message))

    check()


def _posting(account: str, amount: int) -> ledger_res.Posting:
    return ledger_res.Posting(
        account=f"tenants/acme/accounts/{account}",
        amount=Money(currency_code="USD", amount_minor=amount),
    )


def _entry_request(index: int, *, entry_id: str = "") -> ledger_pb.CreateJournalEntryRequest:
    return ledger_pb.CreateJournalEntryRequest(
        parent="tenants/acme",
        journal_entry=ledger_res.JournalEntry(
            postings=[_posting("cash", index + 1), _posting("sales", -(index + 1))]
        ),
        entry_id=entry_id,
        request_id=str(uuid.UUID(int=index)),
    )


def test_the_ledger_write_path_runs_no_cel_interpreter(plans: PlanCompiler) -> None:
    for request_type in (
        ledger_pb.CreateJournalEntryRequest,
        ledger_pb.BatchCreateJournalEntriesRequest,
        ledger_pb.CreateAccountRequest,
        ledger_pb.PostHoldRequest,
        ledger_pb.VoidHoldRequest,
        ledger_pb.ReverseJournalEntryRequest,
    ):
        assert plans.interpreted_rules(request_type.DESCRIPTOR) == [], request_type
    batch = ledger_pb.BatchCreateJournalEntriesRequest(
        parent="tenants/acme",
        requests=[_entry_request(i) for i in range(100)],
        request_id=str(uuid.uuid4()),
    )
    before = plans.interpreted_evaluations
    assert plans.violations(batch) == []
    assert plans.interpreted_evaluations == before


def test_a_batch_with_a_bad_entry_names_it_like_protovalidate(
    plans: PlanCompiler, reference: protovalidate.Validator
) -> None:
    requests = [_entry_request(i, entry_id=f"e{i % 3}") for i in range(5)]
    requests[3].journal_entry.postings[1].amount.amount_minor = 0
    requests[4].parent = "tenants/other"
    batch = ledger_pb.BatchCreateJournalEntriesRequest(
        parent="tenants/acme", requests=requests, request_id=str(uuid.uuid4())
    )
    got = violation_triples(plans.violations(batch))
    assert got == violation_triples(protovalidate_violations(reference, batch))
    fields_and_rules = {(field, rule) for field, rule, _ in got}
    assert ("", "batch_create_journal_entries.unique_entry_ids") in fields_and_rules
    assert ("", "batch_create_journal_entries.same_parent") in fields_and_rules
    assert ("requests[3].journal_entry.postings[1]", "posting.amount_non_zero") in fields_and_rules


def test_too_many_items_and_timestamp_rules_agree_without_the_interpreter(
    plans: PlanCompiler, reference: protovalidate.Validator
) -> None:
    entry = ledger_res.JournalEntry(postings=[_posting("cash", 1)] * 101)
    assert violation_triples(plans.violations(entry)) == violation_triples(
        protovalidate_violations(reference, entry)
    )
    assert next(r for _, r, _ in violation_triples(plans.violations(entry))) == "repeated.max_items"
    hold = ledger_pb.CreateHoldRequest(parent="tenants/acme", request_id=str(uuid.uuid4()))
    hold.hold.debit_account = "tenants/acme/accounts/a"
    hold.hold.credit_account = "tenants/acme/accounts/b"
    hold.hold.amount.CopyFrom(Money(currency_code="USD", amount_minor=5))
    hold.hold.expire_time.FromSeconds(NOW - 60)  # in the past: timestamp.gt_now
    before = plans.interpreted_evaluations
    got = violation_triples(plans.violations(hold))
    assert plans.interpreted_evaluations == before
    assert got == violation_triples(protovalidate_violations(reference, hold))
    assert ("hold.expire_time", "timestamp.gt_now") in {(f, r) for f, r, _ in got}
    hold.hold.expire_time.FromSeconds(NOW + 31 * 86_400)  # too far: timestamp.within
    got = violation_triples(plans.violations(hold))
    assert got == violation_triples(protovalidate_violations(reference, hold))
    assert [(f, r) for f, r, _ in got] == [("hold.expire_time", "timestamp.within")]


def _service_request_types() -> list[Descriptor]:
    found: dict[str, Descriptor] = {}
    for package in ("ledger", "payments", "checkout", "invoicing"):
        root = importlib.import_module(f"commerce.{package}.v1")
        for info in pkgutil.iter_modules(root.__path__):
            if info.name.endswith("_pb2"):
                module = importlib.import_module(f"commerce.{package}.v1.{info.name}")
                for service in module.DESCRIPTOR.services_by_name.values():
                    for method in service.methods:
                        found[method.input_type.full_name] = method.input_type
    return sorted(found.values(), key=lambda d: d.full_name)


# Request types whose plans still hand a rule to the CEL interpreter, with the rule ids. The
# goal is none: a new contract rule the compiler cannot translate shows up here first.
STILL_INTERPRETED: dict[str, list[str]] = {}


def test_no_request_type_of_any_service_leaves_a_rule_to_the_interpreter(
    plans: PlanCompiler,
) -> None:
    types = _service_request_types()
    assert len(types) > 40  # every service's every method
    interpreted = {
        desc.full_name: rules for desc in types if (rules := plans.interpreted_rules(desc))
    }
    assert interpreted == STILL_INTERPRETED


_PIECES = st.sampled_from(
    ["a", "b", "-", "/", ".", "[a-c]", "[A-Z0-9_.-]", "(a|b)", "(ab)?", "?", "{0,2}", "{1}", "$"]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    pattern=st.lists(_PIECES, max_size=6).map(lambda parts: "^" + "".join(parts)),
    text=st.text(alphabet="abcAB-/._\n9", max_size=8),
)
def test_patterns_run_by_python_match_exactly_what_re2_matches(pattern: str, text: str) -> None:
    try:
        expected = re2.search(pattern, text) is not None
    except re2.error:
        return  # not a pattern (e.g. a quantifier with nothing to repeat)
    assert _matcher(pattern)(text) == expected


def test_only_anchored_bounded_patterns_leave_re2() -> None:
    assert _python_regex("^[A-Z]{3}$") == "^[A-Z]{3}\\Z"
    assert _python_regex("^([a-z0-9][a-z0-9_-]{0,63})?$") is not None
    for risky in ("[0-9]{13,}", "^a+$", "^(a|aa){1,5}$", "^.*x", "^[^a]$", "^a\\d$", "^(?i)a"):
        assert _python_regex(risky) is None, risky


def test_a_type_the_compiler_cannot_plan_is_left_whole_to_protovalidate(
    monkeypatch: pytest.MonkeyPatch, reference: protovalidate.Validator
) -> None:
    fresh = PlanCompiler()
    compile_plan = fresh._new_plan

    def refuse_postings(desc: Descriptor) -> Any:
        if desc.full_name == "commerce.ledger.v1.Posting":
            raise NotImplementedError("a rule shape the compiler does not know")
        return compile_plan(desc)

    monkeypatch.setattr(fresh, "_new_plan", refuse_postings)
    request = _entry_request(3)
    request.journal_entry.postings[1].amount.amount_minor = 0
    request.journal_entry.postings[1].account = "nope"
    got = violation_triples(fresh.violations(request))
    assert got == violation_triples(protovalidate_violations(reference, request))
    assert {(f, r) for f, r, _ in got} == {
        ("", "create_journal_entry.same_tenant"),  # planned as usual
        ("journal_entry.postings[1]", "posting.amount_non_zero"),  # by protovalidate, prefixed
        ("journal_entry.postings[1].account", "string.pattern"),
    }
    assert fresh.interpreted_rules(ledger_pb.CreateJournalEntryRequest.DESCRIPTOR) != []


def test_plans_are_generated_straight_line_python_per_message_type(plans: PlanCompiler) -> None:
    entry = plans.plan_source(ledger_pb.CreateJournalEntryRequest.DESCRIPTOR)
    posting = plans.plan_source(ledger_res.Posting.DESCRIPTOR)
    # A field's standard rules are inline comparisons; a custom CEL rule is inline Python.
    assert "if len(v) > 256:" in posting
    assert "m.amount.amount_minor != (0)" in posting
    # A nested message is one direct call of its type's plan, only when it is set.
    assert "if m.HasField('amount'):" in posting
    assert "if m.HasField('journal_entry'):" in entry
    # Paths are built only for a violation or for a nested message, never per check.
    assert all("_J(" not in line for line in posting.splitlines() if line.strip().startswith("if"))


def test_a_nested_type_without_any_rule_is_never_visited(plans: PlanCompiler) -> None:
    # A JournalEntry's create_time is a Timestamp, which has no rule: no code for it at all.
    source = plans.plan_source(ledger_res.JournalEntry.DESCRIPTOR)
    assert "create_time" not in source
    timestamp = ledger_res.JournalEntry.DESCRIPTOR.fields_by_name["create_time"].message_type
    assert timestamp is not None
    assert plans.plan_source(timestamp).strip().endswith("pass")


def test_a_rule_cel_cannot_evaluate_is_a_violation_for_a_server_not_an_error() -> None:
    line = _checkout_line_overflowing()
    with pytest.raises(Exception, match="overflow"):
        PlanCompiler().violations(line)  # what protovalidate does (the differential reference)
    got = PlanCompiler(errors_as_violations=True).violations(line)
    assert [(v.field, v.reason) for v in got] == [
        ("", "checkout_line.unit_price_range"),
        ("", "checkout_line.discount_not_above_line"),
    ]
    assert "overflow" in got[1].description


def _checkout_line_overflowing() -> Message:
    from commerce.checkout.v1 import resources_pb2 as checkout_res  # noqa: PLC0415

    line = checkout_res.CheckoutLine(sku="sku-1", quantity=1000)
    line.unit_price.currency_code = "USD"
    line.unit_price.amount_minor = 2**62
    line.discount.amount_off.currency_code = "USD"
    line.discount.amount_off.amount_minor = 5
    return line
