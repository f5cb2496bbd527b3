"""`clipseek embed` and `clipseek index --from-parquet` driven through the CLI (exit codes, messages)."""

import json
import sys

import numpy as np
import pytest

pytest.importorskip("pyarrow.parquet")


def test_cli_embed_then_index_from_parquet(tmp_path, tiny_ckpt, photos, capsys):
    from clipseek.cli import main
    from clipseek.gallery.gallery import Gallery

    def cli(*args):
        rc = main([str(a) for a in args])
        out = capsys.readouterr()
        return rc, out.out, out.err

    out = tmp_path / "out"
    rc, stdout, err = cli("embed", photos, "--out", out, "--model", tiny_ckpt, "--shard-size", "5",
                          "--format", "json")
    doc = json.loads(stdout)
    assert rc == 0 and (doc["embedded"], len(doc["skipped"]), doc["shards"]) == (11, 2, 3)
    db, ref_db = tmp_path / "p.db", tmp_path / "ref.db"
    rc, stdout, err = cli("index", "--from-parquet", out, "--db", db)
    assert rc == 0 and "11 images" in stdout and "11 added" in stdout and "2 skipped" in stdout, err
    rc, stdout, _ = cli("index", "--from-parquet", out, "--db", db, "--format", "json")
    assert rc == 0 and json.loads(stdout)["added"] == 0 and json.loads(stdout)["total"] == 11
    assert cli("index", photos, "--db", ref_db, "--model", tiny_ckpt)[0] == 0
    with Gallery(str(db)) as g, Gallery(str(ref_db)) as ref:
        for q in ("a photo of a cat", "red car"):
            a, b = g.search(text=q, k=5), ref.search(text=q, k=5)
            assert [r.path for r in a] == [r.path for r in b]
            assert np.allclose([r.score for r in a], [r.score for r in b], atol=1e-5)
        assert g.stats()["images"] == 11 and g.stats()["skipped"] == 2
    rc, stdout, _ = cli("index", photos, "--db", db, "--format", "json")  # the folder path agrees
    assert rc == 0 and json.loads(stdout)["unchanged"] == 11 and json.loads(stdout)["added"] == 0


def test_index_from_parquet_refuses_other_model(tmp_path, tiny_ckpt, photos, capsys):
    from clipseek.cli import main
    from clipseek.model.scratch import save_new_checkpoint
    from helpers import WORDS

    other = save_new_checkpoint(str(tmp_path / "other"), WORDS, seed=3, image_size=32, patch_size=8,
                                width=32, text_width=32, projection_dim=32)
    out, db = tmp_path / "out", tmp_path / "g.db"
    assert main(["embed", str(photos), "--out", str(out), "--model", other]) == 0
    assert main(["index", str(photos), "--db", str(db), "--model", tiny_ckpt]) == 0
    capsys.readouterr()
    assert main(["index", "--from-parquet", str(out), "--db", str(db)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(other) in lines[0] and str(tiny_ckpt) in lines[0]
    assert main(["index", str(photos), "--from-parquet", str(out), "--db", str(db)]) == 2
    assert main(["embed", str(photos), "--out", str(out), "--engine", "spark"]) == 2


def test_ray_missing_says_how_to_install(tmp_path, photos, monkeypatch, capsys):
    from clipseek.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["embed", str(photos), "--out", str(tmp_path / "o"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'clipseek[ray]'" in err[0]
