"""Contrastive loss and in-batch positives."""

import numpy as np

from clipseek.training.loss import PositiveMatcher, contrastive_loss


def test_positive_matcher_follows_what_each_caption_names():
    captions = ["a red star", "a star", "a photo of a red shape", "a blue star", "a photo", "a red starfish"]
    colour = ["red", "blue", "red", "blue", "green", "red"]
    shape = ["star", "star", "circle", "star", "ring", "starfish"]
    m = PositiveMatcher(captions, {"colour": colour, "shape": shape}).mask(list(range(6)))
    # [i, j]: image i has every value caption j names; built by hand from the lists above
    expected = np.array([
        # "a red star" "a star" "red shape" "a blue star" "a photo" "red starfish"
        [1, 1, 1, 0, 1, 0],   # red star
        [0, 1, 0, 1, 1, 0],   # blue star
        [0, 0, 1, 0, 1, 0],   # red circle
        [0, 1, 0, 1, 1, 0],   # blue star
        [0, 0, 0, 0, 1, 0],   # green ring
        [0, 0, 1, 0, 1, 1],   # red starfish: "star" is not a whole word of "starfish"
    ], dtype=bool)
    assert (m == expected).all()
    sub = PositiveMatcher(captions, {"colour": colour, "shape": shape}).mask([3, 0])
    assert (sub == expected[np.ix_([3, 0], [3, 0])]).all()


def test_contrastive_loss_matches_clip_and_spreads_targets_over_positives():
    import torch
    import torch.nn.functional as F

    logits = torch.randn(5, 5, generator=torch.Generator().manual_seed(0)) * 3
    eye = torch.eye(5, dtype=torch.bool)
    ref = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.t(), torch.arange(5))) / 2
    assert torch.allclose(contrastive_loss(logits), ref)
    assert torch.allclose(contrastive_loss(logits, eye), ref)
    pos = eye.clone()
    pos[0, 1] = True  # image 0 also matches caption 1
    li = [-(torch.log_softmax(logits[i], 0)[pos[i]]).mean() for i in range(5)]
    lt = [-(torch.log_softmax(logits[:, j], 0)[pos[:, j]]).mean() for j in range(5)]
    assert torch.allclose(contrastive_loss(logits, pos), (torch.stack(li).mean() + torch.stack(lt).mean()) / 2)
