"""Open and probe one video with PyAV, trusting nothing its header says.

`open_video` reads only a regular file (`core.files.open_regular`: a FIFO or a device named like a
video is refused with its kind, and the descriptor checked is the one PyAV reads through), with
PyAV's open and read timeouts. `probe` then checks the header (a video stream that is not cover art,
a decoder for its codec, a frame size within `max_pixels`), decodes the first frame (so that "the
codec is known but the data is corrupt" is found here, with its reason) and measures where the data
really ends (a seek to the end the header claims, then the last packets' times): a header claiming 100
hours for 6 seconds of data is corrected, with a note. Every failure is a `VideoError(path, reason)`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

from clipseek.core.files import DEFAULT_MAX_PIXELS, open_regular
from clipseek.errors import ImageError, VideoError

MAX_MOMENTS = 600       # moments per video at most (a longer video gets them spread out)
BUDGET_S = 600.0        # wall-clock seconds one video may take to sample, checked between packets
OPEN_TIMEOUT_S = 10.0   # PyAV's timeout on opening, and on each read that waits for data
FIRST_FRAME_PACKETS = 500  # packets read for the first decodable frame before the file is given up
END_PACKETS = 300       # packets read after the seek to the end, to find where the data ends
NO_LIMIT = 1 << 62
INSTALL_HINT = "video support needs PyAV: pip install 'clipseek[video]'"


@dataclass(frozen=True)
class VideoLimits:
    """What one video may cost: pixels per frame (the header's size and every decoded frame's),
    moments kept, wall-clock seconds, and PyAV's open/read timeout. No byte limit: a video is read
    as a stream, never held."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_moments: int = MAX_MOMENTS
    budget_s: float = BUDGET_S
    timeout_s: float = OPEN_TIMEOUT_S


DEFAULT_VIDEO_LIMITS = VideoLimits()


@dataclass(frozen=True)
class VideoInfo:
    path: str
    container: str               # the demuxer's name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi")
    codec: str                   # the video decoder's name ("h264", "hevc", "vp9", "av1", "mjpeg")
    width: int                   # as shown: rotation and pixel aspect applied
    height: int
    rotation: int                # degrees counter-clockwise the frames are turned to be shown: 0/90/180/270
    fps: float | None            # average frame rate, when the header gives a plausible one
    duration_s: float | None     # where the data ends (measured; the header's claim when not measurable)
    claimed_duration_s: float | None
    taken_ns: int | None         # capture time from the container's metadata (creation time)
    has_audio: bool
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("container", "codec", "width", "height", "rotation", "fps",
                                               "duration_s", "taken_ns", "has_audio")} | {"notes": list(self.notes)}


def import_av(path: str = ""):
    try:
        import av
    except ImportError:
        raise VideoError(path, INSTALL_HINT) from None
    return av


def _av_reason(e: Exception) -> str:
    """FFmpeg's error in words: its message, without the call name PyAV appends."""
    text = getattr(e, "strerror", None) or str(e)
    return str(text).strip() or type(e).__name__


@contextlib.contextmanager
def open_video(path: str, limits: VideoLimits = DEFAULT_VIDEO_LIMITS) -> Iterator:
    """(PyAV input container, its video stream), both checked (`check_header`); VideoError else."""
    av = import_av(path)
    try:
        f, _ = open_regular(path, NO_LIMIT)
    except ImageError as e:
        raise VideoError(path, e.reason) from None
    with f:
        try:
            container = av.open(f, timeout=(limits.timeout_s, limits.timeout_s), buffer_size=1 << 16)
        except av.error.ExitError:
            raise VideoError(path, f"timed out opening (over {limits.timeout_s:g} s)") from None
        except (av.FFmpegError, ValueError, OSError) as e:
            raise VideoError(path, f"not a readable video: {_av_reason(e)}") from None
        try:
            yield container, check_header(path, container, limits)
        finally:
            container.close()


def check_header(path: str, container, limits: VideoLimits):
    """The video stream to read, or VideoError: audio only, cover art only, unknown codec, no or too
    large a frame size."""
    import av

    cover = getattr(getattr(av.stream, "Disposition", None), "attached_pic", 0)  # PyAV 13+
    streams = [s for s in container.streams.video if not (cover and s.disposition & cover)]
    if not streams:
        audio = "audio only" if container.streams.audio else "no stream of any known kind"
        raise VideoError(path, f"no video stream ({audio})")
    stream = streams[0]
    ctx = stream.codec_context
    name = getattr(ctx, "name", None) if ctx is not None else None
    if not name or name == "none":
        raise VideoError(path, "unknown video codec (no decoder for it)")
    try:
        av.Codec(name, "r")
    except Exception:
        raise VideoError(path, f"no decoder for the video codec {name!r}") from None
    w, h = ctx.width, ctx.height
    if not w or not h:
        raise VideoError(path, f"no frame size in the header ({w}x{h})")
    check_pixels(path, w, h, limits.max_pixels)
    return stream


