"""training.batches (pairs -> batches): the decoded-image cache and the hard-negative batch sampler."""

import numpy as np
from PIL import Image
from shapes import labelled_folder

from clipseek.data.pairs import load_pairs
from clipseek.training.batches import GroupedBatchSampler, PairDataset


def test_grouped_batches_cover_everything_once_and_share_a_group():
    import torch

    groups = [["red", "blue", "green"][i % 3] for i in range(300)]
    sampler = GroupedBatchSampler(groups, batch_size=10, frac=0.6, generator=torch.Generator().manual_seed(1))
    batches = list(sampler)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) and len(flat) >= 300 - 3 * 10
    assert all(len(b) == 10 for b in batches)
    pure = sum(len({groups[i] for i in b}) == 1 for b in batches)
    assert pure >= 0.5 * len(batches) * 0.9  # ~60% of items are in one-group batches
    again = GroupedBatchSampler(groups, batch_size=10, frac=0.6, generator=torch.Generator().manual_seed(1))
    assert list(again) == batches  # the generator alone decides the batches


def test_pair_cache_gives_every_epoch_the_same_float16_pixels(tmp_path):
    from clipseek.core.preprocess import PreprocessCfg, preprocess
    from clipseek.model.scratch import make_processor

    data = labelled_folder(tmp_path / "data", per_class=2)
    pairs = load_pairs(str(data))
    cfg = PreprocessCfg.from_processor(make_processor(32))
    cached = PairDataset(pairs, cfg, cache_mb=1)
    first = [cached[i][0] for i in range(len(cached))]
    assert len(cached.cache) == len(cached)
    again = [cached[i][0] for i in range(len(cached))]
    exact = preprocess(Image.open(pairs.paths[0]).convert("RGB"), cfg)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].dtype == np.float32 and np.allclose(first[0], exact, atol=4e-3)
    uncached = PairDataset(pairs, cfg, cache_mb=0)  # 8 images x 12 KB do not fit in 0 MB
    assert uncached.cache is None and np.array_equal(uncached[0][0], exact)


def test_every_pair_every_epoch_and_no_batch_of_one():
    import torch

    from clipseek.training.batches import ShuffledBatchSampler, batch_count

    for n, bs in [(31, 16), (33, 16), (17, 16), (5, 16), (32, 16)]:
        batches = list(ShuffledBatchSampler(n, bs, torch.Generator().manual_seed(0)))
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert min(len(b) for b in batches) >= 2 and len(batches) == batch_count(n, bs)
    groups = [["red", "blue"][i % 2] for i in range(41)]
    batches = list(GroupedBatchSampler(groups, 10, 0.5, torch.Generator().manual_seed(2)))
    assert sorted(i for b in batches for i in b) == list(range(41)) and min(map(len, batches)) >= 2
