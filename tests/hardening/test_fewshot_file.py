"""Hostile classifier files (`--classifier FILE` is untrusted input): each is refused with one line
naming the file and the problem, nothing in it is unpickled or run, and no array is used unchecked."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

from clipseek.errors import UsageError
from clipseek.fewshot.classifier import fit_classifier
from clipseek.fewshot.classifier_file import load_classifier, save_classifier

FP = "fake-clip@v1 backend=fake dtype=float32 pre=center-32-crop32x32"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The arrays of a valid tip classifier file (with conformal and anomaly parts)."""
    from clipseek.fewshot.examples import ExampleSet

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    x = rng.standard_normal((30, 8)) + 2 * np.eye(3, 8)[y]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ex = ExampleSet(["a", "b", "c"], ["a", "b", "c"], np.eye(3, 8, dtype=np.float32), x, y, 25.0, FP)
    path = tmp_path_factory.mktemp("good") / "c.npz"
    save_classifier(fit_classifier(ex, "tip", coverage=0.8, false_alarm=0.2), path)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write(path, arrays, meta=None):
    arrays = dict(arrays)
    if meta is not None:
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def meta_of(arrays):
    return json.loads(arrays["meta"].tobytes())


def refused(path, match):
    with pytest.raises(UsageError, match=match) as e:
        load_classifier(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_the_good_file_loads(tmp_path, good):
    assert load_classifier(write(tmp_path / "ok.npz", good)).method == "tip"


def test_a_pickled_object_is_never_loaded(tmp_path, good):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    arrays = dict(good)
    arrays["head.class_vecs"] = np.array([Boom()], dtype=object)
    buf = io.BytesIO()
    np.savez(buf, **arrays)     # savez pickles the object array
    (tmp_path / "p.npz").write_bytes(buf.getvalue())
    refused(tmp_path / "p.npz", "an array cannot be read")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("change,match", [
    (lambda m: m.update(version=2), "classifier file version 2; this clipseek reads version 1"),
    (lambda m: m.update(format="other"), "not a clipseek classifier file"),
    (lambda m: m.update(classes=["a", "a", "c"]), "classes must be a non-empty list of distinct names"),
    (lambda m: m.update(texts=["a"]), "texts must be a label text"),
    (lambda m: m.update(fingerprint="garbage"), "no readable model fingerprint"),
    (lambda m: m.update(method="eval"), "unknown method 'eval'"),
    (lambda m: m["settings"].update(alpha=float("nan")), "alpha must be a finite number"),
    (lambda m: m["settings"].update(beta=-1), "beta must be a finite number"),
    (lambda m: m.update(temperature=1e300 * 10), "temperature must be a finite number"),
    (lambda m: m["conformal"].update(coverage=1.5), "coverage must be a finite number in \\(0, 1\\)"),
    (lambda m: m["conformal"].update(k_reg="2"), "k_reg must be a finite integer"),
    (lambda m: m["anomaly"].update(neighbours=10 ** 6), "neighbours must be a finite integer"),
    (lambda m: m.update(selection=[1]), "selection must be an object"),
])
def test_bad_metadata(tmp_path, good, change, match):
    meta = meta_of(good)
    change(meta)
    refused(write(tmp_path / "m.npz", {k: v for k, v in good.items() if k != "meta"}, meta), match)


@pytest.mark.parametrize("name,value,match", [
    ("head.class_vecs", lambda a: np.where(np.eye(3, 8) > 0, np.nan, a).astype(np.float32), "non-finite"),
    ("head.class_vecs", lambda a: a[:2], r"is float32\[2, 8\], expected float32\[3, 8\]"),
    ("head.cache_vecs", lambda a: a.astype(np.float64), "is float64"),
    ("head.cache_labels", lambda a: a + 3, "the example cache does not match its classes"),
    ("head.cache_labels", lambda a: a[:5], "the example cache does not match its classes"),
    ("references", lambda a: a[:, :4], r"expected float32\[None, 8\]"),
    ("meta", lambda a: np.frombuffer(b"\xff\xfe", np.uint8), "its metadata is not valid JSON"),
])
def test_bad_arrays(tmp_path, good, name, value, match):
    arrays = dict(good)
    arrays[name] = value(arrays[name])
    refused(write(tmp_path / "a.npz", arrays), match)


def test_missing_and_unexpected_members(tmp_path, good):
    refused(write(tmp_path / "m.npz", {k: v for k, v in good.items() if k != "head.cache_vecs"}),
            "missing array 'head.cache_vecs'")
    refused(write(tmp_path / "x.npz", {**good, "evil": np.zeros(1)}), "unexpected member 'evil.npy'")


def test_not_an_archive_and_not_a_file(tmp_path):
    (tmp_path / "t.npz").write_text("hello")
    refused(tmp_path / "t.npz", "not an .npz archive")
    (tmp_path / "e.npz").write_bytes(b"")
    refused(tmp_path / "e.npz", "empty file")
    refused(tmp_path / "missing.npz", "cannot read the classifier")
    (tmp_path / "dir.npz").mkdir()
    refused(tmp_path / "dir.npz", "not a regular file")


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path, good):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("meta.npy", b"\0" * (5 << 20))      # 5 MB of zeros, a few KB compressed
    (tmp_path / "bomb.npz").write_bytes(buf.getvalue())
    refused(tmp_path / "bomb.npz", "member 'meta.npy' too large")
