import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from services.chassis.logs import TraceContextFilter, configure_logging


def test_log_lines_are_json_with_the_current_trace_and_span_ids(capsys):
    configure_logging("ledger")
    try:
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("services.ledger").info("entry posted")
        context = span.get_span_context()
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        logging.getLogger().handlers.clear()
    assert line["message"] == "entry posted"
    assert line["level"] == "INFO"
    assert line["service"] == "ledger"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_outside_a_span_the_ids_are_empty():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert TraceContextFilter().filter(record)
    assert (record.trace_id, record.span_id) == ("", "")  # type: ignore[attr-defined]


def test_libraries_that_echo_values_stay_quiet_even_at_debug(capsys):
    configure_logging("ledger", "DEBUG")
    logging.getLogger("celpy.evaluation").debug("activation: card_number=4111111111111111")
    logging.getLogger("services.ledger").debug("our own debug line")
    err = capsys.readouterr().err
    assert "4111111111111111" not in err
    assert "our own debug line" in err
