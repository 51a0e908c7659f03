"""Structured JSON logs carrying the current trace and span ids (never request contents)."""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` of the current span to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate; never drops a record."""
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else ""
        record.span_id = format(context.span_id, "016x") if context.is_valid else ""
        return True


# Libraries that log the values they handle at DEBUG: protovalidate's CEL engine (celpy) logs
# every field it evaluates, card numbers included, before the request is refused. They stay
# at WARNING whatever the service's level (PCI: card data never reaches a log line).
VALUE_ECHOING_LOGGERS = ("celpy",)


def configure_logging(service_name: str, level: str = "INFO") -> None:
    """JSON lines on stderr with time, level, logger, message, service and trace ids."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(trace_id)s %(span_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service_name},
        )
    )
    handler.addFilter(TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in VALUE_ECHOING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
