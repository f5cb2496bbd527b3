"""The FAISS index: exact below the threshold, inverted file over PQ codes + SQ8 re-score above (or the
exhaustive PQ scan), persisted, extended, retrained when drifted, rebuilt."""

import json
import os
import threading

import numpy as np
import pytest

from clipseek.gallery.search import kinds
from clipseek.gallery.search.vector_index import APPROX_KIND, VectorIndex
from clipseek.gallery.store import Store
from helpers import FakeEncoder


def unit(rng, n, d=32):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def clustered(rng, n, d=32, centers=50, spread=0.3):
    c = unit(rng, centers, d)
    return unit_rows(c[rng.integers(0, centers, n)] + spread * unit(rng, n, d))


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


@pytest.mark.parametrize("kind", ["ivf-pq-sq8", "pq-sq8"])
def test_approximate_recall_parts_and_persistence(tmp_path, kind):
    rng = np.random.default_rng(5)
    vecs = clustered(rng, 6000, d=64)
    ids = np.arange(100, 6100, dtype=np.int64)
    vi = VectorIndex.build(ids, vecs, kind=kind)
    assert len(vi.parts) == 2 and vi.state.parts == [3000, 3000] and vi.ntotal == 6000
    if kind == "ivf-pq-sq8":  # clustered data: a measured few of its lists are probed
        assert vi.state.nlist == 64 and 1 <= vi.state.nprobe <= 16 and vi.state.trained == 6000
    queries = unit_rows(vecs[rng.integers(0, 6000, 50)] + 0.5 * unit(rng, 50, d=64))  # near the data
    scores, got = vi.search(queries, 10)
    truth = [brute(vecs, ids, q, 10) for q in queries]
    recall = np.mean([len(set(g) & set(t[0])) / 10 for g, t in zip(got, truth)])
    assert recall >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # merged across parts: still best first
    # scores are 8-bit approximations of the true cosines
    assert np.allclose(scores[:, 0], [t[1][0] for t in truth], atol=0.02)

    extra = clustered(rng, 1000, d=64)  # appended, spread to keep the parts even, nothing rebuilt
    vi.add(np.arange(6100, 7100, dtype=np.int64), extra)
    assert vi.state.parts == [3500, 3500] and vi.state.count == 7000
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
    monkeypatch.setattr(VectorIndex, "rebuild",
                        classmethod(lambda cls, *a, **k: rebuilds.append(1) or real(cls, *a, **k)))
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
    assert vi.state.kind != "flat" and vi.state.count == 600
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


@pytest.mark.parametrize("kind", ["flat", "ivf-pq-sq8", "pq-sq8"])
def test_zero_vectors_build_save_load_and_answer_nothing(tmp_path, kind):
    vi = VectorIndex.build(np.zeros(0, np.int64), np.zeros((0, 32), np.float32), kind=kind)
    assert vi.state.kind == kind and vi.state.count == 0
    path = str(tmp_path / "empty.faiss")
    vi.save(path)
    back = VectorIndex.load(path)
    assert back is not None and back.state == vi.state
    scores, ids = back.search(np.ones(32, np.float32), 10)
    assert ids[0].tolist() == [] and scores.shape == (1, 0)
    rng = np.random.default_rng(8)  # the first vectors added train an empty approximate index
    vecs = clustered(rng, 200)
    back.add(np.arange(1, 201), vecs)
    assert back.search(vecs[7], 1)[1][0, 0] == 8


def test_empty_store_gets_an_empty_index_of_its_dim(tmp_path, store):
    vi = VectorIndex.for_store(store)
    assert vi.state.count == 0 and vi.parts[0].d == 32 and vi.search(np.ones(32), 5)[1][0].tolist() == []
    with Store.open(str(tmp_path / "unbound.db")) as s:  # no model yet: no dim to guess
        assert VectorIndex.for_store(s).search(np.ones(4), 5)[1][0].tolist() == []
    rng = np.random.default_rng(9)
    fill(store, unit(rng, 30))  # then filled: rebuilt, not extended
    assert VectorIndex.for_store(store).state.count == 30


