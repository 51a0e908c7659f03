"""An event's subject: its aggregate's resource name, which names the tenant and orders it."""

from __future__ import annotations

import re

from services.chassis.db.database import validate_tenant_id

_SUBJECT = re.compile(r"tenants/([^/]+)/[^/].*")


class InvalidSubjectError(ValueError):
    """A subject that is not a tenant resource name (`tenants/{tenant}/...`)."""


def tenant_of_subject(subject: str) -> str:
    """`tenants/acme/entries/e1` -> `acme`; anything else is refused."""
    match = _SUBJECT.fullmatch(subject) if isinstance(subject, str) else None
    if match is None:
        raise InvalidSubjectError(
            f"event subject {str(subject)[:120]!r} is not a resource name under tenants/{{tenant}}/"
        )
    try:
        return validate_tenant_id(match.group(1))
    except ValueError as error:
        raise InvalidSubjectError(str(error)) from None
