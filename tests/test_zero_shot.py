import numpy as np
import pytest
from transformers import pipeline

from clipseek.core.scores import probabilities, top_k
from clipseek.zero_shot import classify, classify_images
from helpers import make_image

LABELS = ["cat", "dog", "red car", "green tree", "small boat"]


@pytest.mark.parametrize("template", ["a photo of a {}.", "{}"])
@pytest.mark.parametrize("ckpt, enc, labels, one_distribution", [
    ("tiny_ckpt", "encoder", LABELS, True),  # CLIP: softmax over the labels
    ("tiny_siglip_ckpt", "siglip_encoder", LABELS[:4] + ["кошка"], False),  # SigLIP: sigmoid per label
], ids=["clip", "siglip"])
def test_parity_with_transformers_pipeline(request, ckpt, enc, labels, one_distribution, template):
    """The same numbers as the `transformers` zero-shot pipeline on the same tiny checkpoint."""
    ckpt, enc = request.getfixturevalue(ckpt), request.getfixturevalue(enc)
    pipe = pipeline("zero-shot-image-classification", model=ckpt, device="cpu")
    images = [make_image(i, (50 + 7 * i, 40)) for i in range(4)]
    ours = classify_images(enc, images, labels, [template])
    for img, row in zip(images, ours):
        ref = pipe(img, candidate_labels=labels, hypothesis_template=template)
        ref_by_label = {r["label"]: r["score"] for r in ref}
        assert max(abs(ref_by_label[l] - p) for l, p in zip(labels, row)) <= 1e-5
    assert np.allclose(ours.sum(axis=1), 1.0) == one_distribution


def test_probabilities_softmax_reference():
    rng = np.random.RandomState(0)
    a = rng.randn(3, 8)
    b = rng.randn(4, 8)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    p = probabilities(a, b, 100.0)
    logits = 100 * a @ b.T
    ref = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(p, ref) and np.allclose(p.sum(1), 1)
    ranked = top_k(p, ["w", "x", "y", "z"], 2)
    assert [r[0][0] for r in ranked] == [["w", "x", "y", "z"][j] for j in p.argmax(1)]
    assert all(r[0][1] >= r[1][1] for r in ranked)


def test_classify_files_keeps_paths_paired_and_reports_skips(encoder, image_dir):
    bad = image_dir / "broken.png"
    bad.write_bytes(b"garbage")
    paths = sorted(str(p) for p in image_dir.rglob("*.*"))
    res = classify(encoder, paths, LABELS, top=3, batch_size=2)
    assert [s.path for s in res.skipped] == [str(bad)]
    assert len(res.predictions) == len(paths) - 1
    # pairing: each prediction equals classifying that one image on its own
    from clipseek.core.images import open_image

    for pred in res.predictions:
        alone = classify_images(encoder, [open_image(pred.path)], LABELS)[0]
        assert pred.label == LABELS[int(alone.argmax())]
        assert abs(pred.ranked[0][1] - alone.max()) < 1e-5
