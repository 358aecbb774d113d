"""resource.Quantity parsing, exact comparison and canonical printing, as the real API server does them."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infrastructure.simulator.quantity import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    FORMAT_ERROR,
    NUMERIC_ERROR,
    SUFFIX_ERROR,
    QuantityError,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "value", "fmt"),
    [
        ("100m", Fraction(1, 10), DECIMAL_SI),
        ("1.5", Fraction(3, 2), DECIMAL_SI),
        ("2Gi", Fraction(2 * 1024**3), BINARY_SI),
        ("1e3", Fraction(1000), DECIMAL_EXPONENT),
        ("1E3", Fraction(1000), DECIMAL_EXPONENT),
        ("500M", Fraction(500 * 10**6), DECIMAL_SI),
        ("1E", Fraction(10**18), DECIMAL_SI),
        ("0", Fraction(0), DECIMAL_SI),
        ("-1.5", Fraction(-3, 2), DECIMAL_SI),
        ("+2k", Fraction(2000), DECIMAL_SI),
        (".5", Fraction(1, 2), DECIMAL_SI),
        ("1.G", Fraction(10**9), DECIMAL_SI),
        ("1e-3", Fraction(1, 1000), DECIMAL_EXPONENT),
        (" 3Mi ", Fraction(3 * 1024**2), BINARY_SI),
        ("+", Fraction(0), DECIMAL_SI),
        (2, Fraction(2), DECIMAL_SI),
        (0.25, Fraction(1, 4), DECIMAL_SI),
    ],
)
def test_parses_what_the_real_parser_accepts(text, value, fmt):
    quantity = parse_quantity(text)
    assert (quantity.value, quantity.format) == (value, fmt)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", FORMAT_ERROR),
        ("abc", FORMAT_ERROR),
        ("1.2.3", FORMAT_ERROR),
        ("5Kb", FORMAT_ERROR),
        ("1 Gi", FORMAT_ERROR),
        ("1e3e3", FORMAT_ERROR),
        (True, FORMAT_ERROR),
        (None, FORMAT_ERROR),
        ({"cpu": 1}, FORMAT_ERROR),
        (["1"], FORMAT_ERROR),
        ("1e", SUFFIX_ERROR),
        ("1ki", SUFFIX_ERROR),
        ("1Mi5", SUFFIX_ERROR),
        ("1e+", SUFFIX_ERROR),
        (".", NUMERIC_ERROR),
        ("k", NUMERIC_ERROR),
        ("1e2000", NUMERIC_ERROR),
    ],
)
def test_rejects_with_the_real_messages(text, message):
    with pytest.raises(QuantityError) as excinfo:
        parse_quantity(text)
    assert str(excinfo.value) == message


def test_format_error_names_the_real_regular_expression():
    assert FORMAT_ERROR == (
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("100m", "100m"),
        ("1.5", "1500m"),
        ("0.5", "500m"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("150000", "150k"),
        ("2Gi", "2Gi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("1.5Ki", "1536"),
        ("1023Ki", "1023Ki"),
        ("1e3", "1e3"),
        ("1.5e3", "1500"),
        ("1G", "1G"),
        ("0.1n", "1n"),
        ("-2Gi", "-2Gi"),
        ("0", "0"),
        ("12345678901234567890", "9223372036854775807"),
    ],
)
def test_prints_the_canonical_form(text, canonical):
    assert str(parse_quantity(text)) == canonical


def test_values_below_a_nano_round_up_away_from_zero():
    assert parse_quantity("1e-20").value == Fraction(1, 10**9)
    assert parse_quantity("-0.1n").value == Fraction(-1, 10**9)


def test_compares_exactly_across_suffixes():
    assert parse_quantity("1Gi") > parse_quantity("1G")
    assert parse_quantity("1000m") == parse_quantity("1")
    assert parse_quantity("999m") < parse_quantity("1")
    assert hash(parse_quantity("1000m")) == hash(parse_quantity("1"))


def test_sum_keeps_the_first_operands_format():
    total = parse_quantity("1Gi") + parse_quantity("512Mi")
    assert str(total) == "1536Mi"
    assert str(parse_quantity("500m") + parse_quantity("1500m")) == "2"
    assert str(parse_quantity("3") - parse_quantity("500m")) == "2500m"


@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.booleans(), st.none()))
def test_parser_never_fails_with_anything_but_a_quantity_error(text):
    try:
        quantity = parse_quantity(text)
    except QuantityError:
        return
    assert str(parse_quantity(str(quantity))) == str(quantity)


@given(st.from_regex(r"\A[+-]?[0-9]{1,6}(\.[0-9]{1,6})?(m|k|M|G|Ki|Mi|Gi|e[0-9])?\Z"))
def test_well_formed_quantities_round_trip_through_their_canonical_form(text):
    quantity = parse_quantity(text)
    assert parse_quantity(str(quantity)) == quantity
