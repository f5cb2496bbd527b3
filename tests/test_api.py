"""The public Python API as a notebook user writes it: one path is one path, folders expand, PIL
images are accepted where files are, one call evaluates, filters are keywords; the names `clipseek.`
completes are the ones the lazy loader resolves."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest

import clipseek
from clipseek.data.synthetic import render
from helpers import image_folder, make_image


def make_class_folders(root: Path, n_per_class: int, classes: list[str], seed: int) -> None:
    """Class folders of synthetic shapes: root/<class>/<k>.png, drawn by data.synthetic.render."""
    for c in classes:
        (root / c).mkdir(parents=True)
        colour, shape = c.split()
        for k in range(n_per_class):
            render(colour, shape, "large", "plain", seed * 1000 + k).save(root / c / f"{k}.png")


def test_classify_takes_a_folder_as_one_path(tmp_path, fake_encoder):
    d = image_folder(tmp_path / "photos", 4, broken=True)
    res = clipseek.classify(fake_encoder, str(d), ["cat", "dog"])
    assert sorted(Path(p.path).name for p in res.predictions) == [f"p{i}.png" for i in range(4)]
    assert [Path(s.path).name for s in res.skipped] == ["broken.jpg"]  # not one entry per character
    same = clipseek.classify(fake_encoder, sorted(str(p) for p in d.glob("p*.png")), ["cat", "dog"])
    assert np.allclose(res.probs, same.probs)
    assert clipseek.classify(fake_encoder, d, ["cat", "dog"]).labels == ["cat", "dog"]  # a Path too


def test_classify_mixes_files_and_pil_images_in_input_order(tmp_path, fake_encoder):
    d = image_folder(tmp_path / "photos", 3)
    im = make_image(7)
    res = clipseek.classify(fake_encoder, [str(d / "p1.png"), im, str(d / "missing.png"), str(d / "p0.png")],
                            ["cat", "dog", "car"])
    assert [p.path for p in res.predictions] == [str(d / "p1.png"), "<image 1>", str(d / "p0.png")]
    assert [Path(s.path).name for s in res.skipped] == ["missing.png"]
    # the in-memory image scores as its own file does
    im.save(tmp_path / "seven.png")
    alone = clipseek.classify(fake_encoder, tmp_path / "seven.png", ["cat", "dog", "car"])
    assert np.allclose(res.probs[1], alone.probs[0], atol=1e-6)
    assert np.allclose(res.probs.sum(axis=1), 1, atol=1e-5)


def test_classify_single_pil_image_and_the_deprecated_alias(fake_encoder):
    im = make_image(3)
    res = clipseek.classify(fake_encoder, im, ["cat", "dog"])
    assert [p.path for p in res.predictions] == ["<image 0>"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        probs = clipseek.classify_images(fake_encoder, [im], ["cat", "dog"])
    assert any(issubclass(x.category, DeprecationWarning) for x in w)
    assert np.allclose(probs, res.probs)


def test_classify_refuses_what_is_not_an_image(fake_encoder):
    with pytest.raises(clipseek.UsageError, match=r"images\[1\] is a int"):
        clipseek.classify(fake_encoder, [make_image(0), 5], ["cat"])


def test_classify_loads_a_model_by_name(tmp_path, tiny_ckpt, encoder):
    d = image_folder(tmp_path / "photos", 2)
    by_name = clipseek.classify(tiny_ckpt, d, ["cat", "dog"])
    loaded = clipseek.classify(encoder, d, ["cat", "dog"])
    assert np.allclose(by_name.probs, loaded.probs, atol=1e-5)


def test_evaluate_is_one_call_with_the_figures_as_attributes(tmp_path, fake_encoder):
    data = tmp_path / "data"
    make_class_folders(data, n_per_class=3, classes=["red circle", "blue square"], seed=1)
    res = clipseek.evaluate(fake_encoder, data)
    doc = clipseek.run_eval(str(data), [fake_encoder.name], lambda _: fake_encoder,
                            {"a photo of a {}.": ["a photo of a {}."]})
    row = next(r for r in doc["rows"] if r["kind"] == "zero-shot")
    assert res.top1 == row["metrics"]["top1"] and res.n == row["metrics"]["n"] == 6
    assert res.ece == row["metrics"]["ece"] and res.per_class == row["per_class"]
    assert sorted(res.classes) == ["blue square", "red circle"]
    assert res.to_dict()["rows"][0]["metrics"] == row["metrics"]
    assert '"schema": "clipseek.eval/1"' in res.to_json()


def test_evaluate_templates_forms(tmp_path, fake_encoder):
    data = tmp_path / "data"
    make_class_folders(data, n_per_class=2, classes=["red circle", "blue square"], seed=2)
    one = clipseek.evaluate(fake_encoder, data, "a drawing of a {}.")
    assert one.prompt_set == "a drawing of a {}."
    many = clipseek.evaluate(fake_encoder, data, {"a": ["a {}."], "b": ["b {}.", "c {}."]})
    assert [r["prompt_set"] for r in many.rows] == ["a", "b"] and many.prompt_set == "a"
    with pytest.raises(clipseek.UsageError):
        clipseek.evaluate(fake_encoder, data, ["no placeholder"])


def test_gallery_index_takes_one_folder_and_search_takes_filter_keywords(tmp_path, fake_encoder):
    d = image_folder(tmp_path / "photos", 6, size=lambda i: (60, 30) if i % 2 else (30, 60))
    with clipseek.Gallery(str(tmp_path / "g.db"), fake_encoder) as g:
        assert g.index(str(d)).added == 6
        kw = g.search("cat", k=10, orientation="landscape", ext="png", folders=d)
        where = clipseek.Filter.parse([str(d)], orientation="landscape", ext="png")
        assert [r.path for r in kw] == [r.path for r in g.search("cat", k=10, where=where)]
        assert len(kw) == 3 and all(r.width > r.height for r in kw)
        with pytest.raises(clipseek.UsageError, match="unknown search filter 'colour'"):
            g.search("cat", colour="red")
        with pytest.raises(clipseek.UsageError, match="not both"):
            g.search("cat", where=where, after="2020")


def test_every_exported_name_resolves_and_is_visible_to_type_checkers():
    names = set(clipseek._EXPORTS)
    for n in names:
        assert getattr(clipseek, n) is not None
    tree = ast.parse(Path(clipseek.__file__).read_text())
    typed = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.If)
             and getattr(node.test, "id", "") == "TYPE_CHECKING"
             for imp in node.body for a in imp.names}
    assert typed == names
    assert (Path(clipseek.__file__).parent / "py.typed").exists()
    assert set(clipseek.__all__) == names | {"__version__"}
    assert set(dir(clipseek)) >= names


def test_model_spec_is_the_one_model_choice(tmp_path, tiny_ckpt):
    from clipseek.model.spec import ModelSpec

    d = image_folder(tmp_path / "photos", 3)
    spec = ModelSpec(tiny_ckpt, device="cpu", dtype="fp32")
    with clipseek.Gallery(tmp_path / "a.db", spec=spec) as g:
        g.index(d)
        a = [(r.path, round(r.score, 5)) for r in g.search("cat", k=3)]
        fp = g.encoder.fingerprint
    with clipseek.Gallery(tmp_path / "b.db", model=tiny_ckpt, device="cpu", dtype="fp32") as g:
        g.index(d)
        assert [(r.path, round(r.score, 5)) for r in g.search("cat", k=3)] == a
        assert g.encoder.fingerprint == fp == spec.load().fingerprint
    with pytest.raises(clipseek.UsageError, match="not both"):
        clipseek.Gallery(tmp_path / "c.db", spec=spec, model=tiny_ckpt)
    assert spec.replace(backend="onnx").backend == "onnx" and spec.backend == "torch"
