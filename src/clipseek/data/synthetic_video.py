"""Videos with known content, encoded offline with PyAV, for tests and benchmarks.

`shapes_clip` draws the bundled model's shapes (`data.synthetic.render`) in timed segments (by default
a plain background for 2 s, a red star from 2 to 4 s, a blue circle from 4 to 6 s); `write_video`
encodes any frames; `repeat_video` makes a long file from a short one by copying its packets with
shifted timestamps (no re-encoding: a 10-minute 1080p file in seconds). PyAV (`clipseek[video]`) is
imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from clipseek.data.synthetic import render

# (container suffix, encoder, pixel format, encoder options): the variants tests and benchmarks try
H264 = (".mp4", "libx264", "yuv420p", {"preset": "ultrafast"})
MPEG4 = (".mp4", "mpeg4", "yuv420p", {})
VP9 = (".webm", "libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"})
MJPEG = (".avi", "mjpeg", "yuvj420p", {})
HEVC = (".mp4", "libx265", "yuv420p", {"preset": "ultrafast", "x265-params": "log-level=error"})


@dataclass(frozen=True)
class Segment:
    """`seconds` of one picture: a shape ("red star") or None for the plain background."""

    seconds: float
    label: str | None


DEFAULT_SEGMENTS = (Segment(2.0, None), Segment(2.0, "red star"), Segment(2.0, "blue circle"))


def has_encoder(name: str) -> bool:
    import av

    try:
        av.Codec(name, "w")
        return True
    except Exception:
        return False


def segment_picture(label: str | None, size: int, seed: int = 3) -> Image.Image:
    """The picture of one segment: the shape, large, on a plain background (the same background for
    every segment of a clip, so only the shape changes at a cut)."""
    shape = render("red", "star", "large", "plain", seed, size)
    if label is None:
        return Image.new("RGB", shape.size, shape.getpixel((0, 0)))
    colour, name = label.split()
    return render(colour, name, "large", "plain", seed, size)


def shapes_frames(segments: Sequence[Segment], fps: int, size: int, noise: float = 3.0,
                  seed: int = 0) -> Iterable[np.ndarray]:
    """The frames of `segments`, each picture with fresh sensor-like noise (sigma `noise`)."""
    rng = np.random.default_rng(seed)
    for seg in segments:
        base = np.asarray(segment_picture(seg.label, size), dtype=np.float32)
        for _ in range(round(seg.seconds * fps)):
            yield np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)


def write_video(path: str, frames: Iterable[np.ndarray], fps: float = 30, codec: str = "libx264",
                pix_fmt: str = "yuv420p", options: dict | None = None, gop: int | None = None,
                bit_rate: int | None = None, rotation: int | None = None,
                metadata: dict | None = None) -> str:
    """Encode RGB frames (H, W, 3 uint8) into `path` (the container from its suffix)."""
    import av

    frames = iter(frames)
    first = next(frames)
    with av.open(path, "w") as out:
        out.metadata.update(metadata or {})
        s = out.add_stream(codec, rate=Fraction(fps).limit_denominator(100_000))
        s.height, s.width = first.shape[:2]
        s.pix_fmt = pix_fmt
        s.options = dict(options or {})
        if gop:
            s.codec_context.gop_size = gop
        if bit_rate:
            s.bit_rate = bit_rate
        if rotation:
            s.set_display_rotation(rotation)
        for arr in _chain(first, frames):
            for packet in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    return path


def _chain(first, rest):
    yield first
    yield from rest


def shapes_clip(path: str, variant=H264, segments: Sequence[Segment] = DEFAULT_SEGMENTS, fps: int = 30,
                size: int = 128, gop: int | None = None, **kw) -> str:
    """A clip of the shapes in `segments` encoded as `variant` (H264, MPEG4, VP9, MJPEG, HEVC)."""
    _, codec, pix_fmt, options = variant
    return write_video(path, shapes_frames(segments, fps, size), fps, codec, pix_fmt, options, gop, **kw)


def write_audio_only(path: str, seconds: float = 2.0, rate: int = 16000) -> str:
    """A file with one AAC audio stream and no video."""
    import av

    with av.open(path, "w") as out:
        a = out.add_stream("aac", rate=rate)
        for i in range(int(seconds * rate / 1024)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, i * 1024
            for packet in a.encode(frame):
                out.mux(packet)
        for packet in a.encode():
            out.mux(packet)
    return path


def repeat_video(src: str, dst: str, times: int) -> str:
    """`src`'s video packets `times` over into `dst`, timestamps shifted each round: a long file at the
    cost of copying bytes (content repeats; decoding and seeking it costs what a real file costs)."""
    import av

    with av.open(src) as inp, av.open(dst, "w") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        packets = [(bytes(p), p.pts, p.dts, p.duration, p.is_keyframe) for p in inp.demux(ist) if p.size]
        span = max(pts + (d or 0) for _, pts, _, d, _ in packets) - min(pts for _, pts, _, _, _ in packets)
        for k in range(times):
            for data, pts, dts, duration, key in packets:
                p = av.Packet(data)
                p.pts, p.dts, p.duration, p.is_keyframe = pts + k * span, dts + k * span, duration, key
                p.time_base, p.stream = ist.time_base, ost
                out.mux(p)
    return dst
