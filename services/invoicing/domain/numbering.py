"""Per-tenant numbering: a format like "{prefix}-{year}-{seq:06}" and the gapless counter
("series") a number is drawn from, e.g. "INV/2026" for a yearly reset."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def known_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


class SequenceReset(enum.StrEnum):
    NEVER = "NEVER"
    YEARLY = "YEARLY"
    MONTHLY = "MONTHLY"


class DocumentKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


_PLACEHOLDER = re.compile(r"\{(prefix|year|yy|month|seq|seq:0(\d{1,2}))\}")
DEFAULT_FORMAT = "{prefix}-{year}-{seq:06}"


@dataclass(frozen=True, slots=True)
class Series:
    prefix: str
    format: str = DEFAULT_FORMAT
    reset: SequenceReset = SequenceReset.YEARLY
    start_sequence: int = 1

    def counter(self, issue_time: datetime, time_zone: str) -> str:
        """The counter a document issued at `issue_time` draws from: prefix and period."""
        local = issue_time.astimezone(ZoneInfo(time_zone))
        if self.reset is SequenceReset.YEARLY:
            return f"{self.prefix}/{local.year:04d}"
        if self.reset is SequenceReset.MONTHLY:
            return f"{self.prefix}/{local.year:04d}-{local.month:02d}"
        return self.prefix

    def format_number(self, sequence: int, issue_time: datetime, time_zone: str) -> str:
        local = issue_time.astimezone(ZoneInfo(time_zone))

        def fill(match: re.Match[str]) -> str:
            name, width = match.group(1), match.group(2)
            if name == "prefix":
                return self.prefix
            if name == "year":
                return f"{local.year:04d}"
            if name == "yy":
                return f"{local.year % 100:02d}"
            if name == "month":
                return f"{local.month:02d}"
            return str(sequence).zfill(int(width) if width else 0)  # never truncated

        return _PLACEHOLDER.sub(fill, self.format)


@dataclass(frozen=True, slots=True)
class NumberingConfig:
    invoice_series: Series = Series("INV")
    credit_note_series: Series = Series("CN")
    time_zone: str = "UTC"
    update_time: datetime | None = None
    version: int = 0

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    def series(self, kind: DocumentKind) -> Series:
        return self.invoice_series if kind is DocumentKind.INVOICE else self.credit_note_series
