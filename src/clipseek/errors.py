"""Typed exceptions. The library raises these; only the CLI turns them into exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class ClipseekError(Exception):
    """An expected failure with a message meant for the user (one line)."""


class UsageError(ClipseekError):
    """Bad arguments: missing paths, empty label lists, unknown template sets."""


class BusyError(ClipseekError):
    """Another process is writing the same gallery or shard folder (one writer at a time): exit 1."""


class ModelLoadError(ClipseekError):
    """A checkpoint could not be loaded (offline, not cached, not a CLIP-like model): exit 1."""


class ModelNotFound(ModelLoadError, UsageError):
    """The model named on the command line does not exist (no such directory): a bad argument, exit 2."""


class ModelMismatchError(UsageError):
    """The model given is not the one a gallery or shard folder was made with: exit 2."""


class ImageError(ClipseekError):
    """One image could not be read. Carries the path and a short reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class VideoError(ImageError):
    """One video could not be read (no video stream, unknown codec, corrupt data, over a limit)."""


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, and why (a value, not an exception: the run goes on)."""

    path: str
    reason: str
