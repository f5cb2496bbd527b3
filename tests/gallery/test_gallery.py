"""clipseek.Gallery: results equal a brute-force numpy ranking of the stored vectors."""

import os

import numpy as np
import pytest

import clipseek
from clipseek.core.images import open_image
from clipseek.errors import ClipseekError, ModelMismatchError, UsageError
from helpers import FakeEncoder, make_image

QUERIES = ["a photo of a cat", "red car", "big blue house", "dog"]


@pytest.fixture
def gallery_dir(tmp_path):
    d = tmp_path / "photos"
    (d / "b").mkdir(parents=True)
    for i in range(40):
        make_image(i, (40 + i % 7 * 4, 32 + i % 5 * 3)).save(d / ("b" if i % 3 else ".") / f"p{i}.png")
    return d


def brute_force(gallery, q, k, threshold=None):
    ids, vecs = gallery.store.all_vectors()
    scores = vecs.astype(np.float64) @ q.astype(np.float64)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(ids[i]), float(scores[i])) for i in order if threshold is None or scores[i] >= threshold]


def check_equal(results, expected):
    assert [r.id for r in results] == [i for i, _ in expected]
    assert np.allclose([r.score for r in results], [s for _, s in expected], atol=1e-5)


def test_text_and_image_search_equal_brute_force(tmp_path, encoder, gallery_dir):
    g = clipseek.Gallery(str(tmp_path / "g.db"), encoder)
    summary = g.index([str(gallery_dir)])
    assert summary.added == 40 and summary.total == 40
    for text in QUERIES:
        q = encoder.encode_texts([text])[0]
        for k in (1, 5, 40, 100):
            check_equal(g.search(text, k=k), brute_force(g, q, k))
    res = g.search("red car", k=40, threshold=0.05)
    check_equal(res, brute_force(g, encoder.encode_texts(["red car"])[0], 40, 0.05))
    assert all(r.score >= 0.05 for r in res)

    probe = gallery_dir / "b" / "p1.png"
    res = g.search(image=str(probe), k=5)
    check_equal(res, brute_force(g, encoder.encode_images([open_image(probe)])[0], 5))
    assert res[0].path == str(probe) and res[0].score == pytest.approx(1.0, abs=1e-5)
    assert (res[0].width, res[0].height) == open_image(probe).size

    # after moves and deletions, still exact (deleted rows filtered, moved rows keep their vectors)
    os.rename(probe, gallery_dir / "moved.png")
    for i in (0, 3, 6):
        os.remove(gallery_dir / f"p{i}.png")
    s = g.index([str(gallery_dir)])
    assert (s.moved, s.removed) == (1, 3)
    q = encoder.encode_texts(["dog"])[0]
    res = g.search("dog", k=40)
    check_equal(res, brute_force(g, q, 40))
    assert len(res) == 37 and str(gallery_dir / "moved.png") in {r.path for r in res}
    g.close()

    with clipseek.Gallery(str(tmp_path / "g.db")) as g2:  # no encoder given: the DB's model
        check_equal(g2.search("dog", k=5), brute_force(g2, q, 5))
        assert g2.encoder.fingerprint == encoder.fingerprint


def test_bad_queries_and_model_mismatch(tmp_path, fake_encoder, gallery_dir):
    encoder = fake_encoder
    g = clipseek.Gallery(str(tmp_path / "g.db"), encoder)
    g.index([str(gallery_dir)])
    for bad in ("", "   "):
        with pytest.raises(UsageError, match="empty query"):
            g.search(bad)
    with pytest.raises(UsageError):
        g.search("cat", image=str(gallery_dir / "p0.png"))
    with pytest.raises(ClipseekError, match="not found"):
        g.search(image=str(tmp_path / "missing.png"))
    g.close()

    other_enc = FakeEncoder(name="other-model")
    with pytest.raises(ModelMismatchError) as e:
        clipseek.Gallery(str(tmp_path / "g.db"), other_enc).search("cat")
    assert str(encoder.fingerprint) in str(e.value) and str(other_enc.fingerprint) in str(e.value)
    with pytest.raises(ClipseekError, match="no clipseek database"):
        clipseek.Gallery(str(tmp_path / "nope.db"), encoder).search("cat")


