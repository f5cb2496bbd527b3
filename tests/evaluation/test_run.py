"""run_eval's own decisions: where warnings go (never print) and where dataset images are written."""

import json
import logging
import os

import pytest

from clipseek.evaluation.run import resolve_prompt_sets, run_eval
from helpers import make_image, write_parquet_dataset


def folder_with_empty_class(root):
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            make_image(i + (10 if c == "dog" else 0), (24, 20)).save(root / c / f"{i}.png")
    (root / "classes.json").write_text(json.dumps({"cat": "cat", "dog": "dog", "zebra": "zebra"}))
    return root


def test_warnings_are_logged_or_handed_over_never_printed(encoder, tmp_path, capsys, caplog):
    data = str(folder_with_empty_class(tmp_path / "d"))
    with caplog.at_level(logging.WARNING, logger="clipseek.evaluation"):
        doc = run_eval(data, ["tiny"], lambda m: encoder, resolve_prompt_sets(), probe=False)
    assert capsys.readouterr() == ("", "")
    assert [r.getMessage() for r in caplog.records] == ["class 'zebra' has no images"]
    assert doc["dataset"]["warnings"] == ["class 'zebra' has no images"]
    seen = []
    run_eval(data, ["tiny"], lambda m: encoder, resolve_prompt_sets(), probe=False, on_warning=seen.append)
    assert seen == ["class 'zebra' has no images"]


def test_dataset_images_are_written_beside_the_embedding_cache(encoder, tmp_path):
    pytest.importorskip("datasets")
    from clipseek.embed.cache import EmbeddingCache

    pq = write_parquet_dataset(tmp_path / "pq", "test")
    cache = EmbeddingCache(tmp_path / "cache")
    doc = run_eval(str(pq), ["tiny"], lambda m: encoder, resolve_prompt_sets(), cache=cache, probe=False)
    assert doc["rows"][0]["metrics"]["n"] == 4
    written = sorted((tmp_path / "cache" / "dataset-images").iterdir())
    assert len(written) == 4 and all(p.suffix == ".png" for p in written)
    assert not [p for p in (tmp_path / "cache" / "dataset-images").iterdir() if ".tmp" in p.name]


def test_bad_files_of_the_train_split_are_listed_and_counted(encoder, tmp_path):
    root = tmp_path / "d"
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(3):
                make_image(i + (10 if c == "dog" else 0) + (20 if split == "test" else 0), (24, 20)).save(
                    root / split / c / f"{i}.png")
    (root / "train" / "cat" / "broken.png").write_bytes(b"not a png")
    os.mkfifo(root / "train" / "dog" / "fifo.png")
    (root / "test" / "dog" / "empty.png").write_bytes(b"")
    doc = run_eval(str(root), ["tiny"], lambda m: encoder, resolve_prompt_sets())
    reasons = {os.path.relpath(s["path"], root): s["reason"] for s in doc["skipped"]}
    assert reasons == {"test/dog/empty.png": "empty file (0 bytes)",
                       "train/cat/broken.png": "not an image (unrecognised format)",
                       "train/dog/fifo.png": "not a regular file (a FIFO)"}
    probe = doc["rows"][-1]
    assert probe["kind"] == "linear-probe" and probe["linear_probe"]["n_train"] == 6
    assert probe["linear_probe"]["n_train_skipped"] == 2 and probe["metrics"]["n_skipped"] == 1
    from clipseek.evaluation.report import summary_table

    assert summary_table(doc)[1][-1][1] == "linear probe (train: 2 skipped)"
