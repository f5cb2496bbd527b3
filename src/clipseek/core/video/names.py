"""Which files are videos, by name: the extensions, the media kind of a name, the folder walkers.

Image commands keep `core.images.walk_images` (images only); these are for the commands that take
videos (`classify VIDEO`, and the gallery next)."""

from __future__ import annotations

import os
from pathlib import Path

from clipseek.core.images import has_image_name, walk_named

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})


def has_video_name(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS and not os.path.basename(name).startswith(".")


def media_kind(name: str) -> str | None:
    """"image", "video" or None (neither), from the file's name alone."""
    if has_image_name(os.path.basename(name)):
        return "image"
    return "video" if has_video_name(name) else None


def walk_videos(root: str | os.PathLike) -> list[str]:
    """All entries with a video extension under `root` (the rules of `core.images.walk_images`)."""
    return walk_named(root, has_video_name)


def walk_media(root: str | os.PathLike) -> list[str]:
    """Images and videos under `root`, one sorted list (`media_kind` tells them apart)."""
    return walk_named(root, lambda name: media_kind(name) is not None)
