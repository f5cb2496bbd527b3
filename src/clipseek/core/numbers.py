"""The one check for a number the user gives (a CLI option, a library argument): finite and in range.

`float("nan")` passes every `<` and `>` test (each comparison is False), so a range check alone lets NaN
through, and `inf` is a float too; both then turn every weight, score or size they touch into NaN.
`check_number` refuses them, and values out of range, with one line naming the option.
"""

from __future__ import annotations

import math
from numbers import Real

from clipseek.errors import UsageError


def describe_range(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                   hi_open: bool = False) -> str:
    """'above 0', 'from 0 to 1', 'at least 1 and below 10', ... (empty when unbounded)."""
    low = None if lo is None else f"{'above' if lo_open else 'at least'} {lo:g}"
    high = None if hi is None else f"{'below' if hi_open else 'at most'} {hi:g}"
    if low and high and not lo_open and not hi_open:
        return f"from {lo:g} to {hi:g}"
    return " and ".join(p for p in (low, high) if p)


def check_number(value, name: str, lo: float | None = None, hi: float | None = None, *,
                 lo_open: bool = False, hi_open: bool = False, integer: bool = False):
    """`value` when it is a finite number within [lo, hi] (an end open when `*_open`); else UsageError
    naming `name`: "--lr must be a finite number above 0, not nan"."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        ok = not ((lo is not None and (value <= lo if lo_open else value < lo))
                  or (hi is not None and (value >= hi if hi_open else value > hi)))
    if not ok:
        kind = "a whole number" if integer else "a finite number"
        bounds = describe_range(lo, hi, lo_open, hi_open)
        raise UsageError(f"{name} must be {kind}{' ' + bounds if bounds else ''}, not {value!r}")
    return value
