"""CLIP's contrastive loss, and which in-batch pairs count as matches beyond each image's own caption."""

from __future__ import annotations

import re

import numpy as np


class PositiveMatcher:
    """Which images in a batch match which captions, beyond each image's own caption.

    Caption j "names" a field when the field's value appears in it as a whole word (case-insensitive);
    image i matches caption j when it has caption j's value for every field caption j names. So with
    fields (colour, shape), "a red star" matches every red star in the batch, "a star" every star and
    "a photo" every image. Without this, InfoNCE treats those as negatives and pushes apart images and
    captions that agree, which is most of a batch when it is drawn from one colour.
    """

    def __init__(self, captions: list[str], attrs: dict[str, list[str]]):
        self.codes, self.named = [], []
        for values in attrs.values():
            index = {v: k for k, v in enumerate(sorted(set(values)))}
            self.codes.append(np.array([index[v] for v in values]))
            self.named.append(np.array([_names(c, v) for v, c in zip(values, captions)]))

    def mask(self, idx: list[int]) -> np.ndarray:
        """(B, B) bool: [i, j] is True when image idx[i] matches caption idx[j] (always on the diagonal)."""
        idx = np.asarray(idx)
        m = np.ones((len(idx), len(idx)), dtype=bool)
        for codes, named in zip(self.codes, self.named):
            c = codes[idx]
            m &= (c[:, None] == c[None, :]) | ~named[idx][None, :]
        return m


def _names(caption: str, value: str) -> bool:
    """Whether `value` appears in `caption` as a whole word (case-insensitive)."""
    if not value.strip():
        return False
    return re.search(r"(?<!\w)" + re.escape(value.lower()) + r"(?!\w)", caption.lower()) is not None


def contrastive_loss(logits_per_image, positives=None):
    """CLIP's symmetric InfoNCE. With a (B, B) `positives` mask the target of each image (caption) is
    spread evenly over the captions (images) it matches, instead of only its own pair."""
    import torch
    import torch.nn.functional as F

    if positives is None:
        target = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
        return (F.cross_entropy(logits_per_image, target) + F.cross_entropy(logits_per_image.t(), target)) / 2
    t = positives.to(logits_per_image.dtype)

    def soft_ce(logits, t):
        return -(t / t.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    return (soft_ce(logits_per_image, t) + soft_ce(logits_per_image.t(), t.t())) / 2
