"""Non-Latin queries and labels go through classify and search unchanged (no lowercasing, no ASCII
folding on the way), with a tiny SigLIP whose tokenizer has Cyrillic, Greek and Han words and keeps case."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import clipseek
from clipseek.core.images import open_image
from clipseek.core.scores import probabilities
from helpers import make_image

LABELS = ["кошка", "Кошка", "猫", "一只猫", "γάτα", "café", "cafe"]


def run(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "clipseek.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_the_tokenizer_knows_the_words_as_written(siglip_encoder):
    tok = siglip_encoder.tokenizer
    unk = tok.unk_token_id
    ids = [tok(w)["input_ids"] for w in LABELS]
    assert all(len(i) == 2 and i[0] != unk for i in ids)  # one known token each (+ end of text)
    assert len({i[0] for i in ids}) == len(LABELS)         # case and accents kept apart


@pytest.fixture(scope="module")
def ml_photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("ml") / "photos"
    d.mkdir()
    for i in range(5):
        make_image(30 + i, (44 + 5 * i, 38)).save(d / f"p{i}.png")
    return d


def test_classify_cli_keeps_labels_and_scores_them_as_written(tiny_siglip_ckpt, siglip_encoder, ml_photos):
    r = run("classify", ml_photos / "p0.png", "--labels", ",".join(LABELS), "--model", tiny_siglip_ckpt,
            "--template", "{}", "--format", "json", "--top-k", str(len(LABELS)))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["labels"] == LABELS and doc["scoring"] == "sigmoid"
    got = {p["label"]: p["score"] for p in doc["results"][0]["predictions"]}
    expected = probabilities(siglip_encoder.encode_images([open_image(str(ml_photos / "p0.png"))]),
                             siglip_encoder.encode_texts(LABELS), siglip_encoder.logit_scale,
                             siglip_encoder.logit_bias)[0]
    assert got == pytest.approx(dict(zip(LABELS, expected)), abs=1e-5)
    assert got["кошка"] != pytest.approx(got["Кошка"], abs=1e-6)  # no lowercasing on the way
    assert got["café"] != pytest.approx(got["cafe"], abs=1e-6)    # no ASCII folding


def test_search_with_a_non_latin_query(siglip_encoder, ml_photos, tmp_path):
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, siglip_encoder) as g:
        g.index([str(ml_photos)])
        hits = g.search("一只猫", k=5)
    paths = sorted(str(p) for p in ml_photos.iterdir())
    sims = siglip_encoder.encode_images([open_image(p) for p in paths]) @ siglip_encoder.encode_texts(["一只猫"])[0]
    assert [h.path for h in hits] == [paths[i] for i in np.argsort(-sims, kind="stable")]
    assert np.allclose([h.score for h in hits], np.sort(sims)[::-1], atol=1e-5)
    r = run("search", "Кошка", "--db", db, "--format", "json", "-k", "5")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["query"] == "Кошка"
    sims = siglip_encoder.encode_images([open_image(p) for p in paths]) @ siglip_encoder.encode_texts(["Кошка"])[0]
    assert [x["score"] for x in doc["results"]] == pytest.approx(np.sort(sims)[::-1].tolist(), abs=1e-5)
