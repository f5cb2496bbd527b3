"""Gallery.search with filters, query arithmetic and relevance, against brute-force numpy references
over the stored vectors: filters before ranking (k results that pass, exact and approximate index,
both filtered strategies), the weighted sum of terms, and the relevance statistic."""

import os
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

import clipseek
import clipseek.gallery.search.vector_index as vindex
from clipseek.errors import UsageError
from clipseek.gallery.query import RELEVANT_AT, TOP_N, Filter, Term
from helpers import make_image

EXTS = (".png", ".jpg", ".webp")


@pytest.fixture(scope="module")
def dated_photos(tmp_path_factory):
    """60 images: three folders, three file types, landscape/portrait/square, two capture dates."""
    d = tmp_path_factory.mktemp("q") / "photos"
    for sub in ("trip", "trip/day2", "home"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for i in range(60):
        size = [(64, 40), (40, 64), (48, 48)][i % 3]
        folder = ("trip", "trip/day2", "home", "")[i % 4]
        path = d / folder / f"p{i:02d}{EXTS[i % 5 % 3]}"
        img = make_image(i, size)
        if path.suffix == ".jpg" and i % 2:
            exif = Image.Exif()
            exif.get_ifd(0x8769)[36867] = "2018:06:01 12:00:00"
            img.save(path, quality=90, exif=exif)
        else:
            img.save(path)
        os.utime(path, (datetime(2024, 1, 1 + i % 20).timestamp(),) * 2)
    return d


@pytest.fixture(scope="module", params=["flat", "pq-sq8"])
def gallery(request, dated_photos, tmp_path_factory, fake_encoder):
    db = str(tmp_path_factory.mktemp("db") / "g.db")
    g = clipseek.Gallery(db, fake_encoder, approx_threshold=10_000 if request.param == "flat" else 16)
    g.index([str(dated_photos)])
    assert g._index.state.kind == request.param
    yield g
    g.close()


def passes(row, f: Filter, taken) -> bool:
    """The filter by hand, for one catalogued row."""
    when = taken if taken is not None else row.mtime_ns
    shape = {"landscape": row.width > row.height, "portrait": row.height > row.width,
             "square": row.width == row.height}
    return (not f.folders or any(row.path.startswith(d + os.sep) for d in f.folders)) and \
        (f.after_ns is None or when >= f.after_ns) and (f.before_ns is None or when < f.before_ns) and \
        (f.orientation is None or shape[f.orientation]) and row.width >= f.min_width and \
        row.height >= f.min_height and (not f.exts or os.path.splitext(row.path)[1].lower() in f.exts)


def brute_force(g, q, k, f: Filter | None = None):
    ids, vecs = g.store.all_vectors()
    rows = g.store.get_rows(ids)
    taken = dict(g.store.conn.execute("SELECT id, taken_ns FROM files"))
    keep = np.array([f is None or passes(rows[int(i)], f, taken[int(i)]) for i in ids], bool)
    scores = vecs.astype(np.float64) @ q.astype(np.float64)
    order = [i for i in np.argsort(-scores, kind="stable") if keep[i]][:k]
    return [int(ids[i]) for i in order], scores[order]


FILTERS = [dict(folders=["trip"]), dict(folders=["trip/day2", "home"]), dict(orientation="portrait"),
           dict(orientation="square", ext="png"), dict(ext="jpg"), dict(min_size="48x48"),
           dict(after="2024-01-10"), dict(before="2019-01-01"),
           dict(folders=["trip"], orientation="landscape", after="2024-01-03")]


@pytest.mark.parametrize("scan_factor", [0, 10 ** 12])  # pq-sq8: over-fetch and filter / score alone
@pytest.mark.parametrize("fkw", FILTERS)
def test_filtered_search_equals_brute_force_over_the_filtered_set(gallery, dated_photos, fkw, scan_factor,
                                                                  monkeypatch, fake_encoder):
    monkeypatch.setattr(vindex, "SCAN_FACTOR", scan_factor)
    f = Filter.parse(root=str(dated_photos), **fkw)
    n_pass = gallery.count(f)
    assert 0 < n_pass < 60
    for text in ("a red car", "dog"):
        q = fake_encoder.encode_texts([text])[0]
        for k in (1, 5, 60):
            res = gallery.search(text, k=k, where=f)
            want_ids, want_scores = brute_force(gallery, q, k, f)
            assert len(res) == min(k, n_pass)  # k that pass, not "k, then filtered down"
            assert [r.id for r in res] == want_ids
            assert np.allclose([r.score for r in res], want_scores, atol=1e-5)


def test_dates_use_the_exif_capture_time_else_the_mtime(gallery, dated_photos):
    in_2018 = gallery.search("x", k=60, where=Filter.parse(after="2018-01-01", before="2019-01-01"))
    assert in_2018 and all(r.path.endswith(".jpg") and int(r.path[-6:-4]) % 2 for r in in_2018)
    assert len(in_2018) == sum(1 for i in range(60) if i % 5 % 3 == 1 and i % 2)
    jan = gallery.search("x", k=60, where=Filter.parse(after="2024-01-01", before="2024-01-03"))
    exif = {i for i in range(60) if i % 5 % 3 == 1 and i % 2}
    assert sorted(int(os.path.basename(r.path)[1:3]) for r in jan) == \
        [i for i in range(60) if i % 20 in (0, 1) and i not in exif]  # day 1 or 2, unless EXIF says 2018


def test_a_filter_no_image_passes_gives_no_results(gallery, dated_photos):
    f = Filter.parse(["nowhere"], root=str(dated_photos))
    assert gallery.count(f) == 0 and gallery.search("x", where=f) == []
    assert gallery.count() == 60


def test_query_arithmetic_equals_the_weighted_sum(gallery, dated_photos, fake_encoder):
    probe = dated_photos / "home" / "p02.webp"
    from clipseek.core.images import open_image

    t = fake_encoder.encode_texts(["red", "at night", "blue"])
    im = fake_encoder.encode_images([open_image(probe)])[0]
    first = gallery.search("red", k=1)[0]
    stored = gallery.store.vector(first.id)
    want = t[0] + 0.5 * t[1] - t[2] + 2 * im - 0.25 * stored
    want /= np.linalg.norm(want)
    res = gallery.search("red", k=10, add=["0.5:at night", f"2:{probe}"],
                         subtract=["blue", Term(-0.25, image_id=first.id)])
    want_ids, want_scores = brute_force(gallery, want, 10)
    assert [r.id for r in res] == want_ids and np.allclose([r.score for r in res], want_scores, atol=1e-5)
    # an image query with a text added; and add alone
    q = fake_encoder.encode_images([open_image(probe)])[0] + fake_encoder.encode_texts(["at night"])[0]
    res = gallery.search(image=str(probe), add=["at night"], k=5)
    assert [r.id for r in res] == brute_force(gallery, q / np.linalg.norm(q), 5)[0]
    assert [r.id for r in gallery.search(add=["at night"], k=3)] == \
        brute_force(gallery, fake_encoder.encode_texts(["at night"])[0], 3)[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(text="x", add=["abc.jpg"]), "image not found: abc.jpg"),
    (dict(text="x", add=["1..2:red"]), "is not a number"),
    (dict(subtract=["red"]), "empty query"),
    (dict(text="red", subtract=["red"]), "cancel each other out"),
    (dict(text="x", add=["image:999999"]), "no image with id 999999"),
])
def test_bad_terms_are_usage_errors(gallery, kwargs, message):
    with pytest.raises(UsageError, match=message):
        gallery.search(**kwargs)


