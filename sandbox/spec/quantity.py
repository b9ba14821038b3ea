"""Kubernetes resource quantities (`apim: pkg/api/resource/quantity.go`), in integer arithmetic.

Grammar: a signed decimal number followed by one suffix: binary `Ki Mi Gi Ti Pi Ei`, decimal
`n u m "" k M G T P E`, or a decimal exponent `e<n>`/`E<n>`. Case matters (`128mi`, `1gb`, `1 Gi` are
invalid). The value is kept in thousandths, rounded up, as the API server rounds to milli precision.
"""

from __future__ import annotations

from sandbox.lazyre import LazyPattern
from sandbox.spec.model import Quantity

# The API server quotes this regular expression in its error message.
QUANTITY_REGEX = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
QUANTITY_ERROR = f"quantities must match the regular expression '{QUANTITY_REGEX}'"

_NUMBER = LazyPattern(r"(?s)([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(.*)\Z")  # (?s): DOTALL
_EXPONENT = LazyPattern(r"[eE]([+-]?[0-9]+)\Z")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
# The API server caps a quantity's magnitude at this many base units (quantity.go maxAllowed):
# `memory: 1e40` is accepted and reads 9223372036854775807.
MAX_VALUE = 2**63 - 1
# An exponent must fit Go's int32 (the suffix parser's type); beyond one that saturates either way
# the arithmetic is skipped, which keeps it bounded for hostile input.
_INT32 = 2**31
_SATURATED = 23  # 10**23 > MAX_VALUE * 1000: any non-zero mantissa saturates
_MAX_DIGITS = 64  # far past any real quantity; keeps int() below Python's 4,300-digit limit


def parse_quantity(text: str) -> Quantity | None:
    """The quantity `text` denotes, or None when it is not a valid quantity."""
    m = _NUMBER.match(text)
    if m is None:
        return None
    sign, number, suffix = m.groups()
    if len(number) > _MAX_DIGITS:
        return None
    whole, _, frac = number.partition(".")
    mantissa = int(whole + frac or "0")
    scale = -len(frac)  # value = mantissa * 10**scale * multiplier
    two_power = 0
    if suffix in _BINARY:
        two_power = _BINARY[suffix]
    elif suffix in _DECIMAL:
        scale += _DECIMAL[suffix]
    else:
        e = _EXPONENT.match(suffix)
        if e is None or len(e.group(1)) > 12 or not -_INT32 <= int(e.group(1)) < _INT32:
            return None
        scale += int(e.group(1))
    numerator = mantissa * 1000 * (1 << two_power)
    if numerator == 0:
        milli = 0
    elif scale >= _SATURATED:
        milli = MAX_VALUE * 1000
    elif scale >= 0:
        milli = numerator * 10**scale
    elif -scale > _MAX_DIGITS + _SATURATED:
        milli = 1  # a non-zero amount rounds up to the smallest one, never to zero
    else:
        milli = -(-numerator // 10**-scale)  # round up, as the API server does
    milli = min(milli, MAX_VALUE * 1000)  # the cap, on the magnitude: -1e40 reads -MAX_VALUE
    return Quantity(text, -milli if sign == "-" else milli)


def quantity_from_number(value: float) -> Quantity | None:
    """A quantity written as a YAML/JSON number (`cpu: 0.5`, `memory: 1024`)."""
    text = str(value) if isinstance(value, int) else repr(value)
    if "inf" in text or "nan" in text:
        return None
    if "e" in text:  # Python writes 1e-05; the grammar wants digits then an exponent suffix
        mant, _, exp = text.partition("e")
        text = f"{mant}e{int(exp)}"
    return parse_quantity(text)
