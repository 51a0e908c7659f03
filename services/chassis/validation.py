"""Request validation: protovalidate rules from the contracts, plus the card-data guard."""

from __future__ import annotations

import protovalidate
from buf.validate import validate_pb2
from google.protobuf.message import Message

from services.chassis.card_data import looks_like_card_number, string_fields
from services.chassis.errors import FieldViolation, InvalidArgument

VALIDATION_FAILED = "VALIDATION_FAILED"
CARD_DATA_REJECTED = "CARD_DATA_REJECTED"


class RequestValidator:
    """Raises InvalidArgument naming every violated field; returns None for a valid request."""

    def __init__(self) -> None:
        self._validator = protovalidate.Validator()  # type: ignore[no-untyped-call] # untyped library

    def validate(self, request: Message) -> None:
        """Check `request` against its protovalidate rules and for card numbers."""
        strings = list(string_fields(request))
        card_fields = [path for path, text in strings if looks_like_card_number(text)]
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
                violations=[
                    FieldViolation(p, "must not contain NUL", "string.no_nul") for p in nul
                ],
            )
        try:
            self._validator.validate(request)
        except protovalidate.ValidationError as exc:
            violations = [
                FieldViolation(
                    field=_field_path(v.proto),
                    description=v.proto.message,
                    reason=v.proto.rule_id,
                )
                for v in exc.violations
            ]
            first = violations[0] if violations else FieldViolation("", str(exc))
            raise InvalidArgument(
                VALIDATION_FAILED,
                f"invalid {first.field or 'request'}: {first.description}",
                metadata={"field": first.field, "rule": first.reason},
                violations=violations,
            ) from exc


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