def test_int8_gallery_reopens_with_its_own_dtype(tmp_path, tiny_ckpt, encoder, gallery_dir):
    enc8 = clipseek.load_model(tiny_ckpt, device="cpu", dtype="int8")
    assert enc8.fingerprint.dtype == "int8" and not enc8.fingerprint.same_weights(encoder.fingerprint)
    v32, v8 = encoder.encode_texts(["red car"]), enc8.encode_texts(["red car"])
    assert np.allclose(v32, v8, atol=1e-6)  # text tower stays fp32
    with clipseek.Gallery(str(tmp_path / "g.db"), enc8) as g:
        g.index([str(gallery_dir)])
    with clipseek.Gallery(str(tmp_path / "g.db")) as g:  # reloads the int8 model from the DB's record
        assert g.search("red car", k=3) and g.encoder.fingerprint == enc8.fingerprint


def test_int8_text_tower_option(tmp_path, encoder, gallery_dir):
    with clipseek.Gallery(str(tmp_path / "g.db"), encoder) as g:
        g.index([str(gallery_dir)])
    with clipseek.Gallery(str(tmp_path / "g.db"), int8_text=True) as g8, \
            clipseek.Gallery(str(tmp_path / "g.db")) as g32:
        kinds = {type(m).__module__ for m in g8.encoder.model.text_model.modules()}
        assert any("quantized" in k for k in kinds)  # the text tower really is int8
        assert not any("quantized" in type(m).__module__ for m in g32.encoder.model.text_model.modules())
        q8, q32 = g8.encoder.encode_texts(["dog"])[0], g32.encoder.encode_texts(["dog"])[0]
        assert 0.99 < float(q8 @ q32) < 1.0 - 1e-7  # close to fp32, not the same vector
        check_equal(g8.search("dog", k=5), brute_force(g8, q8, 5))