def check_pixels(path: str, w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise VideoError(path, f"frame size {w}x{h} exceeds the limit of {max_pixels:,} pixels (--max-pixels)")


def stream_seconds(stream, ts: int | None) -> float | None:
    """A timestamp of `stream` in seconds from its start, None when missing or not finite."""
    if ts is None or stream.time_base is None:
        return None
    t = float((ts - (stream.start_time or 0)) * stream.time_base)
    return t if math.isfinite(t) else None


def claimed_duration(container, stream) -> float | None:
    d = stream_seconds(stream, (stream.start_time or 0) + stream.duration) if stream.duration else None
    if d is None and container.duration:
        d = container.duration / 1e6
    return d if d is not None and math.isfinite(d) and d > 0 else None


def probe(path: str, limits: VideoLimits = DEFAULT_VIDEO_LIMITS) -> VideoInfo:
    """What the video is, checked: VideoInfo, or VideoError(path, reason)."""
    deadline = time.monotonic() + limits.budget_s
    with open_video(path, limits) as (container, stream):
        claimed = claimed_duration(container, stream)
        frame = first_frame(path, container, stream, limits, deadline)
        rotation = frame_rotation(frame)
        sar = stream.sample_aspect_ratio
        w = round(frame.width * float(sar)) if sar and 0.1 < float(sar) < 10 else frame.width
        w, h = (frame.height, w) if rotation in (90, 270) else (w, frame.height)
        fps = float(stream.average_rate) if stream.average_rate else None
        base = dict(container=container.format.name, codec=stream.codec_context.name, width=w, height=h,
                    rotation=rotation, fps=fps if fps and 0 < fps <= 1000 else None,
                    taken_ns=taken_ns(container, stream), has_audio=bool(container.streams.audio))
    with open_video(path, limits) as (container, stream):
        end = data_end(container, stream, claimed)
    duration, notes = reconcile(claimed, end)
    return VideoInfo(path, duration_s=duration, claimed_duration_s=claimed, notes=notes, **base)


def first_frame(path: str, container, stream, limits: VideoLimits, deadline: float):
    """The first decodable frame (its real size checked), or VideoError with FFmpeg's reason."""
    import av

    error = "no frame could be decoded"
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= FIRST_FRAME_PACKETS:
                break
            if time.monotonic() > deadline:
                raise VideoError(path, f"no frame decoded within the time budget of {limits.budget_s:g} s")
            try:
                for frame in packet.decode():
                    check_pixels(path, frame.width, frame.height, limits.max_pixels)
                    return frame
            except av.FFmpegError as e:
                error = f"corrupt video data: {_av_reason(e)}"
    except av.error.ExitError:
        raise VideoError(path, f"timed out reading (over {limits.timeout_s:g} s)") from None
    except av.FFmpegError as e:
        error = f"corrupt or truncated container: {_av_reason(e)}"
    raise VideoError(path, error)


def frame_rotation(frame) -> int:
    """The frame's display rotation (its display matrix; `VideoFrame.rotation`, counter-clockwise), to
    the nearest quarter turn: 0, 90, 180, 270. A PyAV too old to read it gives 0."""
    try:
        r = float(getattr(frame, "rotation", 0) or 0)
    except Exception:
        return 0
    return int(round(r / 90.0)) % 4 * 90 if math.isfinite(r) else 0


def data_end(container, stream, claimed: float | None) -> float | None:
    """Where the data really ends, in seconds: seek to the claimed end (or far) and read the last
    packets' times. None when the stream cannot seek or nothing could be read there."""
    import av

    far = claimed if claimed is not None else 1e9
    try:
        target = (stream.start_time or 0) + int(far / stream.time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        end = None
        for n, packet in enumerate(container.demux(stream)):
            if n >= END_PACKETS:
                break
            t = stream_seconds(stream, packet.pts if packet.pts is not None else packet.dts)
            if t is not None:
                t += float((packet.duration or 0) * stream.time_base)
                end = t if end is None else max(end, t)
        return end
    except (av.FFmpegError, OverflowError, ValueError, ZeroDivisionError):
        return None


def reconcile(claimed: float | None, end: float | None) -> tuple[float | None, tuple[str, ...]]:
    """The duration to plan with, and a note when the header and the data disagree."""
    if end is None:
        return claimed, (() if claimed is not None else ("duration unknown (not in the header, not measurable)",))
    if claimed is None:
        return end, ()
    if abs(end - claimed) > max(1.0, 0.1 * claimed):
        return end, (f"the header claims {claimed:,.1f} s; the data ends at {end:,.1f} s",)
    return claimed, ()


CREATION_KEYS = ("com.apple.quicktime.creationdate", "creation_time", "date")


def taken_ns(container, stream) -> int | None:
    """Capture time from the metadata (QuickTime's creationdate with its offset, else creation_time,
    UTC when no offset is given), ns since the epoch; None when missing, unparsable or a zero date."""
    for meta in (container.metadata, stream.metadata):
        for key in CREATION_KEYS:
            text = str(meta.get(key, "")).strip()
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
            dt = dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
            if dt.year > 1970:  # muxers write 1904 or 1970 when they had no date
                return round(dt.timestamp() * 1e6) * 1000
    return None
