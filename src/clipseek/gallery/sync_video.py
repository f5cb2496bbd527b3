"""The video parts of `gallery.sync`: reading a video (a streamed content hash, no pixel: `read_video`)
and embedding one (`embed_video`: its moments sampled by `core.video.sample_moments` while they are
encoded `batch_size` at a time in the caller's thread, so at most a batch of moment pictures is held;
never the video's bytes). A video's file vector is the normalised mean of its moments' vectors.

A renamed, moved, copied or touched video is resolved by its hash like a photo (`sync._Resolver`):
its moments move or are copied with its row, never embedded again."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clipseek.core.video.names import walk_media  # noqa: F401  (sync's walker: images and videos)
from clipseek.errors import ImageError, Skipped

if TYPE_CHECKING:
    from clipseek.model.base import Encoder

VIDEO = "video"  # `sync.Read.decoded` of a video to embed: sampled and embedded in the caller's thread


@dataclass
class EmbeddedVideo:
    width: int               # as shown (rotation and pixel aspect applied)
    height: int
    duration_s: float | None
    taken_ns: int | None     # the container's creation time
    times: list[float]
    shots: list[bool]
    vectors: np.ndarray      # (moments, dim) float32, unit rows
    mean: np.ndarray         # the file's vector: the normalised mean of the moments
    notes: list[str]


def read_video(path: str, skip_decode) -> tuple[int, int, str, str | None] | Skipped:
    """(size, mtime_ns, hash, VIDEO or None when the hash is in `skip_decode`): the bytes are hashed
    1 MiB at a time (`core.files.hash_regular`), only from a regular file."""
    from clipseek.core.files import hash_regular

    try:
        h, st = hash_regular(path)
    except ImageError as e:
        return Skipped(path, e.reason)
    except OSError as e:
        return Skipped(path, f"cannot read: {e.strerror or e}")
    return st.st_size, st.st_mtime_ns, h, None if h in skip_decode else VIDEO


def embed_video(encoder: Encoder, path: str, batch_size: int = 32, limits=None) -> EmbeddedVideo | Skipped:
    """Sample the moments of `path` and encode them; Skipped with the reason when it is no usable video."""
    from clipseek.core.video import DEFAULT_VIDEO_LIMITS, sample_moments

    try:
        sampling = sample_moments(path, limits or DEFAULT_VIDEO_LIMITS)
        times, shots, parts, batch = [], [], [], []
        for m in sampling:
            batch.append(m)
            if len(batch) == batch_size:
                parts.append(_encode(encoder, batch, times, shots))
                batch = []
        if batch:
            parts.append(_encode(encoder, batch, times, shots))
    except ImageError as e:  # VideoError included
        return Skipped(path, e.reason)
    vectors = np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)
    keep = np.isfinite(vectors).all(axis=1)
    if not keep.any():
        return Skipped(path, "no moment could be embedded" if len(vectors) else "no frame could be decoded")
    vectors = vectors[keep]
    times = [t for t, k in zip(times, keep, strict=True) if k]
    shots = [s for s, k in zip(shots, keep, strict=True) if k]
    mean = vectors.mean(axis=0)
    mean = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    info = sampling.info
    return EmbeddedVideo(info.width, info.height, info.duration_s, info.taken_ns, times, shots, vectors, mean,
                         list(sampling.notes))


def _encode(encoder: Encoder, batch, times: list, shots: list) -> np.ndarray:
    times.extend(m.time_s for m in batch)
    shots.extend(m.shot for m in batch)
    return np.asarray(encoder.encode_images([m.image for m in batch]), np.float32).reshape(len(batch), -1)


def insert_video(store, plan, path: str, r, video: EmbeddedVideo, summary) -> None:
    """A video's file row (its vector the mean of its moments) and its moments, in the window's transaction."""
    store.insert_files([(path, r.size, r.mtime_ns, r.hash, video.width, video.height, video.mean,
                         video.taken_ns, None, 1, video.duration_s)])  # phash: none; kind 1: a video
    store.insert_moments(store.last_id(), video.times, video.shots, video.vectors)
    summary.moments += len(video.times)
    summary.notes += [Skipped(path, note) for note in video.notes]
    had = path in plan.known or path in plan.stale
    summary.updated += had
    summary.added += not had


def is_video(path: str) -> bool:
    from clipseek.core.video import has_video_name

    return has_video_name(os.path.basename(path))
