"""Shot changes, cheaply, and which candidate frames become moments (pure: numpy, no decoding).

A frame's signature is a 16x16 RGB thumbnail (box-averaged from the candidate's picture, which is
made once per candidate and kept when it becomes a moment). The distance of two
signatures is the mean of two numbers in [0, 1]: the colour-histogram distance (8 bins a channel, half
the L1 distance) and the mean absolute difference of the grey thumbnails. A histogram alone misses a
cut between two pictures of the same colours; a pixel difference alone takes a pan for a cut.

`SHOT_THRESHOLD` (0.11) was set by measurement (`benchmarks/video_bench.py --shots`) on generated
clips, candidates 0.25 s apart: the smallest distance at a cut was 0.131 (the bundled model's shapes
appearing on one background), 0.131 and 0.130 (photo-like pictures, slow and fast pan); the largest
inside a shot 0.004 (a still picture with sensor noise), 0.035 (slow pan), 0.085 (fast pan: a frame
width in 2.7 s), 0.112 (a fast pan with the exposure swinging by 30%). A false cut costs one extra
moment (at most one a second); a missed cut delays the new shot's moment to the 2-s rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SIGNATURE_SIZE = 16
SHOT_THRESHOLD = 0.11
_BINS = 8


def signature(image: Image.Image) -> np.ndarray:
    """A picture (a candidate frame, already scaled down) -> its (16, 16, 3) float32 thumbnail in [0, 1]."""
    small = image.convert("RGB").resize((SIGNATURE_SIZE, SIGNATURE_SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _histogram(sig: np.ndarray) -> np.ndarray:
    q = np.minimum((sig * _BINS).astype(np.int64), _BINS - 1)
    counts = [np.bincount(q[..., c].ravel(), minlength=_BINS) for c in range(3)]
    return np.concatenate(counts) / float(sig.shape[0] * sig.shape[1])


def shot_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How different two signatures are, in [0, 1] (see the module's docstring)."""
    hist = float(np.abs(_histogram(a) - _histogram(b)).sum()) / 6.0
    mad = float(np.abs(a.mean(axis=2) - b.mean(axis=2)).mean())
    return 0.5 * (hist + mad)


@dataclass
class Plan:
    """How densely one video is sampled: candidates `step` s apart, a moment at a shot change at
    least `min_gap` s after the last shot's moment (at the next candidate after any other moment), and
    one at the first candidate `every - step` s after the last (so that one falls every `every` s)."""

    step: float
    min_gap: float
    every: float
    max_moments: int
    spread: bool = False  # gaps stretched to cover a long video: every moment keeps `min_gap`

    @classmethod
    def for_duration(cls, duration_s: float | None, max_moments: int, every_s: float,
                     min_gap_s: float) -> "Plan":
        """A longer video than `max_moments * min_gap_s` gets its moments spread over its length."""
        spread = (duration_s / max_moments) if duration_s else 0.0
        min_gap = max(min_gap_s, spread)
        return cls(step=min_gap / 4, min_gap=min_gap, every=max(every_s, 2 * min_gap), max_moments=max_moments,
                   spread=spread > min_gap_s)


class Picker:
    """Fed candidate frames in time order (time, signature), says which ones become moments."""

    def __init__(self, plan: Plan, threshold: float = SHOT_THRESHOLD):
        self.plan, self.threshold = plan, threshold
        self.last_candidate: float | None = None
        self.last_moment: float | None = None
        self.count = 0
        self.pending_shot = False   # a cut seen too soon after the last moment: take the next candidate
        self.last_was_shot = False
        self._prev: np.ndarray | None = None

    def wanted(self) -> float:
        """The earliest time worth decoding a candidate at."""
        return -1.0 if self.last_candidate is None else self.last_candidate + self.plan.step * 0.99

    def offer(self, t: float, sig: np.ndarray) -> tuple[bool, bool]:
        """(becomes a moment, is a shot change) for the candidate at `t` seconds."""
        shot = self._prev is not None and shot_distance(self._prev, sig) > self.threshold
        self._prev, self.last_candidate = sig, t
        self.pending_shot = self.pending_shot or shot
        if self.last_moment is None:
            take = True
        else:  # a cut right after a moment of the every-N-seconds rule is not held back by the gap
            gap = t - self.last_moment
            soon = self.plan.min_gap if self.last_was_shot or self.plan.spread else self.plan.step * 0.99
            take = (self.pending_shot and gap >= soon) or gap >= self.plan.every - self.plan.step
        if take:
            was_shot = self.pending_shot and self.last_moment is not None
            self.last_moment, self.pending_shot, self.last_was_shot = t, False, was_shot
            self.count += 1
            return True, was_shot
        return False, shot

    @property
    def full(self) -> bool:
        return self.count >= self.plan.max_moments
