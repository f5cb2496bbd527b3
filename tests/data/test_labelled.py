"""Dataset readers: folder-per-class (with splits and class maps), CSV/JSONL manifests, captions,
`datasets` directories; the one-line errors for bad input; the embedding cache."""

import json

import numpy as np
import pytest

from clipseek.data import labelled as D
from clipseek.data.load import load_labelled
from clipseek.errors import UsageError
from helpers import make_image, write_parquet_dataset


def class_folders(root, spec, split=None):
    """spec: {class: n images}; returns root."""
    for c, n in spec.items():
        d = root / split / c if split else root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            make_image(hash((c, i, split)) % 1000, (24, 20)).save(d / f"{c}_{i}.png")
    return root


def test_folder_per_class_with_class_map_and_empty_class(tmp_path):
    root = class_folders(tmp_path / "d", {"cat": 2, "hot_dog": 3})
    ds = D.read_folder(root)
    assert ds.classes == ["cat", "hot_dog"] and ds.label_texts == ["cat", "hot dog"]
    assert len(ds) == 5 and ds.labels.count(1) == 3 and ds.split is None
    assert all(p.endswith(".png") for p in ds.paths)
    (root / "classes.json").write_text(json.dumps({"cat": "tabby cat", "hot_dog": "hot dog", "zebra": "zebra"}))
    ds = D.read_folder(root)
    assert ds.classes == ["cat", "hot_dog", "zebra"] and ds.label_texts[0] == "tabby cat"
    assert ds.warnings == ["class 'zebra' has no images"]
    (root / "classes.json").unlink()
    (root / "classes.txt").write_text("# comment\ncat: a small cat\n")
    with pytest.raises(UsageError, match="label 'hot_dog' .* is not a known class"):
        D.read_folder(root)


def test_folder_splits_default_and_errors(tmp_path):
    root = tmp_path / "d"
    class_folders(root, {"a": 2, "b": 2}, "train")
    class_folders(root, {"a": 1, "b": 1}, "test")
    ds = D.read_folder(root)
    assert ds.split == "test" and ds.splits == ["test", "train"] and len(ds) == 2
    tr = D.read_folder(root, "train")
    assert len(tr) == 4 and tr.classes == ds.classes
    with pytest.raises(UsageError, match="split 'val' not found .* available: test, train"):
        D.read_folder(root, "val")
    with pytest.raises(UsageError, match="has no splits"):
        D.read_folder(class_folders(tmp_path / "flat", {"a": 1}), "test")


def test_csv_and_jsonl_manifests(tmp_path):
    class_folders(tmp_path / "img", {"x": 2, "y": 2})
    (tmp_path / "m.csv").write_text("path,label,split\nimg/x/x_0.png,x,test\nimg/x/x_1.png,x,train\n"
                                    "img/y/y_0.png,y,test\nimg/y/y_1.png,y,train\n")
    ds = D.read_manifest(tmp_path / "m.csv")
    assert ds.split == "test" and ds.paths == [str(tmp_path / "img/x/x_0.png"), str(tmp_path / "img/y/y_0.png")]
    assert ds.labels == [0, 1]
    lines = [{"file": "img/x/x_0.png", "cls": "x"}, {"file": str(tmp_path / "img/y/y_1.png"), "cls": "y"}]
    (tmp_path / "m.jsonl").write_text("\n".join(map(json.dumps, lines)) + "\n\n")
    ds = D.read_manifest(tmp_path / "m.jsonl", image_column="file", label_column="cls")
    assert ds.classes == ["x", "y"] and ds.paths[1] == str(tmp_path / "img/y/y_1.png")
    (tmp_path / "classes.txt").write_text("x\n")  # next to the manifest: y becomes unknown
    with pytest.raises(UsageError, match="label 'y'"):
        D.read_manifest(tmp_path / "m.jsonl", image_column="file", label_column="cls")


@pytest.mark.parametrize("name,text,message", [
    ("m.csv", "image,label\na.png,x\n", "missing column 'path'; columns: image, label"),
    ("m.csv", "path,label\na.png,x\nb.png,y,extra\n", "m.csv:3: malformed row"),
    ("m.jsonl", '{"path": "a.png", "label": "x"}\n{"path": "b.png", "label":\n', "m.jsonl:2: malformed JSON"),
    ("m.jsonl", '{"path": "a.png"}\n', "m.jsonl:1: missing 'label'"),
    ("m.csv", "path,label\n", "manifest has no rows"),
])
def test_manifest_errors_name_file_and_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=message):
        D.read_manifest(tmp_path / name)


