"""Strict settlement report ingest: every malformed line named by line and column; exponents."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.payments.domain.reconciliation import RecordType
from services.payments.domain.reconciliation_currency import (
    AmountFormatError,
    CurrencyError,
    format_minor_units,
    minor_unit_exponent,
    to_minor_units,
)
from services.payments.reconciliation.ingest import (
    LineError,
    SettlementReportError,
    parse_settlement_csv,
)
from services.payments.sandbox.books import SettlementEntry, capture_fee
from services.payments.sandbox.settlement import render_csv

MINOR_HEADER = (
    "settlement_date,line_id,type,reference,authorization,currency,gross_minor,fee_minor,net_minor"
)
DECIMAL_HEADER = "settlement_date,line_id,type,reference,authorization,currency,gross,fee,net"
CAPTURE = "2026-11-20,sl_00000001,capture,sbx_cap_1,sbx_auth_1,USD,10000,320,9680"
REFUND = "2026-11-20,sl_00000002,refund,sbx_re_1,sbx_auth_1,USD,-2500,0,-2500"


def report(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def errors_of(text: str) -> set[tuple[int, str]]:
    with pytest.raises(SettlementReportError) as raised:
        parse_settlement_csv(text, source="test.csv")
    return {(e.line, e.column) for e in raised.value.errors}


def test_the_sandbox_report_format_parses_to_records_exactly():
    entries = [
        SettlementEntry(
            line_id="sl_00000001",
            settlement_date=date(2026, 11, 20),
            type="capture",
            reference="sbx_cap_a",
            authorization="sbx_auth_a",
            currency="JPY",
            gross_minor=5_000,
            fee_minor=175,
        ),
        SettlementEntry(
            line_id="sl_00000002",
            settlement_date=date(2026, 11, 20),
            type="refund",
            reference="sbx_re_a",
            authorization="sbx_auth_a",
            currency="JPY",
            gross_minor=-1_000,
            fee_minor=0,
        ),
    ]
    first, second = parse_settlement_csv(render_csv(entries))
    assert (first.type, first.gross_minor, first.fee_minor, first.net_minor) == (
        RecordType.CAPTURE,
        5_000,
        175,
        4_825,
    )
    assert (first.line_number, second.line_number) == (2, 3)
    assert (second.psp_reference, second.payment_reference) == ("sbx_re_a", "sbx_auth_a")
    assert second.gross_minor == -1_000


def test_a_verbatim_repeated_line_is_kept_for_reconciliation_to_report():
    records = parse_settlement_csv(report(MINOR_HEADER, CAPTURE, CAPTURE))
    assert [r.line_number for r in records] == [2, 3]
    assert records[0].record_id == records[1].record_id


def test_the_same_line_id_with_other_values_is_a_malformed_report():
    other = CAPTURE.replace("10000,320,9680", "10001,320,9681")
    assert errors_of(report(MINOR_HEADER, CAPTURE, other)) == {(3, "line_id")}


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("2026-13-01,sl_1,capture,c,a,USD,100,33,67", "settlement_date"),
        ("20261120,sl_1,capture,c,a,USD,100,33,67", "settlement_date"),
        (",sl_1,capture,c,a,USD,100,33,67", "settlement_date"),
        ("2026-11-20,,capture,c,a,USD,100,33,67", "line_id"),
        ("2026-11-20,sl 1,capture,c,a,USD,100,33,67", "line_id"),
        ("2026-11-20,sl_1,payout,c,a,USD,100,33,67", "type"),
        ("2026-11-20,sl_1,capture,,a,USD,100,33,67", "reference"),
        ("2026-11-20,sl_1,capture,c,,USD,100,33,67", "authorization"),
        ("2026-11-20,sl_1,capture,c,a,usd,100,33,67", "currency"),
        ("2026-11-20,sl_1,capture,c,a,XXY,100,33,67", "currency"),
        ("2026-11-20,sl_1,capture,c,a,USD,1e2,33,67", "gross_minor"),
        ("2026-11-20,sl_1,capture,c,a,USD,100.00,33,67", "gross_minor"),
        ("2026-11-20,sl_1,capture,c,a,USD, 100,33,67", "gross_minor"),
        ("2026-11-20,sl_1,capture,c,a,USD,100,033,67", "fee_minor"),
        ("2026-11-20,sl_1,capture,c,a,USD,100,33,68", "net_minor"),
        ("2026-11-20,sl_1,capture,c,a,USD,-100,0,-100", "gross_minor"),
        ("2026-11-20,sl_1,refund,r,a,USD,100,0,100", "gross_minor"),
        ("2026-11-20,sl_1,fee,,,USD,0,0,0", "fee_minor"),
        ("2026-11-20,sl_1,fee,,,USD,5,5,0", "gross_minor"),
        (
            "2026-11-20,sl_1,capture,c,a,USD,9223372036854775808,1,9223372036854775807",
            "gross_minor",
        ),
    ],
)
def test_each_malformed_field_is_named_by_line_and_column(line, column):
    assert errors_of(f"{MINOR_HEADER}\n{CAPTURE}\n{line}\n") == {(3, column)}


def test_every_malformed_line_is_reported_not_just_the_first():
    text = report(
        MINOR_HEADER,
        CAPTURE,
        "2026-11-20,sl_2,capture,c,a,USD,abc,0,0",
        REFUND,
        "2026-11-20,sl_3,capture,c,a,USD,100,33",
        "",
        "2026-11-20,sl_4,capture,c,a,EUR,100,33,67,extra",
    )
    assert errors_of(text) == {(3, "gross_minor"), (5, ""), (6, ""), (7, "")}


def test_the_error_message_names_the_report_line_and_column():
    with pytest.raises(SettlementReportError) as raised:
        parse_settlement_csv(
            f"{MINOR_HEADER}\n2026-11-20,sl_1,capture,c,a,USD,12x,0,12\n", source="s.csv"
        )
    assert "settlement report s.csv is malformed" in str(raised.value)
    assert "line 2, column gross_minor: '12x' is not an integer number of minor units" in str(
        raised.value
    )


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("settlement_date,line_id,type,reference,authorization,currency,gross_minor,fee_minor", ""),
        (MINOR_HEADER.replace("authorization", "charge"), "authorization"),
        (MINOR_HEADER + ",gross,fee,net", ""),
        (MINOR_HEADER + ",memo", "memo"),
        (MINOR_HEADER + ",currency", "currency"),
    ],
)
def test_a_bad_header_is_refused_before_any_line(header, column):
    assert (1, column) in errors_of(f"{header}\n{CAPTURE}\n")


def test_an_empty_report_and_broken_quoting_are_errors():
    assert errors_of("") == {(1, "")}
    assert errors_of(f'{MINOR_HEADER}\n2026-11-20,"sl_1,capture\n') == {(2, "")}


def test_card_numbers_in_a_report_are_refused_without_being_repeated():
    line = "2026-11-20,sl_1,capture,4111111111111111,a,USD,100,33,67"
    with pytest.raises(SettlementReportError) as raised:
        parse_settlement_csv(f"{MINOR_HEADER}\n{line}\n")
    assert {(e.line, e.column) for e in raised.value.errors} == {(2, "reference")}
    assert "4111111111111111" not in str(raised.value)


def test_card_like_digits_in_an_amount_are_never_repeated_in_an_error():
    with pytest.raises(SettlementReportError) as raised:
        parse_settlement_csv(
            f"{MINOR_HEADER}\n2026-11-20,sl_1,capture,c,a,USD,4111111111111111,0,1\n"
        )
    assert {(e.line, e.column) for e in raised.value.errors} == {(2, "net_minor")}
    assert "4111111111111111" not in str(raised.value)
    with pytest.raises(SettlementReportError) as raised:
        parse_settlement_csv(
            f"{DECIMAL_HEADER}\n2026-11-20,sl_1,capture,c,a,JPY,4111111111111111.5,0,1\n"
        )
    assert "4111111111111111" not in str(raised.value)


def test_fee_lines_need_no_references():
    [fee] = parse_settlement_csv(f"{MINOR_HEADER}\n2026-11-30,sl_9,fee,,,USD,0,1500,-1500\n")
    assert (fee.type, fee.fee_minor, fee.net_minor, fee.psp_reference) == (
        RecordType.FEE,
        1_500,
        -1_500,
        "",
    )


def test_decimal_amounts_convert_by_the_currency_exponent():
    text = report(
        DECIMAL_HEADER,
        "2026-11-20,sl_1,capture,c1,a1,USD,100.00,3.20,96.80",
        "2026-11-20,sl_2,capture,c2,a2,JPY,5000,175,4825",
        "2026-11-20,sl_3,refund,r3,a3,KWD,-1.234,0,-1.234",
        "2026-11-20,sl_4,capture,c4,a4,USD,12.340,0.3,12.04",
    )
    got = [
        (r.currency, r.gross_minor, r.fee_minor, r.net_minor) for r in parse_settlement_csv(text)
    ]
    assert got == [
        ("USD", 10_000, 320, 9_680),
        ("JPY", 5_000, 175, 4_825),
        ("KWD", -1_234, 0, -1_234),
        ("USD", 1_234, 30, 1_204),
    ]


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("2026-11-20,sl_1,capture,c,a,USD,100.001,0,100.001", "gross"),
        ("2026-11-20,sl_1,capture,c,a,JPY,100.5,0,100.5", "gross"),
        ("2026-11-20,sl_1,capture,c,a,KWD,1.0001,0,1.0001", "gross"),
        ("2026-11-20,sl_1,capture,c,a,USD,1.00,0.005,0.995", "fee"),
        ("2026-11-20,sl_1,capture,c,a,USD,1.,0,1", "gross"),
        ("2026-11-20,sl_1,capture,c,a,USD,.5,0,.5", "gross"),
        ("2026-11-20,sl_1,capture,c,a,USD,+1.00,0,1.00", "gross"),
        ("2026-11-20,sl_1,capture,c,a,USD,1,000.00,0,1000.00", ""),
    ],
)
def test_sub_minor_precision_and_malformed_decimals_are_refused(line, column):
    found = errors_of(f"{DECIMAL_HEADER}\n{line}\n")
    assert (2, column) in found


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("JPY", 0), ("KRW", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3), ("CLF", 4)],
)
def test_iso_4217_exponents(currency, exponent):
    assert minor_unit_exponent(currency) == exponent


def test_exact_conversion_both_ways_for_any_length():
    assert to_minor_units("123456789012345678901234567890.12", "USD") == (
        12345678901234567890123456789012
    )
    assert to_minor_units("-0.001", "KWD") == -1
    assert to_minor_units("7", "JPY") == 7
    assert format_minor_units(-1_234, "KWD") == "-1.234"
    assert format_minor_units(5, "USD") == "0.05"
    assert format_minor_units(5, "JPY") == "5"
    with pytest.raises(AmountFormatError):
        to_minor_units("0.5", "JPY")
    with pytest.raises(CurrencyError):
        minor_unit_exponent("ABC")


def test_line_errors_read_like_a_finance_ticket():
    assert str(LineError(4, "net_minor", "net 5 is not gross - fee")) == (
        "line 4, column net_minor: net 5 is not gross - fee"
    )


@st.composite
def sandbox_entries(draw: st.DrawFn) -> list[SettlementEntry]:
    entries = []
    for n in range(draw(st.integers(0, 20))):
        refund = draw(st.booleans())
        amount = draw(st.integers(1, 2**62))
        entries.append(
            SettlementEntry(
                line_id=f"sl_{n + 1:08d}",
                settlement_date=draw(st.dates(date(2020, 1, 1), date(2030, 12, 31))),
                type="refund" if refund else "capture",
                reference=f"sbx_{'re' if refund else 'cap'}_{n}",
                authorization=f"sbx_auth_{draw(st.integers(0, 5))}",
                currency=draw(st.sampled_from(["USD", "JPY", "KWD", "EUR"])),
                gross_minor=-amount if refund else amount,
                fee_minor=0 if refund else capture_fee(amount),
            )
        )
    return entries


@settings(max_examples=60, deadline=None)
@given(sandbox_entries())
def test_every_report_the_sandbox_renders_reads_back_exactly(entries):
    records = parse_settlement_csv(render_csv(entries))
    assert [
        (
            r.record_id,
            r.settlement_date,
            r.type.value,
            r.psp_reference,
            r.payment_reference,
            r.currency,
            r.gross_minor,
            r.fee_minor,
            r.net_minor,
        )
        for r in records
    ] == [
        (
            e.line_id,
            e.settlement_date,
            e.type,
            e.reference,
            e.authorization,
            e.currency,
            e.gross_minor,
            e.fee_minor,
            e.net_minor,
        )
        for e in entries
    ]
