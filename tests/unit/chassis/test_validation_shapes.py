"""Every rule shape the plan compiler translates, against protovalidate — also the shapes no
contract uses yet (timestamp/duration ranges, bytes lengths, unique, field masks, emails,
CEL arithmetic on ints, timestamps and durations, `now`, `duration()` literals).

Each shape is one synthetic message type built at test time (a file in the default descriptor
pool, with buf.validate options), fed values around its bounds, out of CEL's ranges, and at
random. The plans must report exactly protovalidate's violations — or raise what it raises —
and run the interpreter only for values CEL itself refuses (an overflow, a timestamp beyond
year 9999).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, cast

import protovalidate
import pytest
from buf.validate import validate_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.chassis.validation import (
    PlanCompiler,
    SuspectString,
    protovalidate_violations,
    violation_triples,
)

EXAMPLES = int(os.environ.get("VALIDATION_EXAMPLES", "40"))
NOW = int(time.time())
DAY = 86_400
FieldType = descriptor_pb2.FieldDescriptorProto
Rules = Callable[[validate_pb2.FieldRules], None]

# name → (field type, message type name or "", repeated, rules setter)
_FIELD_SHAPES: dict[str, tuple[int, str, bool, Rules]] = {}


def _shape(
    name: str, kind: int, type_name: str = "", *, repeated: bool = False
) -> Callable[[Rules], Rules]:
    def register(rules: Rules) -> Rules:
        _FIELD_SHAPES[name] = (kind, type_name, repeated, rules)
        return rules

    return register


_TS, _DUR = ".google.protobuf.Timestamp", ".google.protobuf.Duration"
_MSG = FieldType.TYPE_MESSAGE


def _set_bound(rules: Any, name: str, value: int) -> None:
    if isinstance(getattr(rules, name), int):
        setattr(rules, name, value)
    else:
        getattr(rules, name).FromSeconds(value)


def _bounds(prefix: str, kind: str) -> None:
    """gt/gte/lt/lte alone, and every two-sided range, inclusive and exclusive."""
    type_name = {"timestamp": _TS, "duration": _DUR}.get(kind, "")
    field_type = _MSG if type_name else FieldType.TYPE_INT64
    base = NOW if kind == "timestamp" else 0
    lo, hi = (base + DAY, base + 3 * DAY) if type_name else (10, 30)
    singles = {"gt": lo, "gte": lo, "lt": hi, "lte": hi}
    for bound, seconds in singles.items():

        def single(r: validate_pb2.FieldRules, b: str = bound, s: int = seconds) -> None:
            _set_bound(getattr(r, kind), b, s)

        _shape(f"{prefix}_{bound}", field_type, type_name)(single)
    for lower in ("gt", "gte"):
        for upper in ("lt", "lte"):
            for exclusive in (False, True):
                low, high = (hi, lo) if exclusive else (lo, hi)
                name = f"{prefix}_{lower}_{upper}{'_exclusive' if exclusive else ''}"

                def ranged(
                    r: validate_pb2.FieldRules,
                    a: str = lower,
                    b: str = upper,
                    x: int = low,
                    y: int = high,
                ) -> None:
                    _set_bound(getattr(r, kind), a, x)
                    _set_bound(getattr(r, kind), b, y)

                _shape(name, field_type, type_name)(ranged)


_bounds("int", "int64")
_bounds("ts", "timestamp")
_bounds("dur", "duration")
_shape("ts_gt_now", _MSG, _TS)(lambda r: setattr(r.timestamp, "gt_now", True))
_shape("ts_lt_now", _MSG, _TS)(lambda r: setattr(r.timestamp, "lt_now", True))
_shape("ts_within", _MSG, _TS)(lambda r: r.timestamp.within.FromSeconds(2 * DAY))


@_shape("ts_gt_now_within", _MSG, _TS)
def _gt_now_within(rules: validate_pb2.FieldRules) -> None:
    rules.timestamp.gt_now = True
    rules.timestamp.within.FromSeconds(DAY)


@_shape("bytes_min_max", FieldType.TYPE_BYTES)
def _bytes_min_max(rules: validate_pb2.FieldRules) -> None:
    rules.bytes.min_len, rules.bytes.max_len = 2, 4


_shape("bytes_len", FieldType.TYPE_BYTES)(lambda r: setattr(r.bytes, "len", 3))
_shape("unique_strings", FieldType.TYPE_STRING, repeated=True)(
    lambda r: setattr(r.repeated, "unique", True)
)
_shape("unique_ints", FieldType.TYPE_INT64, repeated=True)(
    lambda r: setattr(r.repeated, "unique", True)
)
_shape("mask_in", _MSG, ".google.protobuf.FieldMask")(
    lambda r: getattr(r.field_mask, "in").extend(["a", "b.c"])
)
_shape("email", FieldType.TYPE_STRING)(lambda r: setattr(r.string, "email", True))


@_shape("string_ignored", FieldType.TYPE_STRING)
def _string_ignored(rules: validate_pb2.FieldRules) -> None:
    rules.ignore = validate_pb2.IGNORE_ALWAYS
    rules.string.min_len = 5


# Message-level CEL over fields i, j (int64), u (uint64), t, t2 (Timestamp), d (Duration), and
# o (a Timestamp in a oneof).
_CEL_SHAPES = {
    "int_product": "this.i * this.j <= 100",
    "int_sum": "this.i + this.j > 0 && this.i - this.j < 50",
    "uint_sum": "this.u + this.u > this.u",
    "timestamp_plus_duration": "this.t + this.d > now",
    "timestamp_minus_duration": "this.t - this.d < now && duration('1h') + this.t > now",
    "timestamp_difference": "this.t2 - this.t <= duration('48h') && this.t2 > this.t",
    "duration_sum": "this.d + this.d < duration('720h') && this.d - this.d == duration('0s')",
    "now_window": "!has(this.t) || (this.t > now && this.t <= now + duration('720h'))",
    "oneof_member": "this.o > now",
}


def _build_pool() -> dict[str, type[Message]]:
    file = descriptor_pb2.FileDescriptorProto(
        name="tests/chassis/validation_shapes.proto",
        package="chassis_test.shapes",
        syntax="proto3",
        dependency=[
            "buf/validate/validate.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/field_mask.proto",
        ],
    )
    for name, (kind, type_name, repeated, set_rules) in _FIELD_SHAPES.items():
        message = file.message_type.add(name=_camel(name))
        field = message.field.add(
            name="v",
            number=1,
            type=kind,  # type: ignore[arg-type,unused-ignore] # an int is a Type value
            label=FieldType.LABEL_REPEATED if repeated else FieldType.LABEL_OPTIONAL,
        )
        if type_name:
            field.type_name = type_name
        set_rules(field.options.Extensions[validate_pb2.field])
    for name, expression in _CEL_SHAPES.items():
        message = file.message_type.add(name=_camel(name))
        message.oneof_decl.add(name="choice")
        for number, (field_name, kind, type_name) in enumerate(
            [
                ("i", FieldType.TYPE_INT64, ""),
                ("j", FieldType.TYPE_INT64, ""),
                ("u", FieldType.TYPE_UINT64, ""),
                ("t", _MSG, _TS),
                ("t2", _MSG, _TS),
                ("d", _MSG, _DUR),
                ("o", _MSG, _TS),
            ],
            start=1,
        ):
            field = message.field.add(name=field_name, number=number, type=kind)  # type: ignore[arg-type,unused-ignore]
            field.label = FieldType.LABEL_OPTIONAL
            if type_name:
                field.type_name = type_name
            if field_name == "o":
                field.oneof_index = 0
        rule = message.options.Extensions[validate_pb2.message].cel.add()
        rule.id, rule.expression, rule.message = f"shape.{name}", expression, f"{name} failed"
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(file.SerializeToString())
    return {
        name: GetMessageClass(pool.FindMessageTypeByName(f"chassis_test.shapes.{_camel(name)}"))
        for name in [*_FIELD_SHAPES, *_CEL_SHAPES]
    }


def _descriptor(name: str) -> Descriptor:
    return cast("Descriptor", CLASSES[name].DESCRIPTOR)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


CLASSES = _build_pool()
_OFFSETS = [-3 * DAY, -DAY - 1, -DAY, -DAY + 1, -1, 0, 1, DAY - 1, DAY, DAY + 1, 2 * DAY]
_OFFSETS += [3 * DAY - 1, 3 * DAY, 3 * DAY + 1, 40 * DAY]
_FAR = [253_402_300_799, 253_402_300_800, -62_135_596_800, -62_135_596_801, 10**12]


def _seconds(around: int, *, far: bool) -> st.SearchStrategy[int]:
    near = [
        st.sampled_from([around + o for o in _OFFSETS]),
        st.integers(around - 50 * DAY, around + 50 * DAY),
    ]
    return st.one_of(*near, st.sampled_from(_FAR)) if far else st.one_of(*near)


def _time(around: int, *, far: bool = True) -> st.SearchStrategy[tuple[int, int]]:
    nanos = st.sampled_from([0, 1, 999, 1000, 999_999_999, -1, -999_999_999])
    return st.tuples(_seconds(around, far=far), nanos)


def _set_time(target: Any, value: tuple[int, int]) -> None:
    target.seconds, target.nanos = value


@st.composite
def _field_message(draw: st.DrawFn, name: str) -> Message:
    message = CLASSES[name]()
    kind, type_name, repeated, _ = _FIELD_SHAPES[name]
    if not draw(st.booleans()) and not repeated:
        return message  # unset
    if type_name in (_TS, _DUR):
        value = draw(_time(NOW if type_name == _TS else 0))
        _set_time(message.v, value)  # type: ignore[attr-defined]
    elif type_name:
        paths = st.sampled_from(["a", "b", "b.c", "b.c.d", "a.x", "c", "ab", ""])
        message.v.paths.extend(draw(st.lists(paths, max_size=3)))  # type: ignore[attr-defined]
    elif kind == FieldType.TYPE_BYTES:
        message.v = draw(st.binary(max_size=6))  # type: ignore[attr-defined]
    elif kind == FieldType.TYPE_INT64 and not repeated:
        ints = st.one_of(st.integers(0, 40), st.integers(-(2**63), 2**63 - 1))
        message.v = draw(ints)  # type: ignore[attr-defined]
    elif kind == FieldType.TYPE_INT64:
        message.v.extend(draw(st.lists(st.integers(-3, 3), max_size=4)))  # type: ignore[attr-defined]
    elif repeated:
        message.v.extend(draw(st.lists(st.sampled_from(["x", "y", ""]), max_size=4)))  # type: ignore[attr-defined]
    else:
        emails = st.sampled_from(["a@example.com", "", "nope", "a@b", "@x.y", "a b@c.d"])
        message.v = draw(st.one_of(emails, st.text(max_size=8)))  # type: ignore[attr-defined]
    return message


@st.composite
def _cel_message(draw: st.DrawFn, name: str) -> Message:
    message = CLASSES[name]()
    ints = st.one_of(st.integers(-10, 60), st.sampled_from([2**62, -(2**62), 2**63 - 1]))
    if draw(st.booleans()):
        message.i = draw(ints)  # type: ignore[attr-defined]
    if draw(st.booleans()):
        message.j = draw(ints)  # type: ignore[attr-defined]
    if draw(st.booleans()):
        message.u = draw(st.one_of(st.integers(0, 9), st.just(2**64 - 1)))  # type: ignore[attr-defined]
    # protovalidate converts the whole message to CEL first and raises on a timestamp out of
    # CEL's range anywhere in it; the plans read only what a rule reads. So values out of
    # range go only where the expression reads them (there both must agree).
    expression = _CEL_SHAPES[name]
    for field, around in (("t", NOW), ("t2", NOW), ("d", 0), ("o", NOW)):
        if draw(st.booleans()):
            far = f"this.{field} " in expression or f"this.{field})" in expression
            _set_time(getattr(message, field), draw(_time(around, far=far)))
    return message


def _outcome(run: Callable[[], Any]) -> Any:
    try:
        return violation_triples(run())
    except Exception as error:  # noqa: BLE001 - what protovalidate raises is part of the answer
        return type(error).__name__


@pytest.fixture(scope="module")
def plans() -> PlanCompiler:
    return PlanCompiler()


@pytest.fixture(scope="module")
def reference() -> protovalidate.Validator:
    return protovalidate.Validator()


@pytest.mark.parametrize("name", sorted(_FIELD_SHAPES))
def test_each_field_rule_shape_reports_what_protovalidate_reports(
    name: str, plans: PlanCompiler, reference: protovalidate.Validator
) -> None:
    assert plans.interpreted_rules(_descriptor(name)) == []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(_field_message(name))
    def check(message: Message) -> None:
        expected = _outcome(lambda: protovalidate_violations(reference, message))
        assert _outcome(lambda: plans.violations(message)) == expected

    check()


@pytest.mark.parametrize("name", sorted(_CEL_SHAPES))
def test_each_cel_expression_shape_reports_what_protovalidate_reports(
    name: str, plans: PlanCompiler, reference: protovalidate.Validator
) -> None:
    assert plans.interpreted_rules(_descriptor(name)) == []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(_cel_message(name))
    def check(message: Message) -> None:
        expected = _outcome(lambda: protovalidate_violations(reference, message))
        assert _outcome(lambda: plans.violations(message)) == expected

    check()


def test_the_interpreter_runs_only_for_values_cel_refuses(plans: PlanCompiler) -> None:
    product = CLASSES["int_product"](i=3, j=4)
    before = plans.interpreted_evaluations
    assert plans.violations(product) == []
    assert plans.interpreted_evaluations == before
    overflow = CLASSES["int_product"](i=2**62, j=4)
    with pytest.raises(Exception, match="overflow"):
        plans.violations(overflow)  # CEL's own error, from the interpreter
    assert plans.interpreted_evaluations == before + 1


def test_a_servers_plans_scan_the_strings_of_a_field_whose_rules_are_ignored() -> None:
    scanning = PlanCompiler(scan_strings=True)
    assert scanning.violations(CLASSES["string_ignored"](v="ab")) == []
    for suspect in ("4242424242424242", "a\x00b"):
        with pytest.raises(SuspectString):
            scanning.violations(CLASSES["string_ignored"](v=suspect))


def test_a_servers_plans_report_an_overflow_as_the_rules_violation() -> None:
    lenient = PlanCompiler(errors_as_violations=True)
    got = lenient.violations(CLASSES["int_product"](i=2**62, j=4))
    assert [(v.field, v.reason) for v in got] == [("", "shape.int_product")]
    assert "overflow" in got[0].description
