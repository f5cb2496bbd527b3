"""Options shared by the commands: what one file may cost, and the checks every number and device
name goes through where it enters (`finite`, `check_device_option`), so no command repeats them."""

from __future__ import annotations

from typing import Optional

import typer

from clipseek.core.files import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS
from clipseek.core.numbers import check_number

SEED_MAX = 2 ** 63 - 1  # torch's generators take a signed 64-bit seed; NumPy's a non-negative one


def finite(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False):
    """A Typer callback: the option's value (or each value of a repeated one) must be a finite number
    within [lo, hi] (`core.numbers.check_number`); else one line naming the option, exit 2."""
    def check(ctx: typer.Context, param: typer.CallbackParam, value):
        if value is None or ctx.resilient_parsing:
            return value
        name = max(param.opts, key=len)
        for v in value if isinstance(value, (list, tuple)) else (value,):
            check_number(v, name, lo, hi, lo_open=lo_open, hi_open=hi_open)
        return value
    return check


def check_device_option(ctx: typer.Context, param: typer.CallbackParam, value):
    """A Typer callback for --device: a name torch knows for this job (auto, cpu, cuda, cuda:N, mps),
    checked without importing torch; whether the machine has it is checked where the model loads."""
    if value is not None and not ctx.resilient_parsing:
        from clipseek.model.devices import check_device_name

        check_device_name(value)
    return value


def device_option(help: str = "auto, cpu, cuda, cuda:N, mps.") -> str:
    return typer.Option("auto", "--device", help=help, callback=check_device_option)


def max_pixels_option() -> Optional[int]:
    return typer.Option(None, "--max-pixels", min=1, metavar="N",
                        help=f"Refuse images of more than N pixels, from their header, before decoding "
                             f"(default {DEFAULT_MAX_PIXELS:,}).")


def max_file_mb_option() -> Optional[float]:
    return typer.Option(None, "--max-file-mb", metavar="MB", callback=finite(0, lo_open=True),
                        help=f"Refuse files larger than MB megabytes without reading them "
                             f"(default {DEFAULT_MAX_FILE_MB}).")


def limits(max_pixels: int | None, max_file_mb: float | None):
    from clipseek.core.images import ImageLimits

    return ImageLimits.from_options(max_pixels, max_file_mb)

DB_HELP = "Gallery database (SQLite). Default: ./clipseek.db"