def test_an_unreadable_image_term_is_a_usage_error(gallery, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(UsageError, match="broken.png is not a readable image"):
        gallery.search("x", add=[str(bad)])


@pytest.mark.parametrize("fkw", [{}, {"folders": ["trip"]}])
def test_relevance_is_measured_against_the_whole_gallery(gallery, dated_photos, fkw, fake_encoder):
    f = Filter.parse(root=str(dated_photos), **fkw)
    q = fake_encoder.encode_texts(["a red car"])[0]
    _, vecs = gallery.store.all_vectors()
    scores = vecs.astype(np.float64) @ q
    med, top = np.median(scores), np.sort(scores)[::-1][:TOP_N].mean()  # the sample is the gallery
    res = gallery.search("a red car", k=60, where=f)
    want = (np.array([r.score for r in res]) - med) / (top - med)
    assert np.allclose([r.relevance for r in res], want, atol=1e-5)
    assert [r.relevant for r in res] == list(want >= RELEVANT_AT)
    only = gallery.search("a red car", k=60, where=f, relevant=True)
    assert [r.id for r in only] == [r.id for r in res if r.relevant]
    assert res[0].to_dict()["relevant"] == res[0].relevant


def test_the_filter_columns_follow_changes_to_the_gallery(tmp_path, fake_encoder, monkeypatch):
    from clipseek.gallery.search.facets import Facets

    loads = []
    real_load = Facets.load.__func__
    monkeypatch.setattr(Facets, "load", classmethod(lambda cls, store: loads.append(1) or real_load(cls, store)))
    d = tmp_path / "photos"
    (d / "a").mkdir(parents=True)
    for i in range(4):
        make_image(i, (40, 30)).save(d / "a" / f"x{i}.png")
    f = Filter.parse([str(d / "a")])
    with clipseek.Gallery(str(tmp_path / "g.db"), fake_encoder) as g:
        g.index([str(d)])
        assert g.count(f) == 4 and len(g.search("x", k=9, where=f)) == 4 and g.count(f) == 4
        assert len(loads) == 1  # read once while nothing changes
        make_image(9, (40, 30)).save(d / "a" / "new.png")
        g.index([str(d)])  # this connection's commit
        assert g.count(f) == 5 and any(r.path.endswith("new.png") for r in g.search("x", k=5, where=f))
        os.remove(d / "a" / "x0.png")
        g.index([str(d)], refresh_index=False)  # one more, the FAISS cache left alone
        assert g.count(f) == 4 and len(loads) == 3
        with clipseek.Gallery(str(tmp_path / "g.db"), fake_encoder) as other:  # another connection's commit
            os.rename(d / "a" / "new.png", d / "moved.png")
            other.index([str(d)])
        assert g.count(f) == 3 and g.count(Filter.parse([str(d)])) == 4 and len(loads) == 4


def test_a_folder_whose_name_is_not_utf8_filters_like_any_other(tmp_path, fake_encoder):
    root = os.fsencode(tmp_path / "photos")
    for sub, n in ((b"caf\xe9", 3), (b"caf\xe9s", 2), (b"ok", 1)):  # caf\xe9 is a string prefix of caf\xe9s
        os.makedirs(os.path.join(root, sub))
        for i in range(n):
            with open(os.path.join(root, sub, b"p%d\xff.png" % i if i else b"p0.png"), "wb") as fh:
                make_image(i, (40, 30)).save(fh, "PNG")
    with clipseek.Gallery(str(tmp_path / "g.db"), fake_encoder) as g:
        g.index([os.fsdecode(root)])
        for given, ext, want in (([b"caf\xe9"], None, 3), ([b"caf\xe9/"], None, 3), ([b"caf"], None, 0),
                                 ([b"caf\xe9s", b"ok"], None, 3), ([b"caf\xe9s"], "png", 2), ([b"ok"], "jpg", 0)):
            f = Filter.parse([os.fsdecode(os.path.join(root, x)) for x in given], ext=ext)
            res = g.search("x", k=9, where=f)
            assert g.count(f) == len(res) == want, given
            assert all(os.fsencode(r.path).startswith(os.path.join(root, given[0].rstrip(b"/")) + b"/")
                       for r in res if len(given) == 1)
