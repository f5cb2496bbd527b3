"""A gallery indexed with an open_clip-format checkpoint searches like any other, and reopens with it."""

from pathlib import Path

import numpy as np

import clipseek
from clipseek import load_model
from helpers import make_image

CKPT = Path(__file__).resolve().parents[1] / "fixtures" / "open_clip" / "vit-quickgelu-40"


def test_index_search_and_reopen_with_an_open_clip_checkpoint(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        make_image(i, (40 + 9 * i, 36)).save(photos / f"p{i}.png")
    enc = load_model(str(CKPT), device="cpu")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, enc) as g:
        assert g.index([str(photos)]).added == 6
        hits = g.search("a photo of a red car", k=6)
    from clipseek.core.images import open_image

    paths = sorted(str(p) for p in photos.iterdir())
    sims = enc.encode_images([open_image(p) for p in paths]) @ enc.encode_texts(["a photo of a red car"])[0]
    assert [h.path for h in hits] == [paths[i] for i in np.argsort(-sims, kind="stable")]
    assert np.allclose([h.score for h in hits], np.sort(sims)[::-1], atol=1e-5)
    with clipseek.Gallery(db) as again:  # no model given: the DB names the open_clip checkpoint
        assert [h.path for h in again.search("a photo of a red car", k=6)] == [h.path for h in hits]
        assert again.encoder.fingerprint.same_weights(enc.fingerprint)
