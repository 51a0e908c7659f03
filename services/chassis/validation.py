"""Request validation: protovalidate rules from the contracts, plus the card-data guard.

The contracts' rules are protovalidate's (buf.validate). protovalidate-python evaluates every
rule — the standard ones (`string.pattern`, `repeated.max_items`, ...) included — as a CEL
program in a tree-walking interpreter, and converts the whole message to CEL values first: about
7 ms for one journal entry, about a second for a batch of 100. So the validator compiles each
message type's rules once into plain Python checks (a *plan*) that walk the message in
protovalidate's own order and produce the same violations (field path, rule id, message):

- standard rules with a Python equivalent below (`_standard_check`: strings, bytes, numbers,
  enums, repeated/map sizes and `unique`, timestamps and durations against bounds and `now`,
  `email`, field masks) run as Python;
- custom CEL rules (`(buf.validate.message).cel`, `(buf.validate.field).cel`) written in the
  subset `_CelCompiler` understands (field access, `has`, `size`, comparisons, `&&`/`||`/`!`,
  `in`, `+ - *` on ints, timestamps and durations, `now`, `duration('…')`, string
  `+`/`startsWith`/`endsWith`/`contains`/`matches` with a literal pattern, the list macros
  `all`/`exists`/`filter`/`map` and `unique()`) — typed from the descriptors — are translated
  to Python expressions. Timestamps and durations are compared as whole microseconds, as
  celpy does;
- where CEL itself would fail for a value (an int64 overflow, a timestamp past year 9999) a
  compiled check raises `_Fallback` and protovalidate's own CEL program runs that one rule for
  that value, with the activation protovalidate builds; a rule shape outside all of this would
  run there always (none of the contracts' rules does: see STILL_INTERPRETED in the tests).
  Where CEL cannot evaluate a rule at all for a value, protovalidate raises; a server's
  validator reports that rule as a violation of the field instead (INVALID_ARGUMENT, not
  INTERNAL).

A plan is generated Python: one function per message type, its source built once from the
descriptor and compiled with compile()/exec — each field's checks inline (`if len(v) > 256:`),
each custom CEL rule an inline expression, a nested message one direct call of its type's
function (none for a type without rules), the field path built only for a violation. A
server's plans also test every string they pass — NUL, or a card number — and raise
SuspectString at the first suspect one; only then does the exact walk
(`card_data.string_fields`) name the fields. `plan_source` shows the code of a type.
Differential tests (tests/unit/chassis/test_validation_plan.py, test_validation_shapes.py)
check the plans against protovalidate for generated messages of every contract type and of
every rule shape compiled. See docs/adr/0016 and 0020.
"""

from __future__ import annotations

import datetime as dt
import keyword
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import celpy
import lark
import protovalidate
import re2  # type: ignore[import-untyped] # no stubs; the RE2 engine CEL's matches() uses
from buf.validate import validate_pb2
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from google.protobuf.descriptor import Descriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message
from protovalidate.internal import extra_func
from protovalidate.internal import rules as pv_rules
from protovalidate.internal.cel_field_presence import InterpretedRunner

from services.chassis.card_data import (
    SUSPECT_NAMESPACE,
    card_number_fields,
    has_suspect_strings,
    holds_strings,
    string_fields,
    suspect_source,
)
from services.chassis.errors import FieldViolation, InvalidArgument

log = logging.getLogger(__name__)

VALIDATION_FAILED = "VALIDATION_FAILED"
CARD_DATA_REJECTED = "CARD_DATA_REJECTED"


class RequestValidator:
    """Raises InvalidArgument naming every violated field; returns None for a valid request."""

    def __init__(self) -> None:
        self._plans = PlanCompiler(errors_as_violations=True, scan_strings=True)

    def prepare(self, request_types: Iterable[Descriptor]) -> None:
        """Compile the checks of these request types up front (a server calls it at start)."""
        self._plans.prepare(request_types)

    def validate(self, request: Message) -> None:
        """Check `request` against its protovalidate rules and for card numbers."""
        try:  # the plans test every string for NUL and card numbers as they validate
            violations = self._plans.violations(request)
        except SuspectString:  # rare: then name the fields, exactly
            _refuse_strings(request)
            raise
        except Exception:
            if has_suspect_strings(request):  # the card-data refusal comes first, always
                _refuse_strings(request)
            raise
        if violations:
            first = violations[0]
            raise InvalidArgument(
                VALIDATION_FAILED,
                f"invalid {first.field or 'request'}: {first.description}",
                metadata={"field": first.field, "rule": first.reason},
                violations=violations,
            )


def _refuse_strings(request: Message) -> None:
    """Raise for the strings in `request` that hold a card number, else for those with NUL."""
    strings = list(string_fields(request))
    card_fields = card_number_fields(request)
    if card_fields:
        # Never echo the value: the description names the field only.
        raise InvalidArgument(
            CARD_DATA_REJECTED,
            "card numbers must not be sent; use a payment method token from the PSP",
            metadata={"field": card_fields[0]},
            violations=[
                FieldViolation(path, "looks like a card number", CARD_DATA_REJECTED)
                for path in card_fields
            ],
        )
    nul = [path for path, text in strings if "\x00" in text]
    if nul:  # PostgreSQL text cannot hold NUL: refuse it here, not as a storage failure
        raise InvalidArgument(
            VALIDATION_FAILED,
            f"invalid {nul[0]}: must not contain NUL characters",
            metadata={"field": nul[0], "rule": "string.no_nul"},
            violations=[FieldViolation(p, "must not contain NUL", "string.no_nul") for p in nul],
        )
    raise AssertionError("has_suspect_strings and string_fields disagree")  # pragma: no cover


def protovalidate_violations(
    validator: protovalidate.Validator, message: Message
) -> list[FieldViolation]:
    """protovalidate's own answer as FieldViolations (the plans' reference in tests)."""
    return [
        FieldViolation(
            field=_field_path(v.proto), description=v.proto.message, reason=v.proto.rule_id
        )
        for v in validator.collect_violations(message)
    ]


def _field_path(violation: validate_pb2.Violation) -> str:
    """`lines[0].quantity` from a buf.validate.Violation's FieldPath."""
    parts: list[str] = []
    for element in violation.field.elements:
        subscript = element.WhichOneof("subscript")
        name = element.field_name
        if subscript == "index":
            parts.append(f"{name}[{element.index}]")
        elif subscript in {"bool_key", "int_key", "uint_key"}:
            parts.append(f"{name}[{getattr(element, subscript)}]")
        elif subscript == "string_key":
            parts.append(f'{name}["{element.string_key}"]')
        else:
            parts.append(name)
    return ".".join(parts)


# --------------------------------------------------------------------------------------------
# Plans


Out = list[FieldViolation]
Step = Callable[[Message, str, Out], None]
ValueCheck = Callable[[Any, str, Out], None]  # (value, field path, out)


