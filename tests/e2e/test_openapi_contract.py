"""The spec the gateway serves at /openapi.json describes every RPC the contracts bind to
HTTP, with the same verb and path, and nothing else. (That responses conform to it is
checked on every call of the schemathesis run, tests/e2e/test_rest_fuzz.py.)"""

from __future__ import annotations

import re

import httpx
from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import FileDescriptor

from commerce.checkout.v1 import checkout_service_pb2
from commerce.invoicing.v1 import invoicing_service_pb2
from commerce.ledger.v1 import ledger_service_pb2
from commerce.payments.v1 import payments_service_pb2

CONTRACTS: tuple[FileDescriptor, ...] = (
    checkout_service_pb2.DESCRIPTOR,
    invoicing_service_pb2.DESCRIPTOR,
    ledger_service_pb2.DESCRIPTOR,
    payments_service_pb2.DESCRIPTOR,
)
VERBS = ("get", "put", "post", "delete", "patch")


def bindings() -> dict[str, tuple[str, str]]:
    """operationId -> (verb, path with `{field=pattern}` reduced to its literal shape)."""
    found = {}
    for contract in CONTRACTS:
        for service in contract.services_by_name.values():
            for method in service.methods:
                rule = http_pb2.HttpRule()
                rule.MergeFrom(method.GetOptions().Extensions[annotations_pb2.http])
                verb = rule.WhichOneof("pattern")
                if verb is None:
                    continue
                assert verb in VERBS, (method.full_name, verb)
                found[f"{service.name}_{method.name}"] = (verb, shape(getattr(rule, verb)))
    return found


def shape(path: str) -> str:
    """`/v1/{name=tenants/*/accounts/*}:close` -> `/v1/tenants/*/accounts/*:close`;
    `/v1/{name_6}` with pattern `tenants/[^/]+/accounts/[^/]+` -> the same."""
    path = re.sub(r"\{[^}=]+=([^}]+)\}", r"\1", path)  # {name=tenants/*} -> tenants/*
    path = re.sub(r"\{[^}]+\}", "*", path)  # {psp} -> *
    return path.replace("[^/]+", "*")


def served_shape(path: str, parameters: list[dict[str, str]]) -> str:
    patterns = {p["name"]: p["pattern"] for p in parameters if p["in"] == "path" and "pattern" in p}
    path = re.sub(r"\{([^}]+)\}", lambda m: patterns.get(m[1], "*"), path)
    return shape(path)


async def test_the_served_spec_lists_every_bound_rpc_and_only_those(
    rest: httpx.AsyncClient,
) -> None:
    reply = await rest.get("/openapi.json")
    assert reply.status_code == httpx.codes.OK
    spec = reply.json()
    served = {
        operation["operationId"]: (verb, served_shape(path, operation.get("parameters", [])))
        for path, item in spec["paths"].items()
        for verb, operation in item.items()
    }
    expected = bindings()
    assert len(expected) > 50  # the scan found the contracts' bindings
    assert served == expected
