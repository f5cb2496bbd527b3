"""Pairs -> batches: decode and preprocess each pair (kept in memory when the set fits), collate, the
hard-negative batch sampler, and the DataLoader that draws the batches (shuffled, or with a share from
one group)."""

from __future__ import annotations

import numpy as np

from clipseek.core.images import ImageError, open_image
from clipseek.data.pairs import Pairs


class PairDataset:
    """Decodes and preprocesses one pair; a bad image yields a ("skip", path, reason) marker (dropped
    from its batch and counted). When the whole preprocessed set fits in `cache_mb`, each image is
    decoded once and kept in memory, as float16, for the later epochs (80k images at 64 px: 1.9 GB)."""

    def __init__(self, pairs: Pairs, preprocess_cfg, cache_mb: float):
        self.pairs, self.cfg = pairs, preprocess_cfg
        per_image_mb = 3 * preprocess_cfg.input_size ** 2 * 2 / 2**20
        self.cache: dict[int, np.ndarray] | None = {} if len(pairs.paths) * per_image_mb <= cache_mb else None

    def __len__(self) -> int:
        return len(self.pairs.paths)

    def __getitem__(self, i: int):
        from clipseek.core.preprocess import preprocess

        if self.cache is not None and i in self.cache:
            return (self.cache[i].astype(np.float32), self.pairs.captions[i], i)
        try:
            img = open_image(self.pairs.paths[i], draft_size=self.cfg.input_size)
        except ImageError as e:
            return ("skip", e.path, e.reason)
        pixels = preprocess(img, self.cfg)
        if self.cache is not None:  # every epoch sees the same (float16-rounded) pixels
            self.cache[i] = pixels.astype(np.float16)
            pixels = self.cache[i].astype(np.float32)
        return (pixels, self.pairs.captions[i], i)


class GroupedBatchSampler:
    """Batches where a share `frac` are drawn from a single group (e.g. one colour), the rest at random.

    Inside a one-group batch the shared attribute cannot tell captions apart, so the contrastive loss
    must use the others: hard negatives that keep a model from settling on the easiest attribute.
    `generator` (a torch.Generator) draws every order, so a seeded one gives the same batches.
    """

    def __init__(self, groups: list[str], batch_size: int, frac: float, generator):
        self.groups, self.batch_size, self.frac, self.gen = groups, batch_size, frac, generator

    def __len__(self) -> int:
        return batch_count(len(self.groups), self.batch_size)

    def __iter__(self):
        import torch

        n, bs = len(self.groups), self.batch_size
        order = torch.randperm(n, generator=self.gen).tolist()
        cut = int(n * self.frac)
        buckets: dict[str, list[int]] = {}
        for i in order[:cut]:
            buckets.setdefault(self.groups[i], []).append(i)
        batches, rest = [], order[cut:]
        for members in buckets.values():
            full = len(members) // bs * bs
            batches += [members[j:j + bs] for j in range(0, full, bs)]
            rest += members[full:]
        tail = batch_slices(rest, bs)
        if tail and len(tail[-1]) == 1 and len(batches) + len(tail) > 1:  # a batch of one has no negatives
            single = tail.pop()
            (tail or batches)[-1].extend(single)
        batches += tail
        for k in torch.randperm(len(batches), generator=self.gen).tolist():
            yield batches[k]


def batch_slices(order: list[int], bs: int) -> list[list[int]]:
    """Every index of `order`, in batches of `bs` and a smaller last one; a last batch of one joins the
    one before it (the contrastive loss needs two pairs in a batch)."""
    batches = [list(order[j:j + bs]) for j in range(0, len(order), bs)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        single = batches.pop()
        batches[-1].extend(single)
    return batches


def batch_count(n: int, bs: int) -> int:
    """How many batches `batch_slices` makes of `n` pairs."""
    return max(1, -(-n // bs) - (1 if n > bs and n % bs == 1 else 0))


class ShuffledBatchSampler:
    """Every pair every epoch, in a new order each epoch drawn by `generator` (no partial batch dropped)."""

    def __init__(self, n: int, batch_size: int, generator):
        self.n, self.batch_size, self.gen = n, batch_size, generator

    def __len__(self) -> int:
        return batch_count(self.n, self.batch_size)

    def __iter__(self):
        import torch

        yield from batch_slices(torch.randperm(self.n, generator=self.gen).tolist(), self.batch_size)


def collate(items):
    """-> (pixels (B, 3, H, W) or None, captions, pair indices, [(path, reason) of unreadable images])."""
    import torch

    good = [it for it in items if not isinstance(it[0], str)]
    bad = [(it[1], it[2]) for it in items if isinstance(it[0], str)]
    pixels = torch.from_numpy(np.stack([g[0] for g in good])) if good else None
    return pixels, [g[1] for g in good], [g[2] for g in good], bad


def make_loader(pairs: Pairs, preprocess_cfg, cfg, generator):
    """The DataLoader for `cfg` (a TrainConfig): grouped batches when `cfg.group_frac` > 0 and the pairs
    have groups, else shuffled ones; `generator` draws the order (its state is saved with a checkpoint)."""
    import torch

    dataset = PairDataset(pairs, preprocess_cfg, cfg.cache_mb)
    common = dict(num_workers=cfg.workers, collate_fn=collate, persistent_workers=cfg.workers > 0)
    if cfg.group_frac > 0 and pairs.groups:
        sampler = GroupedBatchSampler(pairs.groups, cfg.batch_size, cfg.group_frac, generator)
    else:
        sampler = ShuffledBatchSampler(len(pairs.paths), cfg.batch_size, generator)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, **common)