def test_build_and_rebuild_share_one_path(store):
    """Arrays and the store go through one build (same sample rule): the same vectors, the same index."""
    rng = np.random.default_rng(10)
    for kind, vecs in (("ivf-pq-sq8", clustered(rng, 900, centers=8, spread=0.1)), ("pq-sq8", unit(rng, 3000))):
        fill(store, vecs, start=len(store.all_vectors()[0]))
        ids, all_vecs = store.all_vectors()
        from_store = VectorIndex.rebuild(store, threshold=100)
        from_arrays = VectorIndex.build(ids, all_vecs, threshold=100, db_id=store.db_id,
                                        fingerprint=str(store.fingerprint))
        assert from_store.state == from_arrays.state and from_store.state.kind == kind
        for q in clustered(rng, 5):
            a, b = from_store.search(q, 20), from_arrays.search(q, 20)
            assert a[1].tolist() == b[1].tolist() and np.allclose(a[0], b[0])


def live_brute(store, q, k):
    ids, vecs = store.all_vectors()
    return brute(vecs, ids, q, k)


def delete(store, positions):
    with store.transaction():
        store.remove_paths([f"/img/{i}.png" for i in positions])
    return {int(i) + 1 for i in positions}  # row ids


def check_live_top_k(vi, store, q, gone, calls):
    for k in (1, 10, 50):
        calls.clear()
        ids = vi.search(q, k)[1][0]
        want = live_brute(store, q, k)[0]
        assert len(ids) == k and set(ids.tolist()) <= set(store.all_vectors()[0].tolist())
        assert not set(ids.tolist()) & gone
        if vi.state.kind == "flat":
            assert ids.tolist() == want.tolist() and calls == [k]  # the selector: no extra candidates
        else:  # 8-bit scores: the true top k are among the top k + 32 (the gallery re-ranks those)
            assert set(want.tolist()) <= set(vi.search(q, k + 32)[1][0].tolist())


