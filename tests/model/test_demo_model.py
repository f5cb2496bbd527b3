"""The bundled demo model: loads with plain transformers, and does real (non-random) work offline."""

import os
import subprocess
import sys

import numpy as np
import pytest

from clipseek.model.loader import BUNDLED_MODELS

DEMO = BUNDLED_MODELS["clipseek-demo"]
# Floors well above chance (1/8 colours, 1/6 shapes) and a little under what the model measures on
# these 192 unseen images (measured: colour 1.000, shape 0.948; docs/bundled-model.md has the test-split table).
COLOUR_MIN, SHAPE_MIN = 0.95, 0.90


def test_bundled_model_is_small_and_loads_with_plain_transformers():
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor, pipeline

    total = sum(f.stat().st_size for f in DEMO.iterdir())
    assert total < 20 * 2**20
    CLIPModel.from_pretrained(DEMO)
    CLIPProcessor.from_pretrained(DEMO)
    pipe = pipeline("zero-shot-image-classification", model=str(DEMO))
    out = pipe(Image.new("RGB", (64, 64), (215, 35, 35)), candidate_labels=["red", "blue"],
               hypothesis_template="a photo of a {} shape.")
    assert abs(sum(r["score"] for r in out) - 1) < 1e-5


@pytest.fixture(scope="module")
def fresh_shapes(tmp_path_factory):
    """Images the model never saw: a different seed than its training data."""
    from clipseek.data.synthetic import generate

    root = tmp_path_factory.mktemp("shapes")
    return root, generate(root, n=192, seed=2024)


def zero_shot(enc, root, samples, names, attr, template):
    from clipseek.core.prompts import build_classifier
    from clipseek.core.scores import probabilities
    from clipseek.embed.stages import embed_all

    v = embed_all(enc, [str(root / s.path) for s in samples]).vectors
    pred = probabilities(v, build_classifier(enc, names, [template]), enc.logit_scale).argmax(1)
    return float(np.mean([names[p] == getattr(s, attr) for p, s in zip(pred, samples)]))


def test_bundled_model_recognises_colours_and_shapes(fresh_shapes):
    from clipseek import load_model
    from clipseek.data.synthetic import COLOURS, SHAPES

    root, samples = fresh_shapes
    enc = load_model("clipseek-demo", device="cpu")
    colour = zero_shot(enc, root, samples, list(COLOURS), "colour", "a photo of a {} shape.")
    shape = zero_shot(enc, root, samples, list(SHAPES), "shape", "a photo of a {}.")
    # chance is 1/8 and 1/6; measured figures are in docs/bundled-model.md
    assert colour >= COLOUR_MIN and shape >= SHAPE_MIN, (colour, shape)


def test_demo_runs_offline():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-m", "clipseek.cli", "demo", "--n", "96"], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    for section in ("zero-shot classification", "evaluation on the test split", "text searches"):
        assert section in r.stdout
    last = r.stdout.strip().splitlines()[-3:]  # ends with what to try next on one's own folder
    assert [line.split()[:2] for line in last] == [["clipseek", "index"], ["clipseek", "search"],
                                                   ["clipseek", "serve"]]
