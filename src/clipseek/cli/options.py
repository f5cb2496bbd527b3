"""Options shared by the commands that read image files: what one file may cost."""

from __future__ import annotations

from typing import Optional

import typer

from clipseek.core.files import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS


def max_pixels_option() -> Optional[int]:
    return typer.Option(None, "--max-pixels", min=1, metavar="N",
                        help=f"Refuse images of more than N pixels, from their header, before decoding "
                             f"(default {DEFAULT_MAX_PIXELS:,}).")


def max_file_mb_option() -> Optional[float]:
    return typer.Option(None, "--max-file-mb", metavar="MB",
                        help=f"Refuse files larger than MB megabytes without reading them "
                             f"(default {DEFAULT_MAX_FILE_MB}).")


def limits(max_pixels: int | None, max_file_mb: float | None):
    from clipseek.core.images import ImageLimits

    return ImageLimits.from_options(max_pixels, max_file_mb)
