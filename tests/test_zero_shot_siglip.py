"""SigLIP scored as it was trained: sigmoid(logit_scale * cos + logit_bias) per label, padded to 64
tokens (its parity with the `transformers` pipeline: tests/test_zero_shot.py)."""

import pytest

from clipseek.zero_shot import classify, classify_images

LABELS = ["cat", "dog", "red car", "green tree", "кошка"]


def test_encoder_carries_the_learned_bias(siglip_encoder, encoder):
    assert siglip_encoder.logit_bias == pytest.approx(-2.0)
    assert siglip_encoder.logit_scale == pytest.approx(10.0)
    assert encoder.logit_bias is None  # CLIP: softmax


def test_classify_reports_sigmoid_scores(siglip_encoder, image_dir):
    paths = sorted(str(p) for p in image_dir.rglob("*.*"))
    res = classify(siglip_encoder, paths, LABELS, top=5)
    assert res.scoring == "sigmoid" and res.to_dict()["scoring"] == "sigmoid"
    from clipseek.core.images import open_image

    alone = classify_images(siglip_encoder, [open_image(paths[0])], LABELS)[0]
    got = dict(res.predictions[0].ranked)
    assert got == pytest.approx(dict(zip(LABELS, alone)), abs=1e-6)
    # one label's probability is the same whatever else is asked
    fewer = classify_images(siglip_encoder, [open_image(paths[0])], LABELS[:2])[0]
    assert fewer == pytest.approx(alone[:2], abs=1e-6)
