"""Options shared by the commands, declared once: the model choice (`--model`, `--device`, `--dtype`,
`--backend`), `--batch-size`, `--format`, what one file may cost, and the checks every number and device
name goes through where it enters (`finite`, `check_device_option`), so no command repeats them."""

from __future__ import annotations

from typing import Any

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


def device_option(help: str = "auto, cpu, cuda, cuda:N, mps.") -> Any:
    return typer.Option("auto", "--device", help=help, callback=check_device_option)


def max_pixels_option() -> Any:
    return typer.Option(None, "--max-pixels", min=1, metavar="N",
                        help=f"Refuse images of more than N pixels, from their header, before decoding "
                             f"(default {DEFAULT_MAX_PIXELS:,}).")


def max_file_mb_option() -> Any:
    return typer.Option(None, "--max-file-mb", metavar="MB", callback=finite(0, lo_open=True),
                        help=f"Refuse files larger than MB megabytes without reading them "
                             f"(default {DEFAULT_MAX_FILE_MB}).")


def limits(max_pixels: int | None, max_file_mb: float | None):
    from clipseek.core.images import ImageLimits

    return ImageLimits.from_options(max_pixels, max_file_mb)

DB_HELP = "Gallery database (SQLite). Default: ./clipseek.db"
BACKEND_HELP = ("torch, onnx (ONNX Runtime on the CPU; a checkpoint is exported once into the cache) "
                "or auto (onnx on the CPU when installed, for fp32/int8; else torch).")
DTYPE_HELP = "auto (fp32 on CPU, fp16 on CUDA), fp32, fp16, bf16 or int8 (CPU)."


def model_option(help: str = "Hub id, checkpoint dir, ONNX export dir or 'clipseek-demo'.",
                 default: str | None = None) -> Any:
    return typer.Option(default, "--model", "-m", help=help)


def dtype_option(help: str = DTYPE_HELP) -> Any:
    """--dtype, default auto. Where a database records its model (index, search), `auto` means its own
    dtype: `spec_dtype` turns it into the ModelSpec's "not chosen"."""
    return typer.Option("auto", "--dtype", help=help)


def spec_dtype(dtype: str) -> str | None:
    return None if dtype == "auto" else dtype


def backend_option(more: str = "") -> Any:
    return typer.Option("auto", "--backend", help=BACKEND_HELP + (" " + more if more else ""))


def batch_size_option(default: int = 32, minimum: int = 1) -> Any:
    return typer.Option(default, "--batch-size", min=minimum, help="Images encoded per batch.")


def format_option(*choices: str, what: str = "") -> Any:
    """--format / -f with its choices named in the help (the command checks it with check_format)."""
    names = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    return typer.Option(choices[0], "--format", "-f", help=f"{what}{names}.")
