"""fewshot.examples: class folders and manifests -> example vectors; text and pictures mixed; every
mismatch (a class folder with no readable image, one example, a label the classes do not know) is
one clear line."""

import json

import numpy as np
import pytest

from clipseek.embed.cache import EmbeddingCache
from clipseek.errors import UsageError
from clipseek.fewshot.examples import load_examples
from helpers import make_image


def folders(root, counts: dict):
    for k, (c, n) in enumerate(counts.items()):
        (root / c).mkdir(parents=True)
        for i in range(n):   # distinct pictures per class
            make_image(100 * k + i).save(root / c / f"{c}{i}.png")
    return root


def test_class_folders(tmp_path, fake_encoder):
    ex = load_examples(fake_encoder, str(folders(tmp_path / "ex", {"cat": 3, "dog": 2})))
    assert ex.classes == ["cat", "dog"] and ex.texts == ["cat", "dog"]
    assert ex.y.tolist() == [0, 0, 0, 1, 1] and ex.x.shape == (5, fake_encoder.dim)
    np.testing.assert_allclose(ex.text_vecs, fake_encoder.encode_texts(["a photo of a cat.", "a photo of a dog."]),
                               atol=1e-6)
    assert ex.fingerprint == str(fake_encoder.fingerprint) and ex.calibration is None


def test_vectors_come_from_the_cache(tmp_path, fake_encoder, monkeypatch):
    root = folders(tmp_path / "ex", {"cat": 2, "dog": 2})
    cache = EmbeddingCache(tmp_path / "cache")
    first = load_examples(fake_encoder, str(root), cache=cache)
    monkeypatch.setattr(fake_encoder, "encode_pixels", lambda px: pytest.fail("encoded again"))
    np.testing.assert_array_equal(load_examples(fake_encoder, str(root), cache=cache).x, first.x)


def test_names_only_pictures_only_and_both(tmp_path, fake_encoder):
    root = folders(tmp_path / "ex", {"my_cat": 2, "part_a7": 2})
    (root / "classes.json").write_text(json.dumps({"my_cat": "my cat", "part_a7": ""}))
    ex = load_examples(fake_encoder, str(root), labels=["my cat", "dog"])
    assert ex.classes == ["my_cat", "part_a7", "dog"]
    assert ex.texts == ["my cat", None, "dog"]           # both, pictures only, a name only
    assert ex.counts().tolist() == [2, 2, 0]
    assert not ex.text_vecs[1].any() and ex.text_vecs[2].any()


def test_train_and_validation_splits(tmp_path, fake_encoder):
    folders(tmp_path / "ex" / "train", {"a": 3, "b": 3})
    folders(tmp_path / "ex" / "val", {"a": 2, "b": 1})
    ex = load_examples(fake_encoder, str(tmp_path / "ex"))
    assert len(ex.y) == 6 and ex.calibration[1].tolist() == [0, 0, 1]


def test_a_class_folder_with_no_readable_image(tmp_path, fake_encoder):
    root = folders(tmp_path / "ex", {"cat": 2})
    (root / "dog").mkdir()
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(UsageError, match=r"example class 'dog' has no readable image \(1 unreadable; "
                                         r".*broken.jpg: .*\)$"):
        load_examples(fake_encoder, str(root))


def test_unreadable_files_are_skipped_and_the_fit_goes_on(tmp_path, fake_encoder):
    root = folders(tmp_path / "ex", {"cat": 2, "dog": 2})
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    ex = load_examples(fake_encoder, str(root))
    assert len(ex.y) == 4 and [s.path.endswith("broken.jpg") for s in ex.skipped] == [True]


def test_one_example(tmp_path, fake_encoder):
    root = folders(tmp_path / "ex", {"cat": 1})
    with pytest.raises(UsageError, match=r": 1 usable example image; need at least 2 to choose and check a method$"):
        load_examples(fake_encoder, str(root), labels=["dog"])


def test_a_label_the_classes_do_not_know(tmp_path, fake_encoder):
    (tmp_path / "m").mkdir()
    make_image(0).save(tmp_path / "m" / "a.png")
    make_image(1).save(tmp_path / "m" / "b.png")
    (tmp_path / "m" / "classes.txt").write_text("cat\ndog\n")
    (tmp_path / "m" / "ex.csv").write_text("path,label\na.png,cat\nb.png,horse\n")
    with pytest.raises(UsageError, match=r"label 'horse' \(for .*b.png\) is not a known class; known: cat, dog"):
        load_examples(fake_encoder, str(tmp_path / "m" / "ex.csv"))


def test_a_class_with_neither_name_nor_pictures(tmp_path, fake_encoder):
    root = folders(tmp_path / "ex", {"cat": 2})
    (root / "classes.json").write_text(json.dumps({"cat": "cat", "ghost": ""}))
    with pytest.raises(UsageError, match=r"class 'ghost' has neither a label text nor example images"):
        load_examples(fake_encoder, str(root))


def test_splits_without_train(tmp_path, fake_encoder):
    folders(tmp_path / "ex" / "test", {"a": 2})
    folders(tmp_path / "ex" / "val", {"a": 2})
    with pytest.raises(UsageError, match=r"^examples .*: split 'train' not found in .*; available: test, val$"):
        load_examples(fake_encoder, str(tmp_path / "ex"))
