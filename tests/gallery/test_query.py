"""gallery.query: filters parsed from the user's strings (applied by gallery.search.facets: test_facets.py),
query terms and weights, the arithmetic, and the relevance statistic."""

from datetime import datetime

import numpy as np
import pytest

from clipseek.errors import UsageError
from clipseek.gallery.query import (
    Filter,
    Term,
    combine,
    parse_term,
    relevance,
)


def ns(*args) -> int:
    return round(datetime(*args).timestamp() * 1e6) * 1000


def test_parse_filter_values(tmp_path):
    f = Filter.parse(["holiday", str(tmp_path / "b") + "/"], after="2024-05-01", before="2025",
                     orientation="Landscape", min_size="800x600", ext="JPG, png", root=str(tmp_path))
    assert f.folders == (str(tmp_path / "holiday"), str(tmp_path / "b"))
    assert (f.after_ns, f.before_ns) == (ns(2024, 5, 1), ns(2025, 1, 1))
    assert f.orientation == "landscape" and (f.min_width, f.min_height) == (800, 600)
    assert f.exts == (".jpg", ".jpeg", ".png")
    assert Filter.parse(after="2024-05").after_ns == ns(2024, 5, 1)
    assert Filter.parse(after="2024-05-01T10:30").after_ns == ns(2024, 5, 1, 10, 30)
    assert Filter.parse(after="2024-05-01T10:30+00:00").after_ns == 1714559400 * 10 ** 9
    assert Filter.parse(["x"], root="/r").folders == ("/r/x",)
    assert not Filter() and not Filter.parse() and Filter.parse(ext="tif")
    assert Filter.parse(ext="tif").exts == (".tif", ".tiff")
    assert "landscape" in f.describe() and "2024-05-01" in f.describe()


@pytest.mark.parametrize("kwargs, message", [
    ({"after": "yesterday"}, "cannot read after date 'yesterday'"),
    ({"before": "2024-13-01"}, "cannot read before date"),
    ({"after": "2024-02-01", "before": "2024-01-01"}, "is not before"),
    ({"orientation": "diagonal"}, "unknown orientation 'diagonal'"),
    ({"min_size": "800"}, "cannot read min-size '800'"),
    ({"min_size": "axb"}, "WIDTHxHEIGHT"),
    ({"ext": "jpg,doc"}, "unknown image extension 'doc'"),
])
def test_bad_filter_values_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        Filter.parse(**kwargs)


def test_terms_weights_paths_and_ids(tmp_path):
    img = tmp_path / "sun set.png"
    img.write_bytes(b"x")
    assert parse_term("sunset") == Term(1.0, text="sunset")
    assert parse_term("0.5:sunset", -1) == Term(-0.5, text="sunset")
    assert parse_term("2:at night: a city") == Term(2.0, text="at night: a city")
    assert parse_term("note: red") == Term(1.0, text="note: red")  # not a number before ':': text
    assert parse_term(str(img)) == Term(1.0, image=str(img))
    assert parse_term(str(img), allow_paths=False) == Term(1.0, text=str(img))
    assert parse_term("0.25:image:17") == Term(0.25, image_id=17)
    assert parse_term("1e-1:red").weight == pytest.approx(0.1)


@pytest.mark.parametrize("spec, message", [
    ("1..5:red", "weight '1..5' in '1..5:red' is not a number"),
    ("-1:red", "must be a positive number"),
    ("0,5:red", "weight '0,5' in '0,5:red' is not a number"),
    ("0:red", "must be a positive number"),
    ("0.5:", "empty term"),
    ("missing.jpg", "image not found: missing.jpg"),
])
def test_bad_terms(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_term(spec)


def test_a_folder_is_not_a_readable_image(tmp_path):
    with pytest.raises(UsageError, match="not a readable image"):
        parse_term(str(tmp_path))


def test_combine_is_the_normalised_weighted_sum():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((3, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    got = combine([1.0, 0.5, -0.25], v)
    want = v[0] + 0.5 * v[1] - 0.25 * v[2]
    assert np.allclose(got, want / np.linalg.norm(want), atol=1e-6)
    assert np.isclose(np.linalg.norm(got), 1, atol=1e-6) and got.dtype == np.float32
    with pytest.raises(UsageError, match="cancel each other out"):
        combine([1.0, -1.0], v[[0, 0]])


def test_relevance_is_the_place_between_median_and_top():
    background = np.array([0.0, 0.05, 0.1, 0.15, 0.2, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45])  # median 0.2
    got = relevance(np.array([0.6, 0.2, 0.56]), background, [0.6, 0.6])
    assert np.allclose(got, [1.0, 0.0, 0.9])
    # the same under any shift and scaling of the scores (a fixed cosine threshold is not)
    assert np.allclose(relevance(3 * np.array([0.6, 0.2, 0.56]) - 1, 3 * background - 1, [0.8, 0.8]), got)
    even = np.array([0.4, 0.0, 0.3, 0.1, 0.0, 0.3, 0.1, 0.4, 0.2, 0.2])  # an even count: as np.median
    assert np.allclose(relevance(np.array([0.2]), even, [0.6]), (0.2 - 0.2) / (0.6 - 0.2))
    rng = np.random.default_rng(0)
    for n in (10, 11, 10_000):
        sample = rng.standard_normal(n).astype(np.float32)
        assert np.isclose(relevance(np.array([1.0]), sample, [2.0])[0],
                          (1.0 - np.median(sample)) / (2.0 - np.median(sample)))
