"""Videos for the tests, generated on the spot with PyAV (nothing committed): the shapes clip in each
codec the FFmpeg of PyAV can encode, and the hostile files (corrupt, truncated, empty, audio only,
a header claiming a 16K frame or 100 hours, an unknown codec)."""

from __future__ import annotations

import os
import struct
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

from clipseek.data.synthetic_video import (
    H264,
    HEVC,
    MJPEG,
    MPEG4,
    VP9,
    has_encoder,
    shapes_clip,
    write_audio_only,
    write_video,
)

VARIANTS = {"h264-mp4": H264, "mpeg4-mp4": MPEG4, "vp9-webm": VP9, "mjpeg-avi": MJPEG, "hevc-mp4": HEVC}
LABELS = ["plain background", "red star", "blue circle", "green triangle"]


def variant(name: str):
    v = VARIANTS[name]
    if not has_encoder(v[1]):
        pytest.skip(f"PyAV's FFmpeg has no {v[1]} encoder")
    return v


def clip(folder, name: str = "h264-mp4", stem: str = "shapes", **kw) -> str:
    """The shapes clip (plain 0-2 s, red star 2-4 s, blue circle 4-6 s) in variant `name`."""
    v = variant(name)
    return shapes_clip(os.path.join(folder, f"{stem}-{name}{v[0]}"), v, **kw)


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, (old, data.count(old))
    return data.replace(old, new)


def mkv_rawvideo(path: str, w: int = 256, h: int = 256) -> str:
    frames = (np.zeros((h, w, 3), np.uint8) for _ in range(3))
    return write_video(path, frames, 10, "rawvideo")


def hostile(folder) -> dict[str, tuple[str, str]]:
    """name -> (path, a word the reason must contain)."""
    j = lambda name: os.path.join(folder, name)  # noqa: E731
    out = {}
    with open(j("corrupt.mp4"), "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, 6000, dtype=np.uint8).tobytes())
    out["corrupt bytes"] = (j("corrupt.mp4"), "not a readable video")
    good = open(clip(folder, "h264-mp4"), "rb").read()
    open(j("truncated.mp4"), "wb").write(good[: len(good) // 2])  # PyAV writes the index (moov) last
    out["truncated mp4"] = (j("truncated.mp4"), "not a readable video")
    open(j("empty.mp4"), "wb").close()
    out["zero-length"] = (j("empty.mp4"), "empty file")
    out["audio only"] = (write_audio_only(j("audio.m4v")), "audio only")
    raw = open(mkv_rawvideo(j("raw.mkv")), "rb").read()  # PixelWidth/PixelHeight 256: "B0 82 01 00"
    raw = _replace_once(raw, b"\xb0\x82\x01\x00", b"\xb0\x82\x3c\x00")  # 15360
    raw = _replace_once(raw, b"\xba\x82\x01\x00", b"\xba\x82\x21\xc0")  # 8640
    open(j("16k.mkv"), "wb").write(raw)
    out["16K frame in the header"] = (j("16k.mkv"), "15360x8640 exceeds the limit")
    mkv = open(shapes_clip(j("h264.mkv"), H264), "rb").read()
    open(j("codec.mkv"), "wb").write(_replace_once(mkv, b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/QQQ"))
    out["unknown codec"] = (j("codec.mkv"), "unknown video codec")
    if hasattr(os, "mkfifo"):
        os.mkfifo(j("fifo.mp4"))
        out["FIFO"] = (j("fifo.mp4"), "a FIFO")
    return out


def claims_100_hours(folder) -> str:
    """The 6-s shapes clip in MKV whose Segment Duration (ms, a double) says 100 hours."""
    data = open(shapes_clip(os.path.join(folder, "six.mkv"), H264), "rb").read()
    i = data.index(b"\x44\x89\x88")
    assert struct.unpack(">d", data[i + 3:i + 11]) == (6000.0,)
    path = os.path.join(folder, "claims-100h.mkv")
    open(path, "wb").write(data[:i + 3] + struct.pack(">d", 3.6e8) + data[i + 11:])
    return path


def really_100_hours(folder) -> str:
    """600 distinct frames, one every 10 minutes: a real 100-hour video of 64x64 pixels."""
    frames = (np.full((64, 64, 3), (i * 37) % 256, np.uint8) for i in range(600))
    return write_video(os.path.join(folder, "100h.mp4"), frames, Fraction(1, 600), "libx264",
                       options={"preset": "ultrafast"}, gop=1)