def test_load_labelled_dispatch_and_captions(tmp_path):
    with pytest.raises(UsageError, match="dataset not found"):
        load_labelled(str(tmp_path / "nope"))
    (tmp_path / "caps.jsonl").write_text(
        '{"image": "a.png", "captions": ["a red car", "a car"]}\n{"image": "b.png", "caption": "a dog"}\n'
        '{"image": "a.png", "caption": "red"}\n')
    caps = D.read_captions(tmp_path / "caps.jsonl")
    assert caps.images == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert caps.captions == ["a red car", "a car", "a dog", "red"] and caps.caption_image == [0, 0, 1, 0]
    (tmp_path / "bad.jsonl").write_text('{"image": "a.png", "captions": []}\n')
    with pytest.raises(UsageError, match="bad.jsonl:1: needs 'caption'"):
        D.read_captions(tmp_path / "bad.jsonl")


def test_other_class_detection(tmp_path):
    ds = D.read_folder(class_folders(tmp_path / "d", {"cat": 1, "Other": 1}))
    assert ds.other_class() == ds.classes.index("Other")


def test_hf_imagefolder_and_parquet(tmp_path):
    pytest.importorskip("datasets")
    root = tmp_path / "hf"
    class_folders(root, {"ant": 2, "bee": 2}, "train")
    class_folders(root, {"ant": 1, "bee": 1}, "test")
    ds = load_labelled("hf:" + str(root), materialize_dir=str(tmp_path / "mat"))
    assert ds.classes == ["ant", "bee"] and ds.split == "test" and len(ds) == 2
    assert sorted(ds.labels) == [0, 1]
    # parquet with the image bytes inside: images are written once under content-hash names
    pq = write_parquet_dataset(tmp_path / "pq", "train")
    ds = load_labelled(str(pq), materialize_dir=str(tmp_path / "mat2"))
    assert len(ds) == 4 and all(p.startswith(str(tmp_path / "mat2")) for p in ds.paths)
    assert ds.labels == [0, 1, 1, 0] and make_image(2).tobytes() == __import__("PIL.Image").Image.open(
        ds.paths[2]).convert("RGB").tobytes()
    with pytest.raises(UsageError, match="missing column 'picture'"):
        load_labelled(str(pq), image_column="picture")


def test_embedding_cache_hits_and_invalidation(encoder, tmp_path):
    from clipseek.embed.cache import EmbeddingCache, embed_cached
    from clipseek.embed.stages import embed_all

    paths = []
    for i in range(4):
        make_image(i).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    (tmp_path / "bad.jpg").write_bytes(b"xx")
    paths.insert(2, str(tmp_path / "bad.jpg"))
    cache = EmbeddingCache(tmp_path / "cache")
    first = embed_cached(encoder, paths, cache)
    ref = embed_all(encoder, paths)
    assert first.paths == ref.paths and np.allclose(first.vectors, ref.vectors, atol=1e-6)
    assert [s.path for s in first.skipped] == [paths[2]]
    assert cache.count(encoder.fingerprint) == 5          # the unreadable file is remembered too

    class Counting:                                       # same fingerprint, counts image work
        def __init__(self, enc):
            self.enc, self.calls = enc, 0

        def __getattr__(self, k):
            return getattr(self.enc, k)

        def encode_pixels(self, px):
            self.calls += len(px)
            return self.enc.encode_pixels(px)

    spy = Counting(encoder)
    again = embed_cached(spy, paths, cache)
    assert spy.calls == 0 and again.paths == first.paths and np.array_equal(again.vectors, first.vectors)
    assert [s.reason for s in again.skipped] == [first.skipped[0].reason]
    make_image(99).save(paths[0])                          # changed file -> recomputed
    import os
    os.utime(paths[0], ns=(1, 1))
    third = embed_cached(spy, paths, cache)
    assert spy.calls == 1 and not np.allclose(third.vectors[0], first.vectors[0])


def test_hf_without_datasets_installed_is_one_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)      # import datasets -> ImportError
    with pytest.raises(UsageError, match=r"pip install 'clipseek\[datasets\]'"):
        load_labelled("hf:someone/some-dataset")


def test_unusable_cache_is_one_clear_error(tmp_path):
    from clipseek.embed.cache import EmbeddingCache

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "embeddings.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(UsageError, match="--no-cache"):
        EmbeddingCache(tmp_path / "c")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot use the embedding cache"):
        EmbeddingCache(tmp_path / "file" / "sub")
