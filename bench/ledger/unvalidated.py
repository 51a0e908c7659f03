"""A diagnostic server: the full chassis server with request validation switched off.

Authentication, RBAC, tenant scoping (and whatever else the chassis adds) stay; only the
validation step (the compiled protovalidate plans and the card-data guard, ADR 0016) is
replaced by a no-op, to show how much of a request's cost it is. The benchmark's own
instrument; never used by the service.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from unittest import mock

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from services.chassis import server as chassis_server
from services.chassis.config import ServerSettings
from services.chassis.server import RunningServer, ServiceRegistration
from services.chassis.validation import RequestValidator
from services.ledger.config import ERROR_DOMAIN


class _NoValidation(RequestValidator):
    def __init__(self) -> None:  # compiles no validation plans
        pass

    def validate(self, request: Message) -> None:  # noqa: ARG002 - the no-op is the point
        return None

    def prepare(self, request_types: Iterable[Descriptor]) -> None:  # noqa: ARG002 - no-op
        return None


async def start_unvalidated(
    settings: ServerSettings, services: Sequence[ServiceRegistration]
) -> RunningServer:
    with mock.patch.object(chassis_server, "RequestValidator", _NoValidation):
        return await chassis_server.start_server(settings, services, error_domain=ERROR_DOMAIN)
