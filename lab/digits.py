"""Numbers that users write as text (command-line arguments, URL paths, `key=value` options):
plain ASCII decimal, one spelling per value.

Python's int() also takes '+80', ' 80', '8_0' and digits of other scripts ('٨٠'), and float()
'nan', 'inf' and '1e3'. A port or an id written that way is a typo or a trick, and two
spellings of one id (`/v1/services/0_1` and `/v1/services/1`) hide which one was meant.
"""

from __future__ import annotations

import argparse
import math
import re

_INTEGER = re.compile(r"0|[1-9][0-9]{0,19}")
_REAL = re.compile(r"(0|[1-9][0-9]{0,19})(\.[0-9]{1,20})?")


def parse_int(text: str, low: int | None = None, high: int | None = None) -> int:
    """TEXT as a decimal integer (ASCII digits, no sign, no leading zero) in LOW..HIGH.
    ValueError says what is wrong."""
    if not isinstance(text, str) or not _INTEGER.fullmatch(text):
        raise ValueError(f"'{_shown(text)}' is not a decimal number (digits 0-9 only)")
    return _in_range(int(text), low, high)


def parse_real(text: str, low: float | None = None, high: float | None = None) -> float:
    """TEXT as a decimal number with an optional fraction (1, 0.5), in LOW..HIGH."""
    if not isinstance(text, str) or not _REAL.fullmatch(text):
        raise ValueError(f"'{_shown(text)}' is not a decimal number (digits 0-9 and one "
                         "'.')")
    value = float(text)
    assert math.isfinite(value)
    return _in_range(value, low, high)


def _in_range(value, low, high):
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "" if low is None else low
        hi = "" if high is None else high
        raise ValueError(f"{value} is out of range ({lo}..{hi})")
    return value


def _shown(text: object) -> str:
    """TEXT for an error message: control characters escaped, long text cut."""
    s = text if isinstance(text, str) else repr(text)
    s = s.encode("unicode_escape").decode("ascii")
    return s if len(s) <= 40 else s[:37] + "..."


def int_arg(low: int | None = None, high: int | None = None):
    """An argparse type: parse_int with its message."""
    def convert(text: str) -> int:
        try:
            return parse_int(text, low, high)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = "integer"
    return convert


def real_arg(low: float | None = None, high: float | None = None):
    """An argparse type: parse_real with its message."""
    def convert(text: str) -> float:
        try:
            return parse_real(text, low, high)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = "number"
    return convert
