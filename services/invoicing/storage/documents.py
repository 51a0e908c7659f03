"""Domain documents as jsonb and back (pydantic reads the domain's dataclasses as they are)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from services.invoicing.domain.credit_notes import CreditNote
from services.invoicing.domain.invoices import Invoice
from services.invoicing.domain.numbering import NumberingConfig

_INVOICE = TypeAdapter(Invoice)
_CREDIT_NOTE = TypeAdapter(CreditNote)
_CONFIG = TypeAdapter(NumberingConfig)
_TRANSIENT = {"changes"}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def invoice_json(invoice: Invoice) -> str:
    return _json(_INVOICE.dump_python(invoice, mode="json", exclude=_TRANSIENT))


def invoice_from(document: Any) -> Invoice:
    return _INVOICE.validate_python(document)


def credit_note_json(note: CreditNote) -> str:
    return _json(_CREDIT_NOTE.dump_python(note, mode="json", exclude=_TRANSIENT))


def credit_note_from(document: Any) -> CreditNote:
    return _CREDIT_NOTE.validate_python(document)


def config_json(config: NumberingConfig) -> str:
    return _json(_CONFIG.dump_python(config, mode="json"))


def config_from(document: Any) -> NumberingConfig:
    return _CONFIG.validate_python(document)
