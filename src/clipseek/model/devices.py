"""Which device a model runs on: the names clipseek accepts, and whether this machine has the one asked.

`check_device_name` needs no torch (the CLI checks --device as it parses); `resolve_device` asks torch,
and refuses a device this machine lacks with one line naming the ones it has, before any weights load.
"""

from __future__ import annotations

import re

from clipseek.errors import UsageError

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::\d{1,3})?")


def check_device_name(device: str) -> str:
    """`device` when it is one of DEVICE_NAMES (N: a GPU's index), else UsageError."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device.strip()):
        raise UsageError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_NAMES)}")
    return device.strip()


def available_devices() -> list[str]:
    """The devices torch can use here: cpu, then cuda:0 ... and mps where present."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def resolve_device(device: str = "auto") -> str:
    """The device to run on: `auto` picks cuda, else mps, else cpu; a named one must exist here
    (UsageError naming what this machine has)."""
    device = check_device_name(device)
    found = available_devices()
    if device == "auto":
        return "cuda" if "cuda:0" in found else "mps" if "mps" in found else "cpu"
    if device in found or (device == "cuda" and "cuda:0" in found):
        return device
    raise UsageError(f"--device {device} is not available on this machine; it has: {', '.join(found)}")
