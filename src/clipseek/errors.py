"""Typed exceptions. The library raises these; only the CLI turns them into exit codes."""

from __future__ import annotations


class ClipseekError(Exception):
    """An expected failure with a message meant for the user (one line)."""


class UsageError(ClipseekError):
    """Bad arguments: missing paths, empty label lists, unknown template sets."""


class ModelLoadError(ClipseekError):
    """A checkpoint could not be loaded (missing, offline, not a CLIP-like model)."""


class ImageError(ClipseekError):
    """One image could not be read. Carries the path and a short reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
