"""Conventions every contract must keep (docs/api-conventions.md), checked on the generated
descriptors so a new RPC or field that breaks one fails here with its name."""

import importlib
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor

from services.chassis.access import access_rules

pytestmark = pytest.mark.contract

DOMAINS = ("checkout", "payments", "ledger", "invoicing")
READ_PREFIXES = ("Get", "List", "Verify", "Render")


GEN = Path(__file__).resolve().parents[2] / "gen" / "python"


def _modules(suffix: str) -> list[ModuleType]:
    """Every generated module of our contracts whose name ends with `suffix`."""
    return [
        importlib.import_module(".".join(path.relative_to(GEN).with_suffix("").parts))
        for path in sorted((GEN / "commerce").rglob(f"*{suffix}.py"))
    ]


def _services() -> list[ServiceDescriptor]:
    return [
        service
        for module in _modules("_service_pb2")
        for service in module.DESCRIPTOR.services_by_name.values()
    ]


def _messages() -> list[Descriptor]:
    seen: dict[str, Descriptor] = {}

    def visit(message: Descriptor) -> None:
        seen[message.full_name] = message
        for nested in message.nested_types:
            visit(nested)

    for module in _modules("_pb2"):
        for message in module.DESCRIPTOR.message_types_by_name.values():
            visit(message)
    return list(seen.values())


SERVICES = _services()
METHODS = [(s, m) for s in SERVICES for m in s.methods]


def test_each_domain_has_exactly_one_service():
    assert sorted(s.full_name for s in SERVICES) == sorted(
        f"commerce.{d}.v1.{d.capitalize()}Service" for d in DOMAINS
    )


def test_every_rpc_declares_an_access_rule():
    rules = access_rules(SERVICES)  # raises MissingAccessRuleError naming the offenders
    assert len(rules) == len(METHODS)


@pytest.mark.parametrize(("service", "method"), METHODS, ids=lambda x: getattr(x, "name", ""))
def test_every_mutating_rpc_carries_a_request_id(service, method):
    if method.name.startswith(READ_PREFIXES):
        return
    field = method.input_type.fields_by_name.get("request_id")
    assert field is not None, f"{service.name}.{method.name} mutates but has no request_id"
    assert field.type == FieldDescriptor.TYPE_STRING


@pytest.mark.parametrize(("service", "method"), METHODS, ids=lambda x: getattr(x, "name", ""))
def test_every_list_rpc_is_paginated(service, method):
    if not method.name.startswith("List"):
        return
    request = method.input_type.fields_by_name
    assert "page_size" in request, method.full_name
    assert "page_token" in request, method.full_name
    assert "next_page_token" in method.output_type.fields_by_name, method.full_name


def test_no_contract_has_a_floating_point_field():
    floats = [
        f"{message.full_name}.{field.name}"
        for message in _messages()
        for field in message.fields
        if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)
    ]
    assert floats == []


def test_no_contract_has_a_field_for_card_data():
    suspicious = ("card_number", "pan", "cvc", "cvv", "expiry_month", "expiry_year")
    fields = [
        f"{message.full_name}.{field.name}"
        for message in _messages()
        for field in message.fields
        if field.name in suspicious
    ]
    assert fields == []
