"""Schemathesis against the spec the gateway serves, for the services that run.

With a valid token: no 5xx, every response conforms to the spec (status code, content type,
body schema). Without a token, or with another tenant's: 401/403 only (`ignored_auth` finds
none). `make test` runs a bounded number of examples per operation; the soak target more
(COMMERCE_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from services.localmesh import GRPC_SERVICES, LocalMesh
from tests.e2e.support import FUZZ_REQUESTS

EXAMPLES = int(os.environ.get("COMMERCE_FUZZ_EXAMPLES", "8"))
SERVICE_TAGS = {f"{s.capitalize()}Service": s for s in GRPC_SERVICES}
ASSET = "ACCOUNT_TYPE_ASSET"
SEEDED_ID = "(seeded|[a-z0-9][a-z0-9_-]{0,11})"  # `seeded`: the resources made below


def fuzzable(spec: dict[str, Any], serving: set[str], tenant: str) -> dict[str, Any]:
    """The served spec, narrowed to the operations of services that run, in a shape
    schemathesis can drive: a resource-name path parameter (`{name}` with pattern
    `tenants/[^/]+/accounts/[^/]+`, which schemathesis would send with its slashes encoded,
    so the gateway would never route it) becomes one parameter per segment
    (`tenants/{segment0}/accounts/{segment1}`), named by position so that operations on one
    resource (GetInvoice's `{name}`, UpdateInvoice's `{invoice.name}`) share one path item, as
    they share one URL. The URLs sent are the ones a client sends.
    The tenant segment is the caller's (another tenant's names are refused before anything
    else, which the unauthorized run covers); ids are sometimes `seeded`, which exists."""
    paths: dict[str, Any] = {}
    for template, item in spec["paths"].items():
        operations = {
            method: operation
            for method, operation in item.items()
            if SERVICE_TAGS[operation["tags"][0]] in serving
        }
        if not operations:
            continue
        fuzz_template = template
        for operation in operations.values():
            parameters, segments = [], 0
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "path" or "pattern" not in parameter:
                    parameters.append(parameter)
                    continue
                pieces = re.split(r"(\[\^/\]\+)", parameter["pattern"])
                for index, piece in enumerate(pieces):
                    if piece != "[^/]+":
                        continue
                    name, segments = f"segment{segments}", segments + 1
                    tenant_segment = pieces[index - 1].endswith("tenants/")
                    pattern = re.escape(tenant) if tenant_segment else SEEDED_ID
                    pieces[index] = "{" + name + "}"
                    parameters.append(
                        {"name": name, "in": "path", "required": True, "type": "string",
                         "pattern": f"^{pattern}$"}
                    )  # fmt: skip
                fuzz_template = fuzz_template.replace(
                    "{" + parameter["name"] + "}", "".join(pieces)
                )
            operation["parameters"] = parameters
        paths.setdefault(fuzz_template, {}).update(operations)
    return {**spec, "paths": paths}


async def seed(rest: httpx.AsyncClient, tenant: str, serving: set[str]) -> None:
    """Resources with id `seeded`, so generated names sometimes find one."""
    if "ledger" in serving:
        reply = await rest.post(
            f"/v1/tenants/{tenant}/accounts",
            params={"accountId": "seeded"},
            json={
                "code": "seeded",
                "displayName": "s",
                "currencyCode": "EUR",
                "type": "ACCOUNT_TYPE_ASSET",
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert reply.status_code == httpx.codes.OK, reply.text


@pytest.fixture(scope="session")
async def served_spec(mesh: LocalMesh, rest: httpx.AsyncClient, tenant: str) -> Any:
    reply = await rest.get("/openapi.json")
    reply.raise_for_status()
    serving = {r.part.key for r in mesh.running}
    await seed(rest, tenant, serving)
    spec = schemathesis.openapi.from_dict(fuzzable(reply.json(), serving, tenant))
    spec.config.update(base_url=f"http://{mesh.url('gateway')}")
    return spec


schema = schemathesis.pytest.from_fixture("served_spec")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_the_served_spec_holds_for_what_the_gateway_answers(
    case: Any, mesh: LocalMesh, tenant: str
) -> None:
    token = mesh.token(tenant, ["tenant_admin"], subject="fuzz")
    FUZZ_REQUESTS.append(case.operation.label)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[
            # The spec cannot express the contracts' cross-field rules (protovalidate CEL,
            # e.g. start_time before end_time): a schema-valid request may rightly get 400.
            positive_data_acceptance,
            # proto3 JSON parsers accept more than the canonical form the spec describes:
            # enum numbers beside names, int64 as numbers beside strings (by the proto3
            # JSON spec), so "schema-violating" requests of that kind are rightly served.
            negative_data_rejection,
        ],
    )


@schema.parametrize()
@settings(
    max_examples=max(2, EXAMPLES // 2),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_without_a_token_or_with_another_tenants_nothing_is_served(
    case: Any, mesh: LocalMesh, tenant: str
) -> None:
    if not case.operation.definition.raw.get("security", True):
        pytest.skip("signed by the PSP, not bearer-authenticated")
    if case.method.upper() != case.operation.method.upper():
        return  # a coverage probe of an undeclared method: 405, whoever asks
    FUZZ_REQUESTS.append(case.operation.label)
    foreign = mesh.token(f"{tenant}-other", ["tenant_admin"], subject="intruder")
    refused = case.call(headers={"Authorization": f"Bearer {foreign}"})
    # Coverage cases that probe missing credentials go out without the header at all.
    anonymous = refused.request.headers.get("Authorization") is None
    expected = httpx.codes.UNAUTHORIZED if anonymous else httpx.codes.FORBIDDEN
    assert refused.status_code == expected, refused.text
    unauthenticated = case.call(headers={"Authorization": ""})
    assert unauthenticated.status_code == httpx.codes.UNAUTHORIZED, unauthenticated.text