@pytest.mark.parametrize("threshold", [10_000, 100])  # flat, ivf-pq-sq8 (16 lists)
def test_deleted_rows_are_filtered_not_overfetched(store, threshold):
    rng = np.random.default_rng(11)
    vecs = clustered(rng, 1200, centers=16, spread=0.1)  # clusters that an inverted file (16 lists) uses
    fill(store, vecs)
    vi = VectorIndex.for_store(store, threshold=threshold)
    assert (vi.state.kind, vi.state.nlist) == (("flat", 0) if threshold > 1200 else (APPROX_KIND, 16))
    calls = []
    real = vi._search_parts
    vi._search_parts = lambda qq, k, *rest: calls.append(k) or real(qq, k, *rest)
    q = vecs[5]
    near = brute(vecs, np.arange(1200), q, 60)[0]  # the query's 60 nearest rows (positions)
    far = np.setdiff1d(np.arange(1200), near)
    gone = delete(store, rng.choice(far, 50, replace=False))  # scattered deletions
    assert vi.sync(store, threshold) and vi.state.deleted == 50 and vi.state.count == 1200  # no rebuild
    check_live_top_k(vi, store, q, gone, calls)
    for k in (1, 10, 50):  # one search, asking for a share more, not for k + every deleted row
        calls.clear()
        vi.search(q, k)
        assert len(calls) == 1 and calls[0] <= (k if vi.state.kind == "flat" else -(-k * 1200 // 1150) + 8)

    gone |= delete(store, near)  # now every nearest neighbour of the query is gone too
    assert vi.sync(store, threshold) and vi.state.deleted == 110 and vi.state.count == 1200
    check_live_top_k(vi, store, q, gone, calls)
    assert sorted(vi.search(q, 5000)[1][0].tolist()) == sorted(store.all_vectors()[0].tolist())
    vi.save(store.path + ".faiss")
    back = VectorIndex.load(store.path + ".faiss")
    assert back.state.deleted == 110 and back.search(q, 10)[1].tolist() == vi.search(q, 10)[1].tolist()


def test_an_index_of_a_former_kind_or_format_is_rebuilt(store):
    rng = np.random.default_rng(12)
    fill(store, clustered(rng, 300))
    VectorIndex.for_store(store)
    with open(store.path + ".faiss.json") as f:
        state = json.load(f)
    with open(store.path + ".faiss.json", "w") as f:  # as saved by an older clipseek
        json.dump({**state, "kind": "hnsw-sq8"}, f)
    assert VectorIndex.load(store.path + ".faiss") is None
    vi = VectorIndex.for_store(store)
    assert vi.state.kind == "flat" and vi.state.count == 300
    assert VectorIndex.load(store.path + ".faiss").state.kind == "flat"

    old = {k: v for k, v in state.items() if k not in ("nlist", "nprobe", "trained", "base_distance",
                                                        "added_distance")}
    with open(store.path + ".faiss.json", "w") as f:  # format 3 (its approximate kind: "pq-sq8")
        json.dump({**old, "kind": "pq-sq8", "format": 3}, f)
    assert VectorIndex.load(store.path + ".faiss") is None
    vi = VectorIndex.for_store(store, threshold=100)  # rebuilt, to the kind a build chooses now
    assert vi.state.format == 4 and vi.state.kind != "flat" and vi.state.trained == vi.state.count == 300
    assert VectorIndex.load(store.path + ".faiss").state == vi.state


def test_search_threads_belong_to_the_index_and_stop_on_close():
    def search_threads():
        return [t for t in threading.enumerate() if t.name.startswith("clipseek-search")]
    rng = np.random.default_rng(13)
    before = set(search_threads())  # another index's threads may end meanwhile: only new ones count
    vi = VectorIndex.build(np.arange(1, 2001), clustered(rng, 2000), kind=APPROX_KIND)
    vi.search(unit(rng, 1)[0], 10)
    assert set(search_threads()) - before
    vi.close()
    assert not set(search_threads()) - before
    assert len(vi.search(unit(rng, 1)[0], 10)[1][0]) == 10  # usable again: it starts new threads
    vi.close()


def test_nlist_rule():
    assert [kinds.nlist_for(n) for n in (20, 600, 1200, 6000, 50_000, 1_000_000, 10**7)] == \
        [1, 8, 16, 64, 256, 1024, 1024]


def test_probe_count_is_the_fewest_that_reach_the_recall_doubled():
    truth = np.arange(100, 110)
    asked = []

    def search(queries, k, nprobe):  # finds the true top 10 from 8 lists on
        asked.append(nprobe)
        return np.array([np.concatenate([truth if nprobe >= 8 else truth + 1000, np.arange(k)])[:k]] * 2)
    assert kinds.choose_nprobe(search, np.zeros((2, 4)), 1024) == 16 and asked == [1024, 1, 2, 4, 8]
    assert kinds.choose_nprobe(search, np.zeros((2, 4)), 8) == 8  # at most all of them


def test_pseudo_queries_lie_near_the_data_but_are_none_of_it():
    rng = np.random.default_rng(17)
    data = clustered(rng, 3000, d=16, centers=10)
    q = kinds.pseudo_queries(data, 200)
    assert q.shape == (200, 16) and np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    nearest = (q @ data.T).max(1)
    assert 0.5 < nearest.mean() < 0.98 and nearest.max() < 0.999  # near points, not copies of them
    assert (q @ data.T).mean() == pytest.approx((data @ data.T).mean(), abs=0.1)  # spread as the data


def test_the_build_chooses_the_inverted_file_only_where_it_helps():
    rng = np.random.default_rng(14)
    random, tight = unit(rng, 4000, d=128), clustered(rng, 4000, d=128, centers=20)
    ids = np.arange(1, 4001)
    forced = VectorIndex.build(ids, random, kind=APPROX_KIND)  # an inverted file when asked for one:
    assert forced.state.nlist == 64 and forced.state.nprobe == 64  # random data: every list probed
    tight_ivf = VectorIndex.build(ids, tight, kind=APPROX_KIND)
    assert tight_ivf.state.nlist == 64 and tight_ivf.state.nprobe <= 16  # clustered: a few

    assert VectorIndex.build(ids, random).state.kind == "flat"  # below the threshold
    chosen = VectorIndex.build(ids, tight, threshold=100)  # above it, the kind is chosen:
    assert chosen.state.kind == APPROX_KIND and chosen.state.nprobe == tight_ivf.state.nprobe
    chosen = VectorIndex.from_chunks(lambda: iter([(ids, random)]), 4000, 128, threshold=100)
    assert chosen.state.kind == "pq-sq8" and chosen.state.trained == 4000  # it would not help: exhaustive


def test_k_beyond_the_probed_lists_still_returns_k():
    rng = np.random.default_rng(15)
    vi = VectorIndex.build(np.arange(1, 3001), clustered(rng, 3000), kind=APPROX_KIND)
    assert vi.state.nprobe < vi.state.nlist
    for k in (200, 1500, 3000):
        ids = vi.search(unit(rng, 1)[0], k)[1][0]
        assert len(ids) == len(set(ids.tolist())) == k and ids.min() >= 1


def test_drift_from_the_centroids_retrains_in_distribution_growth_does_not(store, caplog):
    rng = np.random.default_rng(16)
    centers, elsewhere = unit(rng, 40), unit(rng, 40)

    def around(c, n):
        return unit_rows(c[rng.integers(0, len(c), n)] + 0.3 * unit(rng, n, 32))
    fill(store, around(centers, 2000))
    vi = VectorIndex.for_store(store, threshold=100)
    assert vi.state.kind == APPROX_KIND and vi.state.trained == 2000 and vi.state.base_distance > 0
    fill(store, around(centers, 400), start=2000)  # 20% more of the same: extended, not retrained
    assert vi.sync(store, 100) and vi.state.count == 2400 and vi.state.trained == 2000
    assert kinds.drifted(vi.state) == ""
    assert vi.state.added_distance / 400 < 1.2 * vi.state.base_distance

    moved = around(elsewhere, 500)  # the data moves away from every trained centroid
    fill(store, moved, start=2400)
    with caplog.at_level("INFO", logger="clipseek.gallery"):
        assert vi.sync(store, 100)
    assert "farther from their centroids" in caplog.text
    assert vi.state.trained == vi.state.count == 2900 and vi.state.added_distance == 0  # retrained
    assert VectorIndex.for_store(store, threshold=100).state.trained == 2900  # and saved by for_store
    for i in (0, 250, 499):
        assert vi.search(moved[i], 1)[1][0, 0] == 2401 + i

    fill(store, around(elsewhere, 3 * 2900 + 1), start=2900)  # over 4x the trained count: retrained
    assert vi.sync(store, 100) and vi.state.trained == vi.state.count == 4 * 2900 + 1


@pytest.mark.parametrize("scan_factor", [0, 10 ** 12])  # pq-sq8: over-fetch and filter / score alone
@pytest.mark.parametrize("kind", ["flat", "pq-sq8"])
def test_filtered_search_returns_the_k_best_allowed_live_rows(kind, scan_factor, monkeypatch):
    import clipseek.gallery.search.vector_index as vindex

    monkeypatch.setattr(vindex, "SCAN_FACTOR", scan_factor)
    rng = np.random.default_rng(4)
    vecs, ids = clustered(rng, 2000), np.arange(1, 2001, dtype=np.int64)
    vi = VectorIndex.build(ids, vecs, kind=kind)
    gone = rng.choice(ids, 100, replace=False)
    vi.mark_deleted(np.setdiff1d(ids, gone))
    for share in (0.01, 0.1, 0.5):
        allowed = np.sort(rng.choice(ids, int(share * 2000), replace=False))
        live_allowed = np.setdiff1d(allowed, gone)
        keep = np.isin(ids, live_allowed)
        for q in clustered(rng, 3):
            for k in (1, 10, 100):
                scores, got = vi.search(q, k, allowed=allowed)
                want, _ = brute(vecs[keep], ids[keep], q, k)
                assert len(got[0]) == min(k, len(live_allowed))  # k that pass, never fewer
                assert set(got[0].tolist()) <= set(live_allowed.tolist())
                if kind == "flat":
                    assert got[0].tolist() == want.tolist()
                else:  # 8-bit scores: the true top k are among the top k + 32 (the gallery re-ranks)
                    wider = vi.search(q, k + 32, allowed=allowed)[1][0]
                    assert len(set(want.tolist()) - set(wider.tolist())) <= k // 10
    assert vi.search(vecs[0], 10, allowed=np.array([], np.int64))[1].shape == (1, 0)
    assert vi.search(vecs[0], 10, allowed=gone[:5])[1].shape == (1, 0)  # only deleted rows allowed


@pytest.mark.parametrize("kind", ["flat", "pq-sq8"])
def test_filtered_search_takes_allowed_ids_in_any_order_with_repeats(kind):
    rng = np.random.default_rng(9)
    vecs, ids = clustered(rng, 1500), np.arange(1, 1501, dtype=np.int64)
    vi = VectorIndex.build(ids, vecs, kind=kind)
    allowed = np.sort(rng.choice(ids, 700, replace=False))
    shuffled = np.concatenate([rng.permutation(allowed), allowed[:50]])  # unsorted, 50 repeated
    for q in clustered(rng, 3):
        want = vi.search(q, 20, allowed=allowed)
        got = vi.search(q, 20, allowed=shuffled)
        assert got[1].tolist() == want[1].tolist() and np.allclose(got[0], want[0])
        assert set(got[1][0].tolist()) <= set(allowed.tolist())