def clustered(rng, clusters: int, n: int, noise: float, dim: int = 32):
    """(centers, n unit float32 vectors scattered around them) for a gallery with structure."""
    centers = rng.standard_normal((clusters, dim))
    vecs = centers[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, dim))
    return centers, (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def fill_store(db, vecs):
    from clipseek.gallery.store import Store

    with Store.open(db) as s:
        s.bind_model(FakeEncoder(dim=vecs.shape[1]).fingerprint, vecs.shape[1])
        with s.transaction():
            s.insert_files([(f"/img/{i}.png", 1, 1, f"h{i}", 8, 8, v) for i, v in enumerate(vecs)])


@pytest.mark.parametrize("threshold", [10_000, 100])  # exact index, approximate index
def test_search_after_deletions_equals_brute_force_over_live_rows(tmp_path, threshold):
    from clipseek.gallery.store import Store

    rng = np.random.default_rng(0)
    _, vecs = clustered(rng, 20, 1000, 0.3)
    db = str(tmp_path / "g.db")
    fill_store(db, vecs)
    g = clipseek.Gallery(db, approx_threshold=threshold)
    q = vecs[3]
    assert len(g.search_vector(q, 5)) == 5  # builds the index
    nearest = np.argsort(-(vecs @ q))[:40]
    gone = set(nearest.tolist()) | set(rng.choice(1000, 50, replace=False).tolist())
    with Store.open(db) as other, other.transaction():  # another process deletes rows
        other.remove_paths([f"/img/{i}.png" for i in gone])
    for k in (1, 10, 50):
        res = g.search_vector(q, k)
        check_equal(res, brute_force(g, q, k))
        assert len(res) == k and not {r.path for r in res} & {f"/img/{i}.png" for i in gone}
    index = g._refresh_index()
    assert index.state.deleted == len(gone) and index.state.count == 1000  # filtered, not rebuilt
    g.close()


def test_empty_gallery_answers_nothing(tmp_path):
    db = str(tmp_path / "g.db")
    fill_store(db, np.zeros((0, 32), np.float32))
    with clipseek.Gallery(db) as g:
        assert g.search_vector(np.ones(32, np.float32), 10) == []


def test_one_writer_at_a_time_and_readers_go_on(tmp_path, gallery_dir):
    from clipseek._io import writer_lock
    from clipseek.errors import BusyError

    db = str(tmp_path / "g.db")
    enc = FakeEncoder()
    with clipseek.Gallery(db, enc) as g:
        g.index([str(gallery_dir)])
    with writer_lock(db + ".lock", db):  # another writer (a flock is per open file: this conflicts too)
        with pytest.raises(BusyError, match=rf"is being written by another process \(pid {os.getpid()} on "):
            clipseek.Gallery(db, enc).index([str(gallery_dir)])
        with clipseek.Gallery(db, enc) as reader:  # searching needs no lock
            assert len(reader.search("a cat", k=3)) == 3
    with clipseek.Gallery(db, enc) as g:  # released: the next writer goes ahead
        assert g.index([str(gallery_dir)]).unchanged == 40
    assert not os.path.exists(db + ".lock")  # a finished writer leaves no lock file behind


def test_a_new_database_records_its_model_before_the_first_batch(tmp_path, gallery_dir, monkeypatch):
    from clipseek.gallery import sync
    from clipseek.gallery.store import Store

    db = str(tmp_path / "g.db")
    enc = FakeEncoder(name="not-the-default")

    def killed(*a, **k):
        raise KeyboardInterrupt  # the run dies before reading a file
    monkeypatch.setattr(sync, "index_folders", killed)
    with pytest.raises(KeyboardInterrupt):
        clipseek.Gallery(db, enc).index([str(gallery_dir)])
    with Store.open(db, create=False) as s:
        assert s.fingerprint == enc.fingerprint and s.count() == 0 and s.meta("dim") == "32"
    assert not os.path.exists(str(tmp_path / "missing" / "g.db"))
    with pytest.raises(UsageError, match="folder does not exist"):
        clipseek.Gallery(str(tmp_path / "missing" / "g.db"), enc).index([str(gallery_dir)])


def test_approximate_index_results_equal_brute_force_cosine(tmp_path):
    """On a gallery past the approximate threshold (an inverted file that probes only some of its lists),
    every query's top k is numpy's exact cosine top k over the stored vectors: the same ids, scores within
    1e-6."""
    rng = np.random.default_rng(7)
    centers, vecs = clustered(rng, 40, 4000, 0.4)
    db = str(tmp_path / "g.db")
    fill_store(db, vecs)
    queries = np.concatenate([vecs[rng.choice(4000, 8, replace=False)],
                              centers[:8] + 0.5 * rng.standard_normal((8, 32))]).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    def exact(q, k):
        scores = vecs.astype(np.float64) @ q.astype(np.float64)
        order = np.argsort(-scores, kind="stable")[:k]
        return [f"/img/{i}.png" for i in order], scores[order]

    def check(g, k):
        for q in queries:
            res = g.search_vector(q, k)
            paths, scores = exact(q, k)
            assert [r.path for r in res] == paths, (k, q[:4])
            assert np.abs(np.array([r.score for r in res]) - scores).max() < 1e-6

    g = clipseek.Gallery(db, approx_threshold=1000)
    g.search_vector(queries[0], 1)  # builds the index
    state = g._refresh_index().state
    assert state.kind == "ivf-pq-sq8" and 1 < state.nprobe < state.nlist, state  # approximate, not a scan
    for k in (1, 10, 50):
        check(g, k)
    g.close()
