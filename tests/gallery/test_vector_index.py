"""The FAISS index: exact below the threshold, PQ scan + SQ8 re-score above, persisted, extended, rebuilt."""

import os

import numpy as np
import pytest
from conftest import FakeEncoder

from clipseek.gallery.store import Store
from clipseek.gallery.vector_index import VectorIndex


def unit(rng, n, d=32):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def clustered(rng, n, d=32, centers=50):
    c = unit(rng, centers, d)
    return unit_rows(c[rng.integers(0, centers, n)] + 0.3 * unit(rng, n, d))


def unit_rows(v):
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def brute(vecs, ids, q, k):
    s = vecs @ q
    order = np.argsort(-s, kind="stable")[:k]
    return ids[order], s[order]


def fill(store, vecs, start=0):
    with store.transaction():
        store.insert_files([(f"/img/{start + i}.png", 1, 1, f"h{start + i}", 8, 8, v)
                            for i, v in enumerate(vecs)])


@pytest.fixture
def store(tmp_path):
    s = Store.open(str(tmp_path / "g.db"))
    s.bind_model(FakeEncoder().fingerprint, 32)
    yield s
    s.close()


def test_flat_equals_brute_force():
    rng = np.random.default_rng(0)
    vecs, ids = unit(rng, 500), np.arange(10, 510, dtype=np.int64)
    vi = VectorIndex.build(ids, vecs)
    assert vi.state.kind == "flat"
    for q in unit(rng, 5):
        scores, got = vi.search(q, 10)
        want_ids, want_scores = brute(vecs, ids, q, 10)
        assert got[0].tolist() == want_ids.tolist() and np.allclose(scores[0], want_scores, atol=1e-5)
    scores, got = vi.search(unit(rng, 1)[0], 10_000)  # k larger than the index: everything, once
    assert sorted(got[0].tolist()) == ids.tolist()


def test_hnsw_sq8_recall_and_memory():
    rng = np.random.default_rng(1)
    vecs = clustered(rng, 4000)
    ids = np.arange(1, 4001, dtype=np.int64)
    vi = VectorIndex.build(ids, vecs, kind="hnsw-sq8")
    assert type(vi.index).__name__ == "IndexHNSWSQ"
    queries = clustered(rng, 50)
    _, got = vi.search(queries, 10)
    recall = np.mean([len(set(g) & set(brute(vecs, ids, q, 10)[0])) / 10 for g, q in zip(got, queries)])
    assert recall >= 0.95


def test_pq_sq8_recall_parts_and_persistence(tmp_path):
    rng = np.random.default_rng(5)
    vecs = clustered(rng, 6000, d=64)
    ids = np.arange(100, 6100, dtype=np.int64)
    vi = VectorIndex.build(ids, vecs, kind="pq-sq8")
    assert len(vi.parts) == 2 and vi.state.parts == [3000, 3000] and vi.ntotal == 6000
    queries = clustered(rng, 50, d=64)
    scores, got = vi.search(queries, 10)
    truth = [brute(vecs, ids, q, 10) for q in queries]
    recall = np.mean([len(set(g) & set(t[0])) / 10 for g, t in zip(got, truth)])
    assert recall >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # merged across parts: still best first
    # scores are 8-bit approximations of the true cosines
    assert np.allclose(scores[:, 0], [t[1][0] for t in truth], atol=0.02)

    extra = clustered(rng, 1000, d=64)  # appended to the smaller part, nothing rebuilt
    vi.add(np.arange(6100, 7100, dtype=np.int64), extra)
    assert sorted(vi.state.parts) == [3000, 4000] and vi.state.count == 7000
    q = extra[3]
    assert vi.search(q, 1)[1][0, 0] == 6103

    path = str(tmp_path / "x.faiss")
    vi.save(path)
    back = VectorIndex.load(path)
    assert back.state == vi.state
    for q in queries[:5]:
        assert back.search(q, 10)[1].tolist() == vi.search(q, 10)[1].tolist()
    assert back.search(q, 7000)[1].shape == (1, 7000)  # k as large as the index: every id once
    assert sorted(back.search(q, 7000)[1][0].tolist()) == list(range(100, 7100))
    os.remove(path + ".1")  # a missing part: not trusted
    assert VectorIndex.load(path) is None


def test_for_store_persists_extends_and_rebuilds(store, monkeypatch):
    rng = np.random.default_rng(2)
    fill(store, unit(rng, 100))
    vi = VectorIndex.for_store(store)
    assert os.path.exists(store.path + ".faiss") and vi.state.count == 100

    rebuilds = []
    real = VectorIndex.rebuild.__func__
    monkeypatch.setattr(VectorIndex, "rebuild", classmethod(lambda cls, *a, **k: rebuilds.append(1) or real(cls, *a, **k)))
    fill(store, unit(rng, 20), start=100)  # new rows: loaded from disk and extended, not rebuilt
    vi = VectorIndex.for_store(store)
    assert rebuilds == [] and vi.state.count == 120 and vi.state.max_id == 120
    assert VectorIndex.load(store.path + ".faiss").state.count == 120  # extension was saved

    with store.transaction():  # a few deletions: filtered at query time, no rebuild
        store.remove_paths(["/img/0.png", "/img/1.png"])
    vi = VectorIndex.for_store(store)
    assert rebuilds == [] and vi.state.deleted == 2

    with store.transaction():  # many deletions: rebuilt without them
        store.remove_paths([f"/img/{i}.png" for i in range(2, 40)])
    vi = VectorIndex.for_store(store)
    assert rebuilds == [1] and vi.state.count == 80 and vi.state.deleted == 0

    os.remove(store.path + ".faiss")  # deleting the cache loses nothing
    vi2 = VectorIndex.for_store(store)
    q = unit(rng, 1)[0]
    assert vi2.search(q, 10)[1].tolist() == vi.search(q, 10)[1].tolist()

    os.remove(store.path + ".faiss.ids.npy")  # a partial cache is rebuilt
    assert VectorIndex.for_store(store).state.count == 80
    with open(store.path + ".faiss", "wb") as f:  # a corrupt cache is rebuilt too
        f.write(b"garbage")
    assert VectorIndex.for_store(store).state.count == 80


def test_switches_to_approximate_above_threshold(store):
    rng = np.random.default_rng(3)
    fill(store, clustered(rng, 300))
    assert VectorIndex.for_store(store, threshold=500).state.kind == "flat"
    fill(store, clustered(rng, 300), start=300)
    vi = VectorIndex.for_store(store, threshold=500)
    assert vi.state.kind == "pq-sq8" and vi.state.count == 600
    fill(store, clustered(rng, 10), start=600)  # grows in place
    assert VectorIndex.for_store(store, threshold=500).state.count == 610


def test_index_of_another_db_is_not_trusted(tmp_path, store):
    rng = np.random.default_rng(4)
    fill(store, unit(rng, 30))
    VectorIndex.for_store(store)
    other = Store.open(str(tmp_path / "other.db"))
    other.bind_model(FakeEncoder().fingerprint, 32)
    fill(other, unit(rng, 7))
    os.replace(store.path + ".faiss", other.path + ".faiss")
    os.replace(store.path + ".faiss.json", other.path + ".faiss.json")
    os.replace(store.path + ".faiss.ids.npy", other.path + ".faiss.ids.npy")
    assert VectorIndex.for_store(other).state.count == 7
    other.close()
