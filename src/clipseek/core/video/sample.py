"""Moments of a video: frames at shot changes and at least one every `EVERY_S` seconds, one at a time.

The rule (`sample_moments`; the numbers are the module's constants):

- Candidates are frames at least `step` apart (a quarter of the minimum gap: 0.25 s). Only keyframes
  are decoded where keyframes come often enough (a phone's video has one every 0.5-2 s; the others'
  packets are read and dropped, never decoded); where the next keyframe (the container's index tells
  when) comes more than `EVERY_S / 4` after the next moment is due (x264's default spacing: 250
  frames), the frames from a keyframe on are decoded (non-reference frames skipped) until no moment
  falls due before the next keyframe.
- A candidate becomes a moment when it is the first, or a shot change (`shots.SHOT_THRESHOLD`) at
  least `MIN_GAP_S` after the last cut's moment (at once after any other moment), or when `EVERY_S`
  less a step has passed since the last moment: a moment every 2 s at least (2.5 s where keyframes
  are that far apart), at most about one a second.
- At most `max_moments` (600) a video: a video longer than 600 x `MIN_GAP_S` (10 min) gets its gaps
  stretched to duration / 600, so that the moments cover all of it; when candidates are over
  `SEEK_GAP_S` apart (a video over 20 hours), the reader seeks to each instead of reading through.
- A moment's picture is `MOMENT_SIZE` px on its short side (never enlarged), turned as the display
  matrix says, with the pixel aspect applied. Decoders that can decode at a reduced size (MJPEG,
  MPEG-1/2/4 Part 2: `LOWRES_DECODERS`) do so, down to the largest reduction that keeps that size;
  H.264, HEVC, VP9 and AV1 cannot, hence keyframes only.

Memory is bounded: one moment is yielded at a time; nothing is kept but the last candidate's picture.
Time is bounded: a wall-clock budget per file (`VideoLimits.budget_s`), checked between packets, and
PyAV's read timeout; Ctrl-C (KeyboardInterrupt) stops between two packets, and `cancel` (a
`threading.Event`) stops a sampling run in another thread. A problem after the first moment (corrupt
or truncated data, a budget or the cap reached) ends the run with a note; before it, VideoError.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image

from clipseek.core.video.probe import (
    DEFAULT_VIDEO_LIMITS,
    VideoLimits,
    _av_reason,
    check_pixels,
    frame_rotation,
    open_video,
    probe,
    stream_seconds,
)
from clipseek.core.video.shots import Picker, Plan, signature
from clipseek.errors import VideoError

EVERY_S = 2.0          # a moment at least every 2 s (a longer video: see Plan.for_duration)
MIN_GAP_S = 1.0        # and at most one a second
MOMENT_SIZE = 256      # short side of a moment's picture, px
SEEK_GAP_S = 30.0      # seek when the next candidate is further ahead than this
MAX_DECODE_ERRORS = 20
INDEX_ENTRIES = 2_000_000  # container index entries read for the keyframe times (18,000 in 10 min at 30 fps)
# decoders that can decode at 1/2, 1/4, 1/8 of the size (FFmpeg's `lowres`, up to their max_lowres)
LOWRES_DECODERS = {"mjpeg": 3, "mpeg1video": 3, "mpeg2video": 3, "mpeg4": 3, "h263": 3, "msmpeg4v1": 3,
                   "msmpeg4v2": 3, "msmpeg4v3": 3, "wmv1": 3, "wmv2": 3}
_TURN = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


@dataclass
class Moment:
    time_s: float          # seconds from the start of the video
    image: Image.Image     # RGB, MOMENT_SIZE on its short side, as shown
    shot: bool             # taken at a shot change (else the first frame or the every-N-seconds rule)


def sample_moments(path: str, limits: VideoLimits = DEFAULT_VIDEO_LIMITS, size: int = MOMENT_SIZE,
                   every_s: float = EVERY_S, min_gap_s: float = MIN_GAP_S, cancel=None,
                   threads: int = 0) -> "Sampling":
    """Probe `path` (VideoError now when it is no readable video) and return its moments as a lazy
    iterable (`Sampling`): decoding happens while it is iterated, once."""
    return Sampling(path, limits, size, every_s, min_gap_s, cancel, threads)


def lowres_factor(codec: str, short_side: int, size: int) -> int:
    """k: decode at 1/2**k of the size where the decoder can and the short side stays >= `size`."""
    k = 0
    while k < LOWRES_DECODERS.get(codec, 0) and short_side >> (k + 1) >= size:
        k += 1
    return k


def frame_image(frame, size: int, sar: float = 1.0) -> Image.Image:
    """A decoded frame as a PIL picture `size` px on its short side (never enlarged), shown upright."""
    w, h = frame.width * (sar if 0.1 < sar < 10 else 1.0), frame.height
    scale = min(1.0, size / min(w, h))
    tw, th = max(2, round(w * scale)), max(2, round(h * scale))
    img = frame.reformat(width=tw, height=th, format="rgb24", interpolation="AREA").to_image()
    turn = _TURN.get(frame_rotation(frame))
    return img.transpose(turn) if turn else img


class Sampling:
    """The moments of one video, decoded while iterated. `info` (VideoInfo), `plan`, `lowres` (frames
    decoded at 1/2**lowres of their size, where the codec allows), and as it goes:
    `notes` (why it stopped early, what the header got wrong), `decoded` (frames), `position_s`
    (how far the reader is), `moments` (yielded so far)."""

    def __init__(self, path: str, limits: VideoLimits, size: int, every_s: float, min_gap_s: float,
                 cancel, threads: int):
        self.path, self.limits, self.size, self.cancel, self.threads = path, limits, size, cancel, threads
        self.info = probe(path, limits)
        self.plan = Plan.for_duration(self.info.duration_s, limits.max_moments, every_s, min_gap_s)
        self.notes: list[str] = list(self.info.notes)
        self.decoded = self.moments = self.errors = 0
        self.position_s = 0.0
        self.lowres = lowres_factor(self.info.codec, min(self.info.width, self.info.height), size)

    def __iter__(self) -> Iterator[Moment]:
        with open_video(self.path, self.limits) as (container, stream):
            stream.thread_type = "AUTO"
            if self.threads:
                stream.codec_context.thread_count = self.threads
            stream.codec_context.skip_frame = "NONREF"
            if self.lowres:
                stream.codec_context.options = {"lowres": str(self.lowres)}
            yield from self._walk(container, stream)
        if not self.moments:
            raise VideoError(self.path, self.notes[-1] if self.notes else "no frame could be decoded")

    def _walk(self, container, stream) -> Iterator[Moment]:
        import av

        walk = _Keyframes(stream, self.plan, self.info.duration_s)
        picker, deadline = Picker(self.plan), time.monotonic() + self.limits.budget_s
        self._last = None  # the last candidate not taken: (time, picture), for a cut at the very end
        try:
            for packet in container.demux(stream):
                if self._stop_asked(deadline):
                    return
                for moment in self._packet(container, stream, packet, walk, picker):
                    yield moment
                    if picker.full:
                        return self._note_cap()
            yield from self._final(picker)
        except av.error.ExitError:
            self.notes.append(f"stopped at {self.position_s:.1f} s: a read timed out")
        except (av.FFmpegError, VideoError) as e:
            reason = e.reason if isinstance(e, VideoError) else _av_reason(e)
            self.notes.append(f"stopped at {self.position_s:.1f} s: {reason}")
        else:
            self._note_truncated()

    def _stop_asked(self, deadline: float) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            self.notes.append(f"cancelled at {self.position_s:.1f} s")
            return True
        if time.monotonic() > deadline:
            self.notes.append(f"stopped at {self.position_s:.1f} s: over the time budget of "
                              f"{self.limits.budget_s:g} s a video")
            return True
        return False

    def _packet(self, container, stream, packet, walk, picker) -> Iterator[Moment]:
        """Decide what to do with one packet: seek past it, drop it, or decode it."""
        if not packet.size:  # the end: flush the decoder
            yield from self._frames(stream, self._decode(stream, None), picker, walk)
            return
        t = stream_seconds(stream, packet.pts if packet.pts is not None else packet.dts)
        if t is None:
            return
        self.position_s = max(self.position_s, t)
        if packet.is_keyframe:
            walk.keyframe(t, picker.last_moment)
        wanted = picker.wanted()
        if walk.should_seek(t, wanted):
            container.seek((stream.start_time or 0) + int(wanted / stream.time_base), stream=stream,
                           backward=True, any_frame=False)
            stream.codec_context.flush_buffers()
            return
        if (packet.is_keyframe and (t >= wanted or walk.chain)) or (walk.chain and not packet.is_keyframe):
            yield from self._frames(stream, self._decode(stream, packet), picker, walk)

    def _decode(self, stream, packet) -> list:
        import av

        try:
            return stream.codec_context.decode(packet)
        except av.FFmpegError as e:
            self.errors += 1
            if self.errors >= MAX_DECODE_ERRORS:
                raise VideoError(self.path, f"{self.errors} decode errors (the last: {_av_reason(e)})") from None
            return []

    def _frames(self, stream, frames, picker, walk) -> Iterator[Moment]:
        sar = float(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else 1.0
        for frame in frames:
            self.decoded += 1
            t = stream_seconds(stream, frame.pts)
            if t is None or t < picker.wanted() or picker.full:
                continue
            check_pixels(self.path, frame.width, frame.height, self.limits.max_pixels)
            image = frame_image(frame, self.size, sar)
            take, shot = picker.offer(t, signature(image))
            self._last = None if take else (t, image)
            if take:
                self.moments += 1
                walk.moment(t)
                yield Moment(t, image, shot)

    def _final(self, picker) -> Iterator[Moment]:
        """A cut seen in the last second, too soon after the last moment: its frame is the last one."""
        if picker.pending_shot and self._last is not None and not picker.full:
            self.moments += 1
            yield Moment(*self._last, True)

    def _note_cap(self) -> None:
        d = self.info.duration_s
        if d is None or self.position_s < d - self.plan.every:
                self.notes.append(f"capped at {self.limits.max_moments} moments (at {self.position_s:.1f} s)")

    def _note_truncated(self) -> None:
        d = self.info.duration_s
        if d and self.position_s < d - max(2.0, 0.05 * d):
            self.notes.append(f"the data ends at {self.position_s:.1f} s of the {d:.1f} s the header "
                              "claims (truncated?)")


class _Keyframes:
    """What the keyframes tell: when the next one comes (from the container's index when it has one,
    else after the spacing seen last), whether to decode the frames up to it (`chain`: when a moment
    falls due more than `every / 4` before it), and when to seek."""

    def __init__(self, stream, plan: Plan, duration_s: float | None):
        self.plan, self.chain, self.last_seek, self.end = plan, False, -1.0, duration_s
        self.keys = _index_keys(stream)  # sorted keyframe times, or None without an index
        self.last_key: float | None = None
        self.next_key: float | None = None  # None: unknown

    def keyframe(self, t: float, last_moment: float | None) -> None:
        if self.keys is not None:
            i = int(np.searchsorted(self.keys, t + 0.01, side="right"))
            self.next_key = float(self.keys[i]) if i < len(self.keys) else self.end  # the last: the end
        elif self.last_key is not None and t > self.last_key:
            self.next_key = t + (t - self.last_key)  # no index: expect the spacing seen last
        self.last_key = t
        due = last_moment is None or t - last_moment >= self.plan.every - self.plan.step
        self.chain = True
        self.moment(t if due else last_moment)  # this keyframe becomes a moment when one is due

    def moment(self, t: float) -> None:
        """After a moment at `t` (or at a keyframe): keep decoding between keyframes only while the
        next moment falls due well before the next keyframe. Never turned on between keyframes."""
        due = t + self.plan.every
        self.chain = self.chain and (self.next_key is None or self.next_key > due + self.plan.every / 4)

    def should_seek(self, t: float, wanted: float) -> bool:
        if wanted - t > SEEK_GAP_S and wanted > self.last_seek:
            self.last_seek, self.chain = wanted, False
            return True
        return False


def _index_keys(stream) -> np.ndarray | None:
    """The keyframe times (s, from the stream's start) in the container's index (MP4's sample table,
    Matroska's cues, AVI's idx1), at most INDEX_ENTRIES entries read; None without an index."""
    try:
        entries = stream.index_entries
        n = min(len(entries), INDEX_ENTRIES)
        if n < 2:
            return None
        start, tb = stream.start_time or 0, float(stream.time_base)
        keys = np.array([(entries[i].timestamp - start) * tb for i in range(n) if entries[i].is_keyframe])
    except Exception:
        return None
    keys = np.sort(keys[np.isfinite(keys)])
    return keys if len(keys) else None
