"""Contract messages <-> domain objects. Enums map by name: the domain's values are the proto
names without their prefix (PAYMENT_STATE_AUTHORIZED <-> PaymentState.AUTHORIZED)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from commerce.payments.v1 import resources_pb2 as res
from commerce.payments.v1 import routing_pb2 as rt
from commerce.type.v1 import ids_pb2, money_pb2
from services.chassis.errors import DomainError
from services.payments.domain import errors
from services.payments.domain.attempts import (
    AmbiguousOutcome,
    Attempt,
    Operation,
    PaymentFailure,
)
from services.payments.domain.methods import CaptureMethod, PaymentMethod, PaymentMethodType
from services.payments.domain.money import Money
from services.payments.domain.records import Customer, PaymentRecord
from services.payments.domain.refunds import Refund, RefundReason
from services.payments.domain.routing import RoutingConfig, RoutingHints, RoutingRule
from services.payments.domain.states import PaymentState

E = TypeVar("E", bound=Any)


def _to_proto_enum(enum_type: Any, prefix: str, value: Any) -> Any:
    """The proto enum number (typed Any: each generated enum has its own ValueType)."""
    return enum_type.Value(f"{prefix}_{value.value}")


def _from_proto_enum(enum_type: Any, prefix: str, number: int, domain: type[E], field: str) -> E:
    name = enum_type.Name(number) if number in enum_type.values() else ""
    if not name.startswith(prefix + "_") or name.endswith("_UNSPECIFIED"):
        raise errors.invalid_field(field, "must be set to a defined value")
    value: E = domain(name[len(prefix) + 1 :])
    return value


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def money(amount: Money) -> money_pb2.Money:
    return money_pb2.Money(currency_code=amount.currency, amount_minor=amount.amount_minor)


def money_in(message: money_pb2.Money, field: str = "amount") -> Money:
    try:
        return Money(message.amount_minor, message.currency_code)
    except DomainError:
        raise errors.invalid_field(
            field, "must be a positive amount in an ISO 4217 currency"
        ) from None


def capture_method(number: int) -> CaptureMethod:
    return _from_proto_enum(
        res.CaptureMethod, "CAPTURE_METHOD", number, CaptureMethod, "capture_method"
    )


def payment_method(message: res.PaymentMethod) -> PaymentMethod:
    kind = _from_proto_enum(
        res.PaymentMethodType,
        "PAYMENT_METHOD_TYPE",
        message.type,
        PaymentMethodType,
        "payment_method.type",
    )
    return PaymentMethod(message.token, kind)


def refund_reason(number: int) -> RefundReason:
    return _from_proto_enum(res.RefundReason, "REFUND_REASON", number, RefundReason, "reason")


def payment_state(number: int) -> PaymentState | None:
    if number == res.PAYMENT_STATE_UNSPECIFIED:
        return None
    return _from_proto_enum(res.PaymentState, "PAYMENT_STATE", number, PaymentState, "state")


def hints(message: res.RoutingHints) -> RoutingHints:
    return RoutingHints(tuple(message.preferred_psps), tuple(message.excluded_psps))


def customer(message: ids_pb2.CustomerRef) -> Customer:
    return Customer(message.customer_id, message.email, message.display_name)


def failure(value: PaymentFailure) -> res.PaymentFailure:
    return res.PaymentFailure(
        code=_to_proto_enum(res.PaymentFailureCode, "PAYMENT_FAILURE_CODE", value.code),
        reason=value.reason,
        retryable=value.retryable,
        psp=value.psp,
        psp_code=value.psp_code,
    )


def operation(value: Operation) -> Any:
    return _to_proto_enum(res.PaymentOperation, "PAYMENT_OPERATION", value)


def attempt(record: PaymentRecord, value: Attempt) -> res.PaymentAttempt:
    message = res.PaymentAttempt(
        attempt_number=value.attempt_number,
        operation=_to_proto_enum(res.PaymentOperation, "PAYMENT_OPERATION", value.operation),
        psp=value.psp,
        outcome=_to_proto_enum(res.AttemptOutcome, "ATTEMPT_OUTCOME", value.outcome),
        error_class=_to_proto_enum(res.ErrorClass, "ERROR_CLASS", value.error_class),
        psp_code=value.psp_code,
        psp_reference=value.psp_reference,
        amount=money(value.amount),
        refund=record.refund_name(value.refund) if value.refund else "",
        psp_idempotency_key=value.psp_idempotency_key,
        start_time=timestamp(value.start_time),
        end_time=timestamp(value.end_time),
    )
    if value.failure_code is not None:
        message.failure_code = _to_proto_enum(
            res.PaymentFailureCode, "PAYMENT_FAILURE_CODE", value.failure_code
        )
    return message


def ambiguous(record: PaymentRecord, value: AmbiguousOutcome) -> res.AmbiguousOutcome:
    return res.AmbiguousOutcome(
        operation=_to_proto_enum(res.PaymentOperation, "PAYMENT_OPERATION", value.operation),
        psp=value.psp,
        psp_reference=value.psp_reference,
        amount=money(value.amount),
        refund=record.refund_name(value.refund) if value.refund else "",
        attempt_number=value.attempt_number,
        start_time=timestamp(value.start_time),
        resolution_attempts=value.resolution_attempts,
    )


def payment(record: PaymentRecord) -> res.Payment:
    p = record.payment
    message = res.Payment(
        name=record.name,
        order=record.order,
        amount=money(p.amount),
        amount_authorized=money(p.amount_authorized),
        amount_captured=money(p.amount_captured),
        amount_refunded=money(p.amount_refunded),
        capture_method=_to_proto_enum(res.CaptureMethod, "CAPTURE_METHOD", p.capture_method),
        payment_method=res.PaymentMethod(
            token=p.payment_method.token,
            type=_to_proto_enum(
                res.PaymentMethodType, "PAYMENT_METHOD_TYPE", p.payment_method.type
            ),
        ),
        state=_to_proto_enum(res.PaymentState, "PAYMENT_STATE", p.state),
        psp=p.psp,
        psp_reference=p.psp_reference,
        attempts=[attempt(record, a) for a in p.attempts],
        outcome_unknown=p.outcome_unknown,
        routing_hints=res.RoutingHints(
            preferred_psps=list(record.hints.preferred_psps),
            excluded_psps=list(record.hints.excluded_psps),
        ),
        description=record.description,
        metadata=record.metadata,
        create_time=timestamp(p.create_time),
        update_time=timestamp(p.update_time),
        etag=f'W/"{record.version}"',
    )
    if record.customer is not None:
        message.customer.CopyFrom(
            ids_pb2.CustomerRef(
                customer_id=record.customer.customer_id,
                email=record.customer.email,
                display_name=record.customer.display_name,
            )
        )
    if p.failure is not None:
        message.failure.CopyFrom(failure(p.failure))
    if p.ambiguous_outcome is not None:
        message.ambiguous_outcome.CopyFrom(ambiguous(record, p.ambiguous_outcome))
    if p.expire_time is not None:
        message.expire_time.CopyFrom(timestamp(p.expire_time))
    return message


def refund(record: PaymentRecord, value: Refund) -> res.Refund:
    message = res.Refund(
        name=record.refund_name(value.refund_id),
        amount=money(value.amount),
        reason=_to_proto_enum(res.RefundReason, "REFUND_REASON", value.reason),
        description=value.description,
        state=_to_proto_enum(res.RefundState, "REFUND_STATE", value.state),
        psp=value.psp,
        psp_reference=value.psp_reference,
        outcome_unknown=value.outcome_unknown,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
    )
    if value.failure is not None:
        message.failure.CopyFrom(failure(value.failure))
    return message


# -- routing ---------------------------------------------------------------------------------


def routing_rule(message: rt.RoutingRule) -> RoutingRule:
    kinds = frozenset(
        _from_proto_enum(
            res.PaymentMethodType,
            "PAYMENT_METHOD_TYPE",
            t,
            PaymentMethodType,
            "routing_config.rules.payment_method_types",
        )
        for t in message.payment_method_types
    )
    return RoutingRule(
        rule_id=message.rule_id,
        psps=tuple(message.psps),
        currency_code=message.currency_code,
        min_amount_minor=message.min_amount_minor,
        max_amount_minor=message.max_amount_minor,
        payment_method_types=kinds,
    )


def routing_config_in(message: rt.RoutingConfig) -> tuple[RoutingConfig, dict[str, str]]:
    rules = tuple(routing_rule(r) for r in message.rules)
    descriptions = {r.rule_id: r.description for r in message.rules}
    return RoutingConfig(rules, tuple(message.default_psps)), descriptions


def routing_config(
    tenant: str,
    config: RoutingConfig,
    descriptions: dict[str, str],
    version: int,
    update_time: datetime | None,
) -> rt.RoutingConfig:
    message = rt.RoutingConfig(
        name=f"tenants/{tenant}/routingConfig",
        rules=[
            rt.RoutingRule(
                rule_id=r.rule_id,
                currency_code=r.currency_code,
                min_amount_minor=r.min_amount_minor,
                max_amount_minor=r.max_amount_minor,
                payment_method_types=sorted(
                    _to_proto_enum(res.PaymentMethodType, "PAYMENT_METHOD_TYPE", t)
                    for t in r.payment_method_types
                ),
                psps=list(r.psps),
                description=descriptions.get(r.rule_id, ""),
            )
            for r in config.rules
        ],
        default_psps=list(config.default_psps),
        etag=f'W/"{version}"',
    )
    if update_time is not None:
        message.update_time.CopyFrom(timestamp(update_time))
    return message


def etag_version(etag: str) -> int | None:
    """The version in an etag this service issued (`W/"7"`), None for anything else."""
    inner = etag.removeprefix("W/").strip('"')
    return int(inner) if inner.isdigit() else None
