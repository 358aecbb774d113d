"""Kubernetes ``resource.Quantity`` ("100m", "1.5", "2Gi", "1e3", "500M") with exact arithmetic.

The simulated API server must accept and reject exactly what the real one does (a 400 for
"1.2.3" or "5Kb"), compare quotas without float rounding, and print quantities in the
canonical form the real server uses in its messages ("1500m", "1536Mi", "2k"). Values are
kept as ``Fraction``s; like the real type they are rounded up to whole nanos and the SI forms
are capped at 2^63-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache, total_ordering

FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
SUFFIX_ERROR = "unable to parse quantity's suffix"
NUMERIC_ERROR = "unable to parse numeric part of quantity"

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_NAMES = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_NAMES = {0: "", **{exponent: suffix for suffix, exponent in _BINARY_SUFFIXES.items()}}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")
_NANOS_PER_UNIT = 10**9
_NANO = Fraction(1, _NANOS_PER_UNIT)
_MAX = Fraction(2**63 - 1)
# The real type keeps exponents in an int32 scale; a simulator need not build 10**2_000_000_000.
_MAX_EXPONENT = 1000


class QuantityError(ValueError):
    """The string is not a quantity; ``str(error)`` is the real API server's message."""


@total_ordering
@dataclass(frozen=True)
class Quantity:
    """An exact quantity in whole nanos, and the format it prints in (from the suffix it was written with)."""

    nanos: int
    format: str = DECIMAL_SI

    @property
    def value(self) -> Fraction:
        return Fraction(self.nanos, _NANOS_PER_UNIT)

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos + other.nanos, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos - other.nanos, self.format)

    def __lt__(self, other: Quantity) -> bool:
        return self.nanos < other.nanos

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.nanos == other.nanos

    def __hash__(self) -> int:
        return hash(self.nanos)

    def __str__(self) -> str:
        return canonical(self)


ZERO = Quantity(0)


def parse_quantity(text: object) -> Quantity:
    """Parse what a JSON body may carry for a quantity (a string or a number), or raise QuantityError."""
    if isinstance(text, str | int | float):
        return _parse_cached(text)
    raise QuantityError(FORMAT_ERROR)


@lru_cache(maxsize=4096, typed=True)
def _parse_cached(text: str | float) -> Quantity:
    """Quota admission re-reads the same few strings ("1", "500m", "1Gi") for every pod it counts."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        text = repr(text)
    if not isinstance(text, str):
        raise QuantityError(FORMAT_ERROR)
    text = text.strip()
    if not text:
        raise QuantityError(FORMAT_ERROR)
    negative, mantissa, suffix = _split(text)
    base, exponent, fmt = _interpret(suffix)
    if mantissa is None:
        raise QuantityError(NUMERIC_ERROR)
    value = mantissa * Fraction(base) ** exponent if exponent >= 0 else mantissa / Fraction(base) ** -exponent
    if value != 0 and value.denominator != 1 and (value / _NANO).denominator != 1:
        value = Fraction(-((-value) // _NANO)) * _NANO
    if fmt != DECIMAL_EXPONENT and value > _MAX:
        value = _MAX
    nanos = int(value * _NANOS_PER_UNIT)
    return Quantity(-nanos if negative else nanos, fmt)


def _split(text: str) -> tuple[bool, Fraction | None, str]:
    """Sign, unsigned number (None if it has no digits) and suffix, following the real parser's scan.

    Like the real one it accepts "1.G", and a bare sign as zero.
    """
    pos, end = 0, len(text)
    negative = text[0] == "-"
    if text[0] in "+-":
        pos = 1
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    whole = text[start:pos]
    fraction = ""
    dot = pos < end and text[pos] == "."
    if dot:
        pos += 1
        fraction_start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        fraction = text[fraction_start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_ERROR)
    if not whole and not fraction:
        return negative, (Fraction(0) if start == end else None), text[suffix_start:]
    mantissa = Fraction(int(whole or "0") * 10 ** len(fraction) + int(fraction or "0"), 10 ** len(fraction))
    return negative, mantissa, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        unsigned = digits[1:] if digits[0] in "+-" else digits
        if unsigned and all(c in _DIGITS for c in unsigned):
            exponent = int(digits)
            if abs(exponent) > _MAX_EXPONENT:
                raise QuantityError(NUMERIC_ERROR)
            return 10, exponent, DECIMAL_EXPONENT
    raise QuantityError(SUFFIX_ERROR)


def canonical(quantity: Quantity) -> str:
    """The real ``Quantity.String()``: largest suffix keeping an integer mantissa."""
    value = quantity.value
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    value = abs(value)
    fmt = quantity.format
    if fmt == BINARY_SI and (value < 1024 or value.denominator != 1):
        fmt = DECIMAL_SI
    if fmt == BINARY_SI:
        number, times = value.numerator, 0
        while number >= 1024 and number % 1024 == 0 and times < 6:
            number //= 1024
            times += 1
        return f"{sign}{number}{_BINARY_NAMES[times * 10]}"
    number, exponent = _decimal_parts(value)
    shift = exponent % 3
    number, exponent = number * 10**shift, exponent - shift
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{number}" + (f"e{exponent}" if exponent else "")
    while exponent > 18:
        number, exponent = number * 1000, exponent - 3
    return f"{sign}{number}{_DECIMAL_NAMES[exponent]}"


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """(mantissa, exponent) with value == mantissa * 10**exponent and no trailing zeros in the mantissa."""
    exponent = 0
    while value.denominator != 1:
        value *= 10
        exponent -= 1
    number = value.numerator
    while number % 10 == 0:
        number //= 10
        exponent += 1
    return number, exponent
