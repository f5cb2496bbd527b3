"""A video's timeline: consecutive moments with the same top label merged into stretches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Stretch:
    start_s: float   # the first moment of the stretch (0 for the first stretch)
    end_s: float     # the next stretch's first moment, or the end of the video
    label: str       # the top label of each of its moments
    score: float     # that label's mean probability over its moments
    moments: int

    def to_dict(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "label": self.label,
                "score": round(self.score, 6), "moments": self.moments}


@dataclass
class Timeline:
    path: str
    duration_s: float | None
    stretches: list[Stretch]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": self.path, "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
                "stretches": [s.to_dict() for s in self.stretches], "notes": list(self.notes)}


def stretches(times: Sequence[float], probs: np.ndarray, labels: Sequence[str],
              end_s: float | None = None) -> list[Stretch]:
    """(M,) moment times in order and their (M, L) probabilities -> stretches of equal top label.
    A stretch runs from its first moment to the next stretch's first moment (the first from 0, the
    last to `end_s`, or to its last moment when the end is unknown)."""
    if not len(times):
        return []
    top = np.asarray(probs).argmax(axis=1)
    starts = [0] + [i for i in range(1, len(top)) if top[i] != top[i - 1]]
    out = []
    for k, i in enumerate(starts):
        j = starts[k + 1] if k + 1 < len(starts) else len(top)
        begin = 0.0 if k == 0 else float(times[i])
        end = float(times[j]) if j < len(top) else max(float(end_s if end_s is not None else times[-1]),
                                                      float(times[-1]))
        score = float(np.mean(np.asarray(probs)[i:j, top[i]]))
        out.append(Stretch(begin, end, labels[int(top[i])], score, j - i))
    return out
