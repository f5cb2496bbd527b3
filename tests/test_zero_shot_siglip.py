"""SigLIP scored as it was trained: sigmoid(logit_scale * cos + logit_bias) per label, padded to 64
tokens: the same numbers as the `transformers` zero-shot pipeline on a tiny SiglipModel."""

import numpy as np
import pytest
from transformers import pipeline

from clipseek.zero_shot import classify, classify_images
from helpers import make_image

LABELS = ["cat", "dog", "red car", "green tree", "кошка"]


@pytest.mark.parametrize("template", ["a photo of a {}.", "{}"])
def test_parity_with_transformers_pipeline(tiny_siglip_ckpt, siglip_encoder, template):
    pipe = pipeline("zero-shot-image-classification", model=tiny_siglip_ckpt, device="cpu")
    images = [make_image(i, (50 + 7 * i, 40)) for i in range(4)]
    ours = classify_images(siglip_encoder, images, LABELS, [template])
    worst = 0.0
    for img, row in zip(images, ours):
        ref = pipe(img, candidate_labels=LABELS, hypothesis_template=template)
        ref_by_label = {r["label"]: r["score"] for r in ref}
        worst = max(worst, max(abs(ref_by_label[l] - p) for l, p in zip(LABELS, row)))
    assert worst <= 1e-5
    assert not np.allclose(ours.sum(axis=1), 1.0)  # independent probabilities, not one distribution


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