def _join(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return f'"{key}"'
    return str(key)


@dataclass(frozen=True)
class _Code:
    """Lines of a generated plan function's body, over `m` (the message), `prefix` (its
    path) and `out` (the violations)."""

    lines: list[str]


Piece = Step | _Code


def _indent(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]


def _getter(name: str) -> str:
    """`m.<name>`, or a getattr for a field named like a Python keyword."""
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"m.{name}"
    return f"getattr(m, {name!r})"


def _item_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _entry_path(path: str, key: Any) -> str:
    return f"{path}[{_key_text(key)}]"


@dataclass
class _Stats:
    """What a plan runs as Python and what it hands to protovalidate's CEL interpreter."""

    native: int = 0
    interpreted: list[str] = field(default_factory=list)


class SuspectString(Exception):
    """A plan compiled with `scan_strings` met a string with NUL or a card number."""


class PlanCompiler:
    """Compiles and caches one plan per message type; `violations` runs it.

    With `scan_strings` (what a server uses) the plans also test every string of the message
    — nested, repeated, map keys and values, with rules or without — as
    `card_data.suspect_string` does, and raise SuspectString at the first suspect one: one
    walk of the message for both jobs.

    Where CEL cannot evaluate a rule for a value (an int64 overflow in `a * b`, a timestamp
    past year 9999), protovalidate raises. With `errors_as_violations` (what a server uses)
    that rule is reported as a violation of its field instead — the value is out of the
    range the contract can check, a client error — and the other rules still run; without
    it (the differential tests' reference mode) CEL's error is raised, as protovalidate does.
    """

    def __init__(self, *, errors_as_violations: bool = False, scan_strings: bool = False) -> None:
        self._errors_as_violations = errors_as_violations
        self._scan_strings = scan_strings
        self._env = celpy.Environment(runner_class=InterpretedRunner)
        self._funcs = extra_func.make_extra_funcs()
        self._plans: dict[str, list[Piece]] = {}
        self._stats: dict[str, _Stats] = {}
        self._programs: dict[str, celpy.Runner] = {}  # interpreted rules, compiled on first use
        self._reference: protovalidate.Validator | None = None  # for types the plans cannot do
        self.interpreted_evaluations = 0  # CEL programs run by the interpreter (a counter)
        # The generated plan functions: one namespace (globals) for all of them, so a plan
        # calls a nested type's plan by name — also a recursive one, defined later.
        self._namespace: dict[str, Any] = {
            "__builtins__": __builtins__,
            "_FV": FieldViolation,
            "_J": _join,
            "_I": _item_path,
            "_E": _entry_path,
            "_S": SuspectString,
            "_scan": has_suspect_strings,
            **SUSPECT_NAMESPACE,
        }
        self._names: dict[str, str] = {}  # message type → its plan function's name
        self._compiling: set[str] = set()
        self._functions: dict[str, Step] = {}
        self._bound: dict[int, str] = {}  # id(constant) → its name in the namespace

    def prepare(self, descriptors: Iterable[Descriptor]) -> None:
        """Compile the plans of these message types (and what they nest) now, not on first use."""
        for desc in descriptors:
            self.interpreted_rules(desc)

    def violations(self, message: Message) -> list[FieldViolation]:
        """The violations protovalidate would report for `message`, in its order."""
        out: Out = []
        desc = cast("Descriptor", message.DESCRIPTOR)  # the upb and pure descriptors agree
        function = self._functions.get(desc.full_name)
        if function is None:
            self._plan(desc)
            function = self._functions[desc.full_name]
        function(message, "", out)
        return out

    def interpreted_rules(self, descriptor: Descriptor) -> list[str]:
        """Rule ids reachable from `descriptor` that still run in the CEL interpreter."""
        seen: set[str] = set()
        result: list[str] = []
        pending: list[Descriptor | None] = [descriptor]
        while pending:
            desc = pending.pop()
            if desc is None or desc.full_name in seen:
                continue
            seen.add(desc.full_name)
            self._plan(desc)
            result.extend(self._stats[desc.full_name].interpreted)
            for f in desc.fields:
                target = f.message_type
                if target is not None and target.GetOptions().map_entry:
                    target = target.fields_by_name["value"].message_type
                pending.append(target)
        return result

    def plan_source(self, descriptor: Descriptor) -> str:
        """The generated Python of `descriptor`'s plan (for tests and for reading)."""
        self._plan(descriptor)
        return cast("str", self._namespace[f"{self._names[descriptor.full_name]}_source"])

    def _plan(self, desc: Descriptor) -> list[Piece]:
        """The pieces of `desc`'s plan, compiled (with what it nests) into one Python function
        the first time: straight-line code per field, a call per nested message."""
        full_name = desc.full_name
        plan = self._plans.get(full_name)
        if plan is None:
            self._stats[full_name] = _Stats()
            plan = self._plans[full_name] = []
            self._names[full_name] = f"plan_{len(self._names)}_{desc.name}"
            self._compiling.add(full_name)  # a recursive type calls its plan by name
            try:
                plan.extend(self._new_plan(desc))
            except Exception:  # a rule shape the compiler does not know: protovalidate it is
                log.warning("validating %s with protovalidate itself", full_name, exc_info=True)
                self._stats[full_name].interpreted.append(f"<all rules of {full_name}>")
                plan[:] = [self._reference_step()]
                if self._scan_strings and holds_strings(desc):
                    plan.insert(0, _Code(["if _scan(m):", "    raise _S"]))
            finally:
                self._compiling.discard(full_name)
            self._functions[full_name] = self._generate(full_name, plan)
        return plan

    def _generate(self, full_name: str, plan: list[Piece]) -> Step:
        """One function `(m, prefix, out)` running every piece of `plan` in order."""
        name = self._names[full_name]
        body: list[str] = []
        for piece in plan:
            if isinstance(piece, _Code):
                body.extend(piece.lines)
            else:
                body.append(f"{self._bind(piece)}(m, prefix, out)")
        source = f"def {name}(m, prefix, out):\n" + "".join(
            f"    {line}\n" for line in body or ["pass"]
        )
        exec(compile(source, f"<validation plan of {full_name}>", "exec"), self._namespace)  # noqa: S102 - source generated from descriptors, no input
        self._namespace[f"{name}_source"] = source
        return cast("Step", self._namespace[name])

    def _bind(self, value: Any) -> str:
        """A name for `value` in the plans' namespace."""
        name = self._bound.get(id(value))
        if name is None:
            name = self._bound[id(value)] = f"_c{len(self._bound)}"
            self._namespace[name] = value
        return name

    def _reference_step(self) -> Step:
        """The whole message (and what it nests) checked by protovalidate, paths prefixed."""
        if self._reference is None:
            self._reference = protovalidate.Validator()  # type: ignore[no-untyped-call]

        def step(message: Message, prefix: str, out: Out) -> None:
            assert self._reference is not None
            self.interpreted_evaluations += 1
            try:
                found_violations = protovalidate_violations(self._reference, message)
            except CELEvalError as error:
                if not self._errors_as_violations:
                    raise
                out.append(FieldViolation(prefix, _evaluation_failure(error), "cel.evaluation"))
                return
            for found in found_violations:
                path = _join(prefix, found.field) if found.field else prefix
                out.append(FieldViolation(path, found.description, found.reason))

        return step

    # -- message level -----------------------------------------------------------------------

    def _new_plan(self, desc: Descriptor) -> list[Piece]:  # noqa: C901 - protovalidate's order
        stats = self._stats[desc.full_name]
        steps: list[Piece] = []
        oneof_fields: set[str] = set()
        options = desc.GetOptions()
        if options.HasExtension(validate_pb2.message):
            message_rules: validate_pb2.MessageRules = options.Extensions[validate_pb2.message]
            for rule in message_rules.oneof:
                oneof_fields.update(rule.fields)
            cel_rules: list[validate_pb2.Rule] = [
                validate_pb2.Rule(id=text, expression=text) for text in message_rules.cel_expression
            ]
            cel_rules.extend(message_rules.cel)
            steps.extend(self._message_cel(desc, rule, stats) for rule in cel_rules)
            steps.extend(_message_oneof(desc, rule) for rule in message_rules.oneof)
        steps.extend(
            _required_oneof(oneof)
            for oneof in desc.oneofs
            if validate_pb2.oneof in oneof.GetOptions().Extensions
            and oneof.GetOptions().Extensions[validate_pb2.oneof].required
        )
        for fd in desc.fields:
            if validate_pb2.field in fd.GetOptions().Extensions:
                rules: validate_pb2.FieldRules = fd.GetOptions().Extensions[validate_pb2.field]
                if not rules.HasField("ignore") and fd.name in oneof_fields:
                    override = validate_pb2.FieldRules()
                    override.CopyFrom(rules)
                    override.ignore = validate_pb2.IGNORE_IF_ZERO_VALUE
                    rules = override
                if rules.ignore == validate_pb2.IGNORE_ALWAYS:
                    steps.extend(self._scan_only(fd))
                    continue
                steps.append(self._field_code(fd, rules, stats, self._scan_lines(fd)))
                if rules.repeated.items.ignore == validate_pb2.IGNORE_ALWAYS:
                    steps.extend(self._scan_only(fd, strings=False))  # scanned above
                    continue
            else:
                scan = self._scan_lines(fd)
                if scan:
                    steps.append(_Code([f"v = {_getter(fd.name)}", *scan]))
            nested = self._nested_code(fd)
            if nested is not None:
                steps.append(nested)
        if self._scan_strings and desc.extension_ranges:  # extensions: the exact scanner
            steps.append(_Code(["if _scan(m):", "    raise _S"]))
        return steps

    def _scan_lines(self, fd: FieldDescriptor) -> list[str]:
        """With `scan_strings`: the test of the strings a field holds itself (over `v`, its
        value) — values, repeated items, map keys and values; none for messages."""
        if not self._scan_strings:
            return []
        entry = fd.message_type
        if entry is not None and entry.GetOptions().map_entry:
            tests, read = [], []
            if entry.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING:
                tests.append(suspect_source("k"))
            if entry.fields_by_name["value"].type == FieldDescriptor.TYPE_STRING:
                tests.append(suspect_source("x"))
                read = ["    x = v[k]"]
            if not tests:
                return []
            return ["for k in v:", *read, f"    if {' or '.join(tests)}:", "        raise _S"]
        if fd.type != FieldDescriptor.TYPE_STRING:
            return []
        if fd.is_repeated:
            return ["for x in v:", f"    if {suspect_source('x', fd)}:", "        raise _S"]
        return [f"if {suspect_source('v', fd)}:", "    raise _S"]

    def _scan_only(self, fd: FieldDescriptor, *, strings: bool = True) -> list[_Code]:
        """With `scan_strings`, for a field whose rules are ignored: its strings, and those of
        the messages it holds (by the card-data scanner: no plan runs for them)."""
        if not self._scan_strings:
            return []
        get = _getter(fd.name)
        code: list[_Code] = []
        scan = self._scan_lines(fd) if strings else []
        if scan:
            code.append(_Code([f"v = {get}", *scan]))
        target = fd.message_type
        if target is not None and target.GetOptions().map_entry:
            target = target.fields_by_name["value"].message_type
            if target is not None and holds_strings(target):
                code.append(
                    _Code([f"v = {get}", "for k in v:", "    if _scan(v[k]):", "        raise _S"])
                )
        elif target is not None and holds_strings(target):
            if fd.is_repeated:
                code.append(_Code([f"for x in {get}:", "    if _scan(x):", "        raise _S"]))
            else:
                code.append(
                    _Code([f"if m.HasField({fd.name!r}) and _scan({get}):", "    raise _S"])
                )
        return code

    def _nested_code(self, fd: FieldDescriptor) -> _Code | None:
        """Validation of the messages a field holds (SubMsgRule, RepeatedMsgRule, MapValMsgRule):
        a call of their type's plan per message, nothing when that plan checks nothing."""
        target = fd.message_type
        if target is None:
            return None
        if target.GetOptions().map_entry:
            target = target.fields_by_name["value"].message_type
            if target is None:
                return None
        self._plan(target)
        if not self._plans[target.full_name] and target.full_name not in self._compiling:
            return None  # no rule anywhere below: skip the messages altogether
        plan = self._names[target.full_name]
        get, name = _getter(fd.name), repr(fd.name)
        path = f"(prefix + {'.' + fd.name!r} if prefix else {name})"  # _join, inline
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            return _Code(
                [
                    f"v = {get}",
                    "if v:",
                    f"    b = {path}",
                    "    for k in v:",  # upb maps: faster than items()
                    f"        {plan}(v[k], _E(b, k), out)",
                ]
            )
        if fd.is_repeated:
            return _Code(
                [
                    f"v = {get}",
                    "if v:",
                    f"    b = {path}",
                    "    for i, x in enumerate(v):",
                    f"        {plan}(x, f'{{b}}[{{i}}]', out)",
                ]
            )
        return _Code([f"if m.HasField({name}):", f"    {plan}({get}, {path}, out)"])

    def _message_cel(self, desc: Descriptor, rule: validate_pb2.Rule, stats: _Stats) -> Piece:
        """A message rule in CEL: inline Python when compiled (the interpreter for a value it
        falls back on), else the interpreter always."""
        rule_id = rule.id
        failure = rule.message or f'"{rule.expression}" returned false'
        compiled = _CelCompiler(self._env, self._bind).source_bool(
            rule.expression, _MsgType(desc), "m"
        )

        def interpreted(message: Message, prefix: str, out: Out) -> None:
            try:
                this = pv_rules._msg_to_cel(message)  # noqa: SLF001 - protovalidate's own activation
            except (OverflowError, ValueError) as error:  # a value CEL cannot hold
                self._unevaluable(error, rule, prefix, out)
                return
            self._run_cel(rule, {"this": this}, prefix, out)

        if compiled is None:
            stats.interpreted.append(rule_id)
            return interpreted
        stats.native += 1
        return _Code(
            [
                "try:",
                f"    if not {compiled}:",
                f"        out.append(_FV(prefix, {failure!r}, {rule_id!r}))",
                f"except {self._bind(_Fallback)}:",
                f"    {self._bind(interpreted)}(m, prefix, out)",
            ]
        )

    # -- field level -------------------------------------------------------------------------

    def _field_code(  # noqa: C901 - mirrors FieldRules/EnumRules/RepeatedRules/MapRules
        self, fd: FieldDescriptor, rules: validate_pb2.FieldRules, stats: _Stats, scan: list[str]
    ) -> _Code:
        """Straight-line Python for one field's rules, after `scan` (its strings' test); the
        field's path is built only for a violation (or for a check that needs it: a fallback
        to the interpreter)."""
        name = repr(fd.name)
        path = f"_J(prefix, {name})"
        ignore_empty = rules.ignore == validate_pb2.IGNORE_IF_ZERO_VALUE or fd.has_presence
        checks = self._check_lines("v", path, self._value_checks(fd, rules, stats, item=False))
        if rules.WhichOneof("type") == "enum" and rules.enum.defined_only:
            enum_type = fd.enum_type
            assert enum_type is not None
            defined = self._bind(frozenset(enum_type.values_by_number))
            checks += [
                f"if v not in {defined}:",
                (
                    f"    out.append(_FV({path}, 'value must be one of the defined enum values',"
                    " 'enum.defined_only'))"
                ),
            ]
        is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
        items = rules.repeated.items
        if is_map:
            checks += self._map_entry_lines(fd, rules, stats, path)
        elif (
            fd.is_repeated
            and rules.repeated.HasField("items")
            and items.ignore != validate_pb2.IGNORE_ALWAYS
        ):
            each = self._check_lines(
                "x", f"_I({path}, i)", self._value_checks(fd, items, stats, item=True)
            )
            if each:
                skip = ["if not x:", "    continue"]
                skip_empty = items.ignore == validate_pb2.IGNORE_IF_ZERO_VALUE
                checks += ["for i, x in enumerate(v):", *_indent([*(skip * skip_empty), *each])]
        if fd.has_presence:
            empty = f"not m.HasField({name})"
        elif fd.is_repeated or not fd.default_value:
            empty = "not v"
        else:
            empty = f"v == {self._bind(fd.default_value)}"
        read = [] if fd.has_presence and not checks and not scan else [f"v = {_getter(fd.name)}"]
        lines = [*read, *scan]
        if rules.required:
            lines += [
                f"if {empty}:",
                f"    out.append(_FV({path}, 'value is required', 'required'))",
            ]
            if checks:
                lines += ["else:", *_indent(checks)]
        elif not checks:
            return _Code(lines if scan else [])
        elif ignore_empty:
            lines += [f"if not ({empty}):", *_indent(checks)]
        else:
            lines += checks
        return _Code(lines)

    def _check_lines(self, value: str, path: str, checks: list[ValueCheck]) -> list[str]:
        """The checks of one value, in order: a simple one inline, any other called."""
        lines: list[str] = []
        for check in checks:
            if check is _no_check:
                continue
            if isinstance(check, _SimpleCheck):
                if check.source is not None:
                    names = [self._bind(const) for const in check.consts]
                    fails = check.source.format(*names, v=value)
                else:
                    fails = f"{self._bind(check.fails)}({value})"
                violation = check.violation
                lines += [
                    f"if {fails}:",
                    (
                        f"    out.append(_FV({path}, {violation.description!r},"
                        f" {violation.rule_id!r}))"
                    ),
                ]
            else:
                lines.append(f"{self._bind(check)}({value}, {path}, out)")
        return lines

    def _map_entry_lines(
        self, fd: FieldDescriptor, rules: validate_pb2.FieldRules, stats: _Stats, path: str
    ) -> list[str]:
        """Per entry: the value's checks, then the key's (protovalidate reports an entry's
        value before its key)."""
        entry = fd.message_type
        assert entry is not None
        key_field = entry.fields_by_name["key"]
        value_field = entry.fields_by_name["value"]
        each: list[str] = []
        read_value: list[str] = []
        entry_path = f"_E({path}, k)"
        if rules.map.HasField("values") and rules.map.values.ignore != validate_pb2.IGNORE_ALWAYS:
            checks = self._value_checks(value_field, rules.map.values, stats, item=True)
            lines = self._check_lines("x", entry_path, checks)
            if lines and rules.map.values.ignore == validate_pb2.IGNORE_IF_ZERO_VALUE:
                lines = ["if x:", *_indent(lines)]
            each += lines
            read_value = ["x = v[k]"] if lines else []
        if rules.map.HasField("keys") and rules.map.keys.ignore != validate_pb2.IGNORE_ALWAYS:
            checks = self._value_checks(key_field, rules.map.keys, stats, item=True)
            lines = self._check_lines("k", entry_path, checks)
            if lines and rules.map.keys.ignore == validate_pb2.IGNORE_IF_ZERO_VALUE:
                lines = ["if k:", *_indent(lines)]
            each += lines
        if not each:
            return []
        return ["for k in v:", *_indent([*read_value, *each])]  # upb maps: faster than items()

    def _value_checks(
        self, fd: FieldDescriptor, rules: validate_pb2.FieldRules, stats: _Stats, *, item: bool
    ) -> list[ValueCheck]:
        """The standard rules, then `cel_expression`, then `cel`, as protovalidate orders them."""
        checks: list[ValueCheck] = []
        type_case = rules.WhichOneof("type")
        typed_rules: Message | None = None
        if type_case is not None:
            typed_rules = getattr(rules, type_case)
            for rule_field, _ in typed_rules.ListFields():
                if validate_pb2.predefined not in rule_field.GetOptions().Extensions:
                    continue
                predefined = rule_field.GetOptions().Extensions[validate_pb2.predefined]
                for rule in predefined.cel:
                    native = _standard_check(rule.id, typed_rules, fd, self._format)
                    if native is not None:
                        stats.native += 1
                        if rule.id.startswith(("timestamp.", "duration.")):  # may fall back
                            native = _or_interpreted(
                                native,
                                self._interpreted_value_rule(
                                    fd, rule, item=item, rules=typed_rules, rule_field=rule_field
                                ),
                            )
                        checks.append(native)
                    else:
                        stats.interpreted.append(rule.id)
                        checks.append(
                            self._interpreted_value_rule(
                                fd, rule, item=item, rules=typed_rules, rule_field=rule_field
                            )
                        )
        custom = [validate_pb2.Rule(id=text, expression=text) for text in rules.cel_expression]
        custom.extend(rules.cel)
        this_type = _value_type(fd, item=item)
        for rule in custom:
            source = _CelCompiler(self._env, self._bind).source_bool(rule.expression, this_type)
            interpreted = self._interpreted_value_rule(fd, rule, item=item, rules=typed_rules)
            if source is not None:
                stats.native += 1
                compiled = eval(  # noqa: S307 - source generated from the contract's rule
                    compile(f"lambda this: {source}", f"<rule {rule.id}>", "eval"),
                    self._namespace,
                )
                checks.append(
                    _custom_value_check(
                        compiled,
                        rule,
                        interpreted,
                        convert=_CONVERSIONS.get(this_type),
                    )
                )
            else:
                stats.interpreted.append(rule.id)
                checks.append(interpreted)
        return checks

    def _interpreted_value_rule(
        self,
        fd: FieldDescriptor,
        rule: validate_pb2.Rule,
        *,
        item: bool,
        rules: Message | None = None,
        rule_field: FieldDescriptor | None = None,
    ) -> ValueCheck:
        base: dict[str, Any] = {}
        if rules is not None:
            base["rules"] = pv_rules._msg_to_cel(rules)  # noqa: SLF001 - protovalidate's own activation
            if rule_field is not None:
                base["rule"] = pv_rules.field_to_cel(rules, rule_field)
        to_cel = pv_rules._scalar_field_value_to_cel if item else pv_rules._field_value_to_cel  # noqa: SLF001

        def check(value: Any, path: str, out: Out) -> None:
            activation = dict(base)
            try:
                activation["this"] = to_cel(value, fd)
            except (OverflowError, ValueError) as error:  # a value CEL cannot hold
                self._unevaluable(error, rule, path, out)
                return
            self._run_cel(rule, activation, path, out)

        return check

    def _format(self, expression: str, rules: Message) -> str:
        """A rule message's text as protovalidate's CEL formats it (`'%s'.format([rules.gt])`
        for a Timestamp, Duration or list), evaluated once when the plan is compiled."""
        rules_cel = pv_rules._msg_to_cel(rules)  # noqa: SLF001 - protovalidate's own activation
        return str(self._program(expression).evaluate({"rules": rules_cel}))

    def _program(self, expression: str) -> celpy.Runner:
        program = self._programs.get(expression)
        if program is None:
            tree = self._env.compile(expression)
            program = self._programs[expression] = self._env.program(tree, functions=self._funcs)
        return program

    def _run_cel(
        self,
        rule: validate_pb2.Rule,
        activation: dict[str, Any],
        path: str,
        out: Out,
    ) -> None:
        self.interpreted_evaluations += 1
        program = self._program(rule.expression)
        activation.setdefault("rules", None)
        activation["now"] = celtypes.TimestampType(dt.datetime.now(tz=dt.UTC))
        result: Any
        try:
            result = program.evaluate(activation)
        except CELEvalError as error:
            result = error
        if isinstance(result, celtypes.BoolType):
            if not result:
                message = rule.message or f'"{rule.expression}" returned false'
                out.append(FieldViolation(path, message, rule.id))
        elif isinstance(result, celtypes.StringType):
            if result:
                out.append(FieldViolation(path, str(result), rule.id))
        elif isinstance(result, Exception):
            self._unevaluable(result, rule, path, out)

    def _unevaluable(self, error: Exception, rule: validate_pb2.Rule, path: str, out: Out) -> None:
        """CEL cannot evaluate `rule` for this value: raise (as protovalidate does) or, for a
        server, report the rule as violated at `path`."""
        if not self._errors_as_violations:
            raise error
        out.append(FieldViolation(path, _evaluation_failure(error), rule.id))


def _evaluation_failure(error: Exception) -> str:
    """A violation's text for a rule CEL could not evaluate: `cannot be checked (overflow)`."""
    args = error.args
    detail = args[2] if len(args) > 2 else args[:1]  # noqa: PLR2004 - CELEvalError's (text, type, args)
    if isinstance(detail, tuple) and detail:
        reason = ", ".join(str(part) for part in detail)
    else:
        reason = str(args[0]) if args else type(error).__name__
    return f"value cannot be checked by this rule ({reason}): it is out of the supported range"


def _or_interpreted(native: ValueCheck, interpreted: ValueCheck) -> ValueCheck:
    def check(value: Any, path: str, out: Out) -> None:
        try:
            native(value, path, out)
        except _Fallback:
            interpreted(value, path, out)

    return check


def _custom_value_check(
    compiled: Callable[[Any], bool],
    rule: validate_pb2.Rule,
    interpreted: ValueCheck,
    *,
    convert: Callable[[Any], Any] | None,
) -> ValueCheck:
    rule_id = rule.id
    failure = rule.message or f'"{rule.expression}" returned false'

    def check(value: Any, path: str, out: Out) -> None:
        try:
            passed = compiled(value if convert is None else convert(value))
        except _Fallback:
            interpreted(value, path, out)
            return
        if not passed:
            out.append(FieldViolation(path, failure, rule_id))

    return check


def _message_oneof(desc: Descriptor, rule: validate_pb2.MessageOneofRule) -> Step:
    fields = [desc.fields_by_name[name] for name in rule.fields]
    names = ", ".join(f.name for f in fields)
    required = rule.required

    def step(message: Message, prefix: str, out: Out) -> None:
        count = sum(1 for f in fields if not pv_rules._is_empty_field(message, f))  # noqa: SLF001
        if count > 1:
            out.append(FieldViolation(prefix, f"only one of {names} can be set", "message.oneof"))
        if required and count == 0:
            out.append(FieldViolation(prefix, f"one of {names} must be set", "message.oneof"))

    return step


def _required_oneof(oneof: OneofDescriptor) -> Step:
    name = oneof.name

    def step(message: Message, prefix: str, out: Out) -> None:
        if not message.WhichOneof(name):
            out.append(
                FieldViolation(
                    _join(prefix, name), "exactly one field is required in oneof", "required"
                )
            )

    return step


# --------------------------------------------------------------------------------------------
# Standard rules in Python. Each mirrors the CEL of its buf.validate predefined rule (quoted).

_INT_KINDS: Final = ("int32", "int64", "sint32", "sint64", "sfixed32", "sfixed64")
_UINT_KINDS: Final = ("uint32", "uint64", "fixed32", "fixed64")
_UUID_PATTERN: Final = (
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


class _Violation:
    """One rule's violation, reported at a path."""

    __slots__ = ("description", "rule_id")

    def __init__(self, description: str, rule_id: str) -> None:
        self.description, self.rule_id = description, rule_id

    def __call__(self, path: str, out: Out) -> None:
        out.append(FieldViolation(path, self.description, self.rule_id))


def _violation(message: str, rule_id: str) -> _Violation:
    return _Violation(message, rule_id)


class _SimpleCheck:
    """A check that fails on the value alone: a plan tests it inline and builds the field's
    path only for a violation.

    `source` is the failing condition as a Python expression for the generated plan: `{v}`
    stands for the value, `{0}`, `{1}`... for `consts` (bound by name in the plan's
    namespace); without it the plan calls `fails`."""

    __slots__ = ("consts", "fails", "source", "violation")

    def __init__(
        self,
        fails: Callable[[Any], bool],
        violation: _Violation,
        source: str | None = None,
        consts: tuple[Any, ...] = (),
    ) -> None:
        self.fails, self.violation = fails, violation
        self.source, self.consts = source, consts

    def __call__(self, value: Any, path: str, out: Out) -> None:
        if self.fails(value):
            self.violation(path, out)


Formatter = Callable[[str, Message], str]


def _standard_check(  # noqa: PLR0911
    rule_id: str, rules: Any, fd: FieldDescriptor, fmt: Formatter
) -> ValueCheck | None:
    """A Python check for one predefined rule, or None to leave it to the interpreter."""
    kind, _, name = rule_id.partition(".")
    if kind == "string":
        return _string_check(name, rule_id, rules)
    if kind == "bytes":
        return _bytes_check(name, rule_id, rules)
    if kind == "repeated" and name == "unique":
        return _unique_check(rule_id, rules, fd)
    if kind == "field_mask" and name == "in":
        return _field_mask_in(rule_id, rules, fmt)
    if kind in ("timestamp", "duration"):
        return _time_check(kind, name, rule_id, rules, fmt)
    if kind in ("repeated", "map") and name in ("min_items", "max_items", "min_pairs", "max_pairs"):
        # uint(this.size()) < rules.min_items ? 'must contain at least %d item(s)' ...
        limit = getattr(rules, name)
        too_few = name.startswith("min")
        text = {
            "min_items": f"must contain at least {limit} item(s)",
            "max_items": f"must contain no more than {limit} item(s)",
            "min_pairs": f"map must be at least {limit} entries",
            "max_pairs": f"map must be at most {limit} entries",
        }[name]
        add = _violation(text, rule_id)

        return _SimpleCheck(
            lambda value: (len(value) < limit) if too_few else (len(value) > limit),
            add,
            f"len({{v}}) {'<' if too_few else '>'} {int(limit)}",
        )
    if kind in _INT_KINDS or kind in _UINT_KINDS or kind == "enum":
        return _number_check(name, rule_id, rules)
    return None


def _string_check(name: str, rule_id: str, rules: Any) -> ValueCheck | None:  # noqa: PLR0911
    if name in ("len", "min_len", "max_len"):
        # uint(this.size()) > rules.max_len ? 'must be at most %s characters'.format(...) : ''
        limit = getattr(rules, name)
        text = {
            "len": f"must be {limit} characters",
            "min_len": f"must be at least {limit} characters",
            "max_len": f"must be at most {limit} characters",
        }[name]
        compare: Callable[[int], bool] = {
            "len": lambda n: n != limit,
            "min_len": lambda n: n < limit,
            "max_len": lambda n: n > limit,
        }[name]
        add = _violation(text, rule_id)
        operator = {"len": "!=", "min_len": "<", "max_len": ">"}[name]

        return _SimpleCheck(
            lambda value: compare(len(value)), add, f"len({{v}}) {operator} {int(limit)}"
        )
    if name == "pattern":
        # !this.matches(rules.pattern) ? 'does not match regex pattern `%s`'.format(...) : ''
        search = _searcher(rules.pattern)
        add = _violation(f"does not match regex pattern `{rules.pattern}`", rule_id)

        return _SimpleCheck(lambda value: search(value) is None, add, "{0}({v}) is None", (search,))
    if name in ("email", "email_empty"):
        # email:       !rules.email || this == '' || this.isEmail()
        # email_empty: !rules.email || this != ''
        if not rules.email:
            return _no_check
        rule = _predefined_rule(validate_pb2.StringRules, "email", rule_id)
        add = _violation(rule.message or f'"{rule.expression}" returned false', rule_id)
        if name == "email_empty":
            return _SimpleCheck(lambda value: value == "", add, '{v} == ""')
        is_email = extra_func._email_regex.fullmatch  # noqa: SLF001 - protovalidate's isEmail

        return _SimpleCheck(
            lambda value: value != "" and is_email(value) is None,
            add,
            '{v} != "" and {0}({v}) is None',
            (is_email,),
        )
    if name in ("uuid", "uuid_empty"):
        # uuid:       !rules.uuid || this == '' || this.matches('^[0-9a-fA-F]{8}-...$')
        # uuid_empty: !rules.uuid || this != ''
        if not rules.uuid:
            return _no_check
        rule = _predefined_rule(validate_pb2.StringRules, "uuid", rule_id)
        add = _violation(rule.message or f'"{rule.expression}" returned false', rule_id)
        uuid_search = _searcher(_UUID_PATTERN)
        if name == "uuid_empty":
            return _SimpleCheck(lambda value: value == "", add, '{v} == ""')

        return _SimpleCheck(
            lambda value: value != "" and uuid_search(value) is None,
            add,
            '{v} != "" and {0}({v}) is None',
            (uuid_search,),
        )
    return None


def _number_check(name: str, rule_id: str, rules: Any) -> ValueCheck | None:
    """int/uint/enum `gt`/`gte`/`lt`/`lte` (one-sided and ranges), `in`, `not_in`, `const`."""
    if name in ("in", "not_in"):
        # !(this in getField(rules, 'in')) ? 'must be in list %s'.format([...]) : ''
        members = list(getattr(rules, name))
        listed = "[" + ", ".join(str(m) for m in members) + "]"
        inside = name == "in"
        add = _violation(f"must {'' if inside else 'not '}be in list {listed}", rule_id)
        member_set = frozenset(members)

        return _SimpleCheck(
            lambda value: (value in member_set) != inside,
            add,
            "{v} not in {0}" if inside else "{v} in {0}",
            (member_set,),
        )
    if name == "const":
        const = rules.const
        add = _violation(f"must equal {const}", rule_id)

        return _SimpleCheck(lambda value: value != const, add, "{v} != {0}", (const,))
    bounds = _bounds_check(name, rules)
    if bounds is None:
        return None
    if bounds is _PASSES:
        return _no_check
    test, text = bounds
    add = _violation(text, rule_id)
    lo, hi = _bound_values(name, rules)

    return _SimpleCheck(test, add, _bounds_source(name, lo, hi))


def _bound_values(name: str, rules: Any) -> tuple[int | None, int | None]:
    """The lower and upper bound a range rule id names (None for a side it does not name)."""
    lower = "gt" if name == "gt" or name.startswith("gt_") else "gte"
    if name in ("lt", "lte"):
        return None, int(getattr(rules, name))
    if name in ("gt", "gte"):
        return int(getattr(rules, name)), None
    upper = name[len(lower) + 1 :].partition("_")[0]
    return int(getattr(rules, lower)), int(getattr(rules, upper))


def _bounds_source(name: str, lo: int | None, hi: int | None) -> str:
    """The failing condition of an int/uint/enum range rule (`_bounds_check`'s test) as a
    Python expression over `{v}`; `name` is one `_bounds_check` did not answer _PASSES for."""
    lower = "gt" if name == "gt" or name.startswith("gt_") else "gte"
    if name in ("lt", "lte"):
        return f"{{v}} {'>=' if name == 'lt' else '>'} {hi}"
    if name in ("gt", "gte"):
        return f"{{v}} {'<=' if name == 'gt' else '<'} {lo}"
    upper, _, exclusive = name[len(lower) + 1 :].partition("_")
    below = f"{{v}} {'<=' if lower == 'gt' else '<'} {lo}"
    above = f"{{v}} {'>=' if upper == 'lt' else '>'} {hi}"
    return f"({above} and {below})" if exclusive else f"({above} or {below})"


def _never(_: int) -> bool:
    return False


def _no_check(value: Any, path: str, out: Out) -> None:
    """A rule that cannot fail (e.g. `uuid: false`)."""


_PASSES: Final = (_never, "")


def _bounds_check(  # noqa: C901, PLR0911
    name: str,
    r: Any,
    value: Callable[[Any], int] | None = None,
    show: Callable[[str], str] | None = None,
) -> tuple[Callable[[int], bool], str] | None:
    """The failing condition and message of one range rule id (suffix after the kind).

    `value` turns a bound into what the checked values are compared as (microseconds for
    timestamps and durations); `show` renders the bound named so in the message."""
    has = r.HasField

    def bound(field: str) -> int:
        raw = getattr(r, field)
        return raw if value is None else value(raw)

    def text(field: str) -> str:
        return str(getattr(r, field)) if show is None else show(field)

    if name in ("lt", "lte"):
        if has("gte") or has("gt"):
            return _PASSES
        hi = bound(name)
        if name == "lt":
            return (lambda v: v >= hi, f"must be less than {text('lt')}")
        return (lambda v: v > hi, f"must be less than or equal to {text('lte')}")
    lower_name = "gt" if name.startswith("gt_") or name == "gt" else "gte"
    if name in ("gt", "gte"):
        if has("lt") or has("lte"):
            return _PASSES
        lo = bound(name)
        if name == "gt":
            return (lambda v: v <= lo, f"must be greater than {text('gt')}")
        return (lambda v: v < lo, f"must be greater than or equal to {text('gte')}")
    rest = name[len(lower_name) + 1 :]
    upper_name, _, exclusive = rest.partition("_")
    if upper_name not in ("lt", "lte") or exclusive not in ("", "exclusive"):
        return None
    if not has(upper_name):
        return _PASSES
    lo = bound(lower_name)
    hi = bound(upper_name)
    strict_lo = lower_name == "gt"
    strict_hi = upper_name == "lt"
    lo_text, hi_text = text(lower_name), text(upper_name)
    lower_text = f"greater than {lo_text}" if strict_lo else f"greater than or equal to {lo_text}"
    upper_text = f"less than {hi_text}" if strict_hi else f"less than or equal to {hi_text}"

    def below(v: int) -> bool:  # fails the lower bound
        return bool(v <= lo if strict_lo else v < lo)

    def above(v: int) -> bool:  # fails the upper bound
        return bool(v >= hi if strict_hi else v > hi)

    if not exclusive:
        # has(rules.lt) && rules.lt >= rules.gt && (this >= rules.lt || this <= rules.gt)
        if not hi >= lo:
            return _PASSES
        return (lambda v: above(v) or below(v), f"must be {lower_text} and {upper_text}")
    # has(rules.lt) && rules.lt < rules.gt && (rules.lt <= this && this <= rules.gt): the
    # values between the bounds, both included, fail both bounds.
    if not hi < lo:
        return _PASSES
    return (lambda v: above(v) and below(v), f"must be {lower_text} or {upper_text}")


def _time_check(  # noqa: C901
    kind: str, name: str, rule_id: str, rules: Any, fmt: Formatter
) -> ValueCheck | None:
    """timestamp/duration rules over microseconds, as celpy compares them; a value CEL cannot
    represent raises _Fallback (the caller then asks the interpreter)."""
    micros = _timestamp_micros if kind == "timestamp" else _micros
    if kind == "timestamp" and name in ("gt_now", "lt_now"):
        # (rules.gt_now && this < now) ? 'must be greater than now' : ''
        if not getattr(rules, name):
            return _no_check
        later = name == "gt_now"
        add = _violation(f"must be {'greater' if later else 'less'} than now", rule_id)

        def relative(value: Any, path: str, out: Out) -> None:
            this, now = micros(value), _now_micros()
            if (this < now) if later else (this > now):
                add(path, out)

        return relative
    if kind == "timestamp" and name == "within":
        # this < now-rules.within || this > now+rules.within ? 'must be within %s of now'...
        within = _micros(rules.within)
        add = _violation(fmt("'must be within %s of now'.format([rules.within])", rules), rule_id)

        def near(value: Any, path: str, out: Out) -> None:
            this, now = micros(value), _now_micros()
            low = _timestamp_in_range(now - within)
            high = _timestamp_in_range(now + within)
            if this < low or this > high:
                add(path, out)

        return near
    try:
        bounds = _bounds_check(
            name, rules, micros, lambda field: fmt(f"'%s'.format([rules.{field}])", rules)
        )
    except _Fallback:
        return None  # a bound CEL cannot represent: the interpreter says what that means
    if bounds is None:
        return None
    test, text = bounds
    add = _violation(text, rule_id)

    def bound(value: Any, path: str, out: Out) -> None:
        if test(micros(value)):
            add(path, out)

    return bound


def _bytes_check(name: str, rule_id: str, rules: Any) -> ValueCheck | None:
    if name not in ("len", "min_len", "max_len"):
        return None
    # uint(this.size()) < rules.min_len ? 'must be at least %s bytes'.format([rules.min_len])
    limit = getattr(rules, name)
    text = {
        "len": f"must be {limit} bytes",
        "min_len": f"must be at least {limit} bytes",
        "max_len": f"must be at most {limit} bytes",
    }[name]
    compare: Callable[[int], bool] = {
        "len": lambda n: n != limit,
        "min_len": lambda n: n < limit,
        "max_len": lambda n: n > limit,
    }[name]
    add = _violation(text, rule_id)
    operator = {"len": "!=", "min_len": "<", "max_len": ">"}[name]

    return _SimpleCheck(
        lambda value: compare(len(value)), add, f"len({{v}}) {operator} {int(limit)}"
    )


_UNHASHABLE_ALIKE: Final = frozenset({FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE})


def _unique_check(rule_id: str, rules: Any, fd: FieldDescriptor) -> ValueCheck | None:
    # !rules.unique || this.unique()   (message: repeated value must contain unique items)
    if fd.message_type is not None or fd.type in _UNHASHABLE_ALIKE:
        return None  # floats (NaN) and messages: left to the interpreter
    if not rules.unique:
        return _no_check
    rule = _predefined_rule(validate_pb2.RepeatedRules, "unique", rule_id)
    add = _violation(rule.message or f'"{rule.expression}" returned false', rule_id)

    return _SimpleCheck(
        lambda value: len(set(value)) != len(value), add, "len(set({v})) != len({v})"
    )


def _field_mask_in(rule_id: str, rules: Any, fmt: Formatter) -> ValueCheck:
    # !this.paths.all(p, p in getField(rules, 'in') || getField(rules, 'in').exists(f,
    #   p.startsWith(f+'.'))) ? 'must only contain paths in %s'.format([getField(rules, 'in')])
    allowed = frozenset(getattr(rules, "in"))
    prefixes = tuple(f"{path}." for path in getattr(rules, "in"))
    add = _violation(
        fmt("'must only contain paths in %s'.format([getField(rules, 'in')])", rules), rule_id
    )

    def within(value: Any, path: str, out: Out) -> None:
        for named in value.paths:
            if named not in allowed and not named.startswith(prefixes):
                add(path, out)
                return

    return within


# A conservative subset of regular expressions on which Python's `re` and RE2 (what CEL's
# `matches` uses) agree: anchored at `^`; literals, non-negated classes, groups, `|`, `.`;
# only bounded quantifiers (`?`, `{m}`, `{m,n}`) and none on a group but `?`; `$` only last
# (as `\Z`: Python's `$` also matches before a final newline). No escapes, flags or
# lookarounds. Bounded and anchored, Python's backtracking stays small on any input (RE2's
# linear-time guarantee is the reason to keep it for everything else). Python's engine is
# several times faster per call than the re2 wrapper.
_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/:=@,;'\" -")
_CLASS_CHARS = _LITERAL | frozenset(".+*?(){}|$^")
_QUANTIFIER = re.compile(r"\{(\d{1,3})(,(\d{1,3}))?\}")
_RE2_MAX_REPEAT = 1000


def _matcher(pattern: str) -> Callable[[str], bool]:
    """`pattern` found anywhere in a string (CEL `matches`: RE2 search semantics)."""
    search = _searcher(pattern)
    return lambda text: search(text) is not None


def _searcher(pattern: str) -> Callable[[str], Any]:
    """The search function of `pattern` (a match object, or None where CEL's `matches` is
    false): Python's `re` for the subset both engines agree on, RE2 otherwise."""
    translated = _python_regex(pattern)
    if translated is not None:
        return re.compile(translated).search
    search: Callable[[str], Any] = re2.compile(pattern).search
    return search


def _python_regex(pattern: str) -> str | None:  # noqa: C901, PLR0911, PLR0912, PLR0915
    """The same pattern for Python's `re`, or None when it is outside the subset."""
    if not pattern.startswith("^"):
        return None
    out: list[str] = []
    i, n = 0, len(pattern)
    atom = False  # whether a quantifier may follow
    group = False  # whether the atom is a group (only `?` may follow)
    while i < n:
        char = pattern[i]
        if char == "[":
            end = pattern.find("]", i + 1)
            body = pattern[i + 1 : end] if end > i + 1 else ""
            if not body or body[0] == "^" or not set(body) <= _CLASS_CHARS:
                return None
            if any(twice in body for twice in ("--", "&&", "~~", "||")):
                return None  # what Python may one day read as set operations
            out.append(pattern[i : end + 1])
            i, atom = end + 1, True
        elif char == "{":
            match = _QUANTIFIER.match(pattern, i)
            if match is None or not atom or group:
                return None
            low, high = int(match.group(1)), match.group(3)
            if low > _RE2_MAX_REPEAT or (high is not None and int(high) > _RE2_MAX_REPEAT):
                return None
            if high is not None and int(high) < low:
                return None
            out.append(match.group())
            i, atom = match.end(), False
        elif char == "?":
            if not atom:
                return None
            out.append(char)
            i, atom = i + 1, False
        elif char == "^":
            if i != 0:
                return None
            out.append(char)
            i, atom = i + 1, False
        elif char == "$":
            if i != n - 1:
                return None
            out.append("\\Z")
            i, atom = i + 1, False
        elif char == "(":
            if pattern.startswith("(?", i):
                return None
            out.append(char)
            i, atom = i + 1, False
        elif char == ")":
            out.append(char)
            i, atom = i + 1, True
            group = True
            continue
        elif char == "|":
            out.append(char)
            i, atom = i + 1, False
        elif char == "." or char in _LITERAL:
            out.append(char)
            i, atom = i + 1, True
        else:
            return None
        group = False
    return "".join(out)


def _predefined_rule(rules_type: Any, field_name: str, rule_id: str) -> validate_pb2.Rule:
    options = rules_type.DESCRIPTOR.fields_by_name[field_name].GetOptions()
    rule: validate_pb2.Rule
    for rule in options.Extensions[validate_pb2.predefined].cel:
        if rule.id == rule_id:
            return rule
    raise LookupError(rule_id)


# --------------------------------------------------------------------------------------------
# A typed compiler for a CEL subset, over cel-python's own parse tree.


@dataclass(frozen=True)
class _MsgType:
    desc: Descriptor


@dataclass(frozen=True)
class _ListType:
    item: Any


_STRING: Final = "string"
_INT: Final = "int"
_UINT: Final = "uint"
_BOOL: Final = "bool"
_TIMESTAMP: Final = "timestamp"
_DURATION: Final = "duration"
_ORDERED: Final = frozenset({_STRING, _INT, _UINT, _TIMESTAMP, _DURATION})
_EQUATABLE: Final = _ORDERED | {_BOOL}
_HASHABLE: Final = frozenset({_STRING, _INT, _UINT, _BOOL})

_SCALARS: Final = {
    FieldDescriptor.TYPE_STRING: _STRING,
    FieldDescriptor.TYPE_BOOL: _BOOL,
    FieldDescriptor.TYPE_ENUM: _INT,
    FieldDescriptor.TYPE_INT32: _INT,
    FieldDescriptor.TYPE_INT64: _INT,
    FieldDescriptor.TYPE_SINT32: _INT,
    FieldDescriptor.TYPE_SINT64: _INT,
    FieldDescriptor.TYPE_SFIXED32: _INT,
    FieldDescriptor.TYPE_SFIXED64: _INT,
    FieldDescriptor.TYPE_UINT32: _UINT,
    FieldDescriptor.TYPE_UINT64: _UINT,
    FieldDescriptor.TYPE_FIXED32: _UINT,
    FieldDescriptor.TYPE_FIXED64: _UINT,
}


class _Unsupported(Exception):
    pass


def _element_type(fd: FieldDescriptor) -> Any:
    """The CEL type of one value of `fd` (ignoring repetition); raises _Unsupported."""
    if fd.message_type is not None:
        name = fd.message_type.full_name
        if name == "google.protobuf.Timestamp":
            return _TIMESTAMP
        if name == "google.protobuf.Duration":
            return _DURATION
        if name == "google.protobuf.FieldMask":  # a plain message to protovalidate's CEL
            return _MsgType(fd.message_type)
        if name.startswith("google.protobuf."):  # wrappers, Any, Struct...: CEL converts them
            raise _Unsupported(name)
        return _MsgType(fd.message_type)
    kind = _SCALARS.get(fd.type)
    if kind is None:
        raise _Unsupported(fd.type)
    return kind


def _value_type(fd: FieldDescriptor, *, item: bool) -> Any:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        return None
    try:
        element = _element_type(fd)
        return _ListType(element) if fd.is_repeated and not item else element
    except _Unsupported:
        return None


class _Fallback(Exception):
    """A compiled check met a value whose CEL evaluation it does not mirror (an overflow, a
    timestamp out of range): the rule is evaluated by the interpreter for this value."""


_MIN_TIMESTAMP_SECONDS: Final = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_TIMESTAMP_SECONDS: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_SECONDS: Final = 315_576_000_000  # celpy's DurationType bound
_INT64: Final = (-(2**63), 2**63 - 1)
_UINT64: Final = (0, 2**64 - 1)


def _micros(value: Any) -> int:
    """A Timestamp or Duration as CEL (celpy) sees it: whole microseconds, nanos floored."""
    seconds: int = value.seconds
    nanos: int = value.nanos
    if not -_MAX_DURATION_SECONDS <= seconds <= _MAX_DURATION_SECONDS:
        raise _Fallback
    return seconds * 1_000_000 + nanos // 1000


def _timestamp_micros(value: Any) -> int:
    """A Timestamp as microseconds; one CEL cannot hold (outside years 1-9999) falls back."""
    seconds: int = value.seconds
    nanos: int = value.nanos
    return _timestamp_in_range(seconds * 1_000_000 + nanos // 1000)


# How compiled CEL sees a Timestamp or Duration value: microseconds, as celpy does.
_CONVERSIONS: Final[dict[Any, Callable[[Any], int]]] = {
    _TIMESTAMP: _timestamp_micros,
    _DURATION: _micros,
}


def _now_micros() -> int:
    return time.time_ns() // 1000


def _timestamp_in_range(micros: int) -> int:
    if not _MIN_TIMESTAMP_SECONDS * 1_000_000 <= micros < (_MAX_TIMESTAMP_SECONDS + 1) * 1_000_000:
        raise _Fallback
    return micros


def _duration_in_range(micros: int) -> int:
    if not -_MAX_DURATION_SECONDS * 1_000_000 <= micros <= _MAX_DURATION_SECONDS * 1_000_000:
        raise _Fallback
    return micros


def _in_range(bounds: tuple[int, int]) -> Callable[[int], int]:
    low, high = bounds

    def check(value: int) -> int:
        if not low <= value <= high:
            raise _Fallback  # CEL reports an overflow error here
        return value

    return check


class _CelCompiler:
    """Compiles one CEL expression to a Python expression (source over the name `this`, for
    the generated plans), or says it cannot (returns None). Constants and helpers are bound
    by name in the plans' namespace through `bind`."""

    def __init__(self, env: celpy.Environment, bind: Callable[[Any], str]) -> None:
        self._env = env
        self._bind = bind
        self._variables = 0

    def source_bool(self, expression: str, this: Any, name: str = "this") -> str | None:
        """`expression` as a Python expression over the variable `name` (CEL's `this`, of
        type `this`), or None outside the subset."""
        if this is None:
            return None
        try:
            tree = self._env.compile(expression)
            code, kind = self._node(tree, {"this": (name, this)})
        except (_Unsupported, CELParseError, lark.LarkError):
            return None
        if kind != _BOOL:
            return None
        return code

    # Each handler returns (Python source, type); scope maps a CEL name to (source, type).
    def _node(self, node: Any, scope: dict[str, Any]) -> tuple[str, Any]:  # noqa: C901, PLR0911, PLR0912
        if isinstance(node, lark.Token):
            raise _Unsupported(node)
        data = node.data
        children = node.children
        if data in (
            "expr",
            "conditionalor",
            "conditionaland",
            "relation",
            "addition",
            "multiplication",
            "unary",
            "member",
            "primary",
            "paren_expr",
        ):
            if len(children) == 1:
                return self._node(children[0], scope)
            if data == "conditionalor":
                return self._logic(children, scope, is_and=False)
            if data == "conditionaland":
                return self._logic(children, scope, is_and=True)
            binary = len(children) == 2  # noqa: PLR2004 - [op(left), right] or [op, operand]
            if data == "relation" and binary:
                return self._relation(
                    children[0].data, [children[0].children[0], children[1]], scope
                )
            if data in ("addition", "multiplication") and binary:
                return self._arithmetic(
                    children[0].data, [children[0].children[0], children[1]], scope
                )
            if data == "unary" and binary and children[0].data == "unary_not":
                code, kind = self._node(children[1], scope)
                if kind != _BOOL:
                    raise _Unsupported("!")
                return f"(not {code})", _BOOL
            raise _Unsupported(data)
        if data == "member_dot":
            return self._select(children, scope)
        if data == "member_dot_arg":
            return self._method(children, scope)
        if data == "ident":
            name = str(children[0])
            if name == "now" and name not in scope:
                return f"{self._bind(_now_micros)}()", _TIMESTAMP
            if name not in scope:
                raise _Unsupported(name)
            code, kind = scope[name]
            return code, kind
        if data == "ident_arg":
            return self._function(children, scope)
        if data == "literal":
            return self._literal(children[0])
        if data == "list_lit":
            return self._list(children, scope)
        raise _Unsupported(data)

    def _logic(
        self, children: list[Any], scope: dict[str, Any], *, is_and: bool
    ) -> tuple[str, Any]:
        left, left_kind = self._node(children[0], scope)
        right, right_kind = self._node(children[1], scope)
        if left_kind != _BOOL or right_kind != _BOOL:
            raise _Unsupported("logic")
        return f"({left} {'and' if is_and else 'or'} {right})", _BOOL

    def _relation(self, data: str, children: list[Any], scope: dict[str, Any]) -> tuple[str, Any]:
        left, left_kind = self._node(children[0], scope)
        right, right_kind = self._node(children[1], scope)
        if data == "relation_in":
            if not isinstance(right_kind, _ListType) or right_kind.item != left_kind:
                raise _Unsupported("in")
            if left_kind not in _HASHABLE:
                raise _Unsupported("in")
            return f"({left} in {right})", _BOOL
        if left_kind != right_kind:
            raise _Unsupported("mixed types")
        if data in ("relation_eq", "relation_ne"):
            if left_kind not in _EQUATABLE:
                raise _Unsupported("==")
            return f"({left} {'==' if data == 'relation_eq' else '!='} {right})", _BOOL
        if left_kind not in _ORDERED:
            raise _Unsupported("<")
        operator = {
            "relation_lt": "<",
            "relation_le": "<=",
            "relation_gt": ">",
            "relation_ge": ">=",
        }[data]
        return f"({left} {operator} {right})", _BOOL

    def _arithmetic(self, op: str, children: list[Any], scope: dict[str, Any]) -> tuple[str, Any]:
        """`+`, `-`, `*` on strings, ints, uints, timestamps and durations, as CEL types them;
        a result CEL would refuse (overflow, out of range) falls back to the interpreter."""
        left, left_kind = self._node(children[0], scope)
        right, right_kind = self._node(children[1], scope)
        kinds = (left_kind, right_kind)
        operator = {"addition_add": "+", "addition_sub": "-", "multiplication_mul": "*"}.get(op)
        if operator is None:
            raise _Unsupported(op)  # CEL's / and % truncate toward zero; not needed yet
        if op == "addition_add" and kinds == (_STRING, _STRING):
            return f"({left} + {right})", _STRING
        result: Any
        fits: Callable[[int], int] | None
        if kinds in ((_INT, _INT), (_UINT, _UINT)):
            result = left_kind
            fits = _fits_int64 if left_kind == _INT else _fits_uint64
        else:
            result, fits = _TIME_ARITHMETIC.get((op, *kinds), (None, None))
        if fits is None:
            raise _Unsupported(op)
        return f"{self._bind(fits)}({left} {operator} {right})", result

    def _select(self, children: list[Any], scope: dict[str, Any]) -> tuple[str, Any]:
        base, kind = self._node(children[0], scope)
        if not isinstance(kind, _MsgType):
            raise _Unsupported("select")
        name = str(children[1])
        fd = kind.desc.fields_by_name.get(name)
        if fd is None or fd.is_extension:
            raise _Unsupported(name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            raise _Unsupported("map")
        if not name.isidentifier() or keyword.iskeyword(name):
            raise _Unsupported(name)
        element = _element_type(fd)
        if fd.is_repeated:
            if element in (_TIMESTAMP, _DURATION):
                raise _Unsupported("repeated timestamps")  # their items would be messages
            return f"{base}.{name}", _ListType(element)
        convert = _CONVERSIONS.get(element)
        if fd.containing_oneof is not None:  # CEL: an unset oneof member is no field at all
            member = f"{self._bind(_oneof_member)}({base}, {name!r})"
            if convert is not None:
                return f"{self._bind(convert)}({member})", element
            return member, element
        if convert is not None:
            return f"{self._bind(convert)}({base}.{name})", element
        return f"{base}.{name}", element

    def _presence(self, node: Any, scope: dict[str, Any]) -> str:
        """has(x.f) for a field with presence."""
        target = node
        while (
            not isinstance(target, lark.Token)
            and target.data != "member_dot"
            and len(target.children) == 1
        ):
            target = target.children[0]
        if isinstance(target, lark.Token) or target.data != "member_dot":
            raise _Unsupported("has")
        base, kind = self._node(target.children[0], scope)
        name = str(target.children[1])
        if not isinstance(kind, _MsgType):
            raise _Unsupported("has")
        fd = kind.desc.fields_by_name.get(name)
        if fd is None or not fd.has_presence or fd.is_repeated:
            raise _Unsupported("has")  # protovalidate's presence test differs for these
        return f"{base}.HasField({name!r})"

    def _args(self, node: Any) -> list[Any]:
        if node is None:
            return []
        if isinstance(node, lark.Token) or node.data != "exprlist":
            raise _Unsupported("args")
        return list(node.children)

    def _function(self, children: list[Any], scope: dict[str, Any]) -> tuple[str, Any]:
        name = str(children[0])
        args = self._args(children[1] if len(children) > 1 else None)
        if name == "has" and len(args) == 1:
            return self._presence(args[0], scope), _BOOL
        if name == "duration" and len(args) == 1:
            try:
                value = celtypes.DurationType(self._constant_string(args[0]))
            except ValueError as exc:
                raise _Unsupported("duration") from exc
            micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
            return f"({int(micros)})", _DURATION
        if name == "size" and len(args) == 1:
            code, kind = self._node(args[0], scope)
            if kind != _STRING and not isinstance(kind, _ListType):
                raise _Unsupported("size")
            return f"len({code})", _INT
        raise _Unsupported(name)

    def _method(self, children: list[Any], scope: dict[str, Any]) -> tuple[str, Any]:  # noqa: C901, PLR0911
        name = str(children[1])
        args = self._args(children[2] if len(children) > 2 else None)  # noqa: PLR2004
        if name in ("all", "exists", "filter", "map"):
            return self._macro(name, children[0], args, scope)
        target, kind = self._node(children[0], scope)
        if name == "unique" and not args:
            if not isinstance(kind, _ListType) or kind.item not in _HASHABLE:
                raise _Unsupported("unique")
            return f"{self._bind(_all_unique)}({target})", _BOOL
        if name == "size" and not args:
            if kind != _STRING and not isinstance(kind, _ListType):
                raise _Unsupported("size")
            return f"len({target})", _INT
        if kind != _STRING or len(args) != 1:
            raise _Unsupported(name)
        if name == "matches":
            search = _searcher(self._constant_string(args[0]))
            return f"({self._bind(search)}({target}) is not None)", _BOOL
        arg, arg_kind = self._node(args[0], scope)
        if arg_kind != _STRING:
            raise _Unsupported(name)
        if name == "startsWith":
            return f"{target}.startswith({arg})", _BOOL
        if name == "endsWith":
            return f"{target}.endswith({arg})", _BOOL
        if name == "contains":
            return f"({arg} in {target})", _BOOL
        raise _Unsupported(name)

    def _macro(
        self, name: str, target_node: Any, args: list[Any], scope: dict[str, Any]
    ) -> tuple[str, Any]:
        target, kind = self._node(target_node, scope)
        if not isinstance(kind, _ListType) or len(args) != 2:  # noqa: PLR2004
            raise _Unsupported(name)
        variable = self._identifier(args[0])
        if variable in scope:
            raise _Unsupported("shadowing")
        local = f"_v{self._variables}"
        self._variables += 1
        body, body_kind = self._node(args[1], {**scope, variable: (local, kind.item)})
        if name != "map" and body_kind != _BOOL:
            raise _Unsupported(name)
        if name == "all":
            return f"all({body} for {local} in {target})", _BOOL
        if name == "exists":
            return f"any({body} for {local} in {target})", _BOOL
        if name == "filter":
            return f"[{local} for {local} in {target} if {body}]", kind
        return f"[{body} for {local} in {target}]", _ListType(body_kind)

    def _identifier(self, node: Any) -> str:
        while not isinstance(node, lark.Token) and len(node.children) == 1 and node.data != "ident":
            node = node.children[0]
        if isinstance(node, lark.Token) or node.data != "ident":
            raise _Unsupported("macro variable")
        return str(node.children[0])

    def _constant_string(self, node: Any) -> str:
        while (
            not isinstance(node, lark.Token) and len(node.children) == 1 and node.data != "literal"
        ):
            node = node.children[0]
        if isinstance(node, lark.Token) or node.data != "literal":
            raise _Unsupported("dynamic pattern")
        value, kind = self._literal_value(node.children[0])
        if kind != _STRING:
            raise _Unsupported("pattern")
        return str(value)

    def _literal(self, token: Any) -> tuple[str, Any]:
        value, kind = self._literal_value(token)
        return f"({value!r})", kind

    def _literal_value(self, token: Any) -> tuple[Any, Any]:
        text = str(token)
        if token.type == "INT_LIT":
            return int(text, 16 if "x" in text else 10), _INT
        if token.type == "BOOL_LIT":
            return text == "true", _BOOL
        if token.type == "STRING_LIT":
            quote = text[0]
            if (
                quote in "'\""
                and len(text) >= 2  # noqa: PLR2004
                and text[-1] == quote
                and not text.startswith(quote * 3)
                and "\\" not in text
            ):
                return text[1:-1], _STRING
        raise _Unsupported(token.type)

    def _list(self, children: list[Any], scope: dict[str, Any]) -> tuple[str, Any]:
        items = [
            self._node(child, scope) for child in self._args(children[0] if children else None)
        ]
        kinds = {kind for _, kind in items}
        if len(kinds) != 1:
            raise _Unsupported("list")
        (kind,) = kinds
        return "[" + ", ".join(code for code, _ in items) + "]", _ListType(kind)


def _oneof_member(message: Message, name: str) -> Any:
    """A oneof member CEL reads; an unset one is no field at all to CEL (an error)."""
    if not message.HasField(name):
        raise _Fallback
    return getattr(message, name)


def _all_unique(items: Sequence[Any]) -> bool:
    return len(set(items)) == len(items)


_fits_int64: Final = _in_range(_INT64)
# (operator, left type, right type) → (result type, its range check), as CEL types them.
_TIME_ARITHMETIC: Final[dict[tuple[str, Any, Any], tuple[Any, Callable[[int], int]]]] = {
    ("addition_add", _TIMESTAMP, _DURATION): (_TIMESTAMP, _timestamp_in_range),
    ("addition_add", _DURATION, _TIMESTAMP): (_TIMESTAMP, _timestamp_in_range),
    ("addition_sub", _TIMESTAMP, _DURATION): (_TIMESTAMP, _timestamp_in_range),
    ("addition_sub", _TIMESTAMP, _TIMESTAMP): (_DURATION, _duration_in_range),
    ("addition_add", _DURATION, _DURATION): (_DURATION, _duration_in_range),
    ("addition_sub", _DURATION, _DURATION): (_DURATION, _duration_in_range),
}
_fits_uint64: Final = _in_range(_UINT64)


def violation_triples(violations: Sequence[FieldViolation]) -> list[tuple[str, str, str]]:
    """(field, rule id, message) of each violation, for comparisons."""
    return [(v.field, v.reason, v.description) for v in violations]
