"""`clipseek index` / `clipseek search` driven as a user would, including a kill -9 mid-run."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import cli_env, image_folder, make_image
from helpers import cli_in_process as cli
from helpers import run_cli as run


@pytest.fixture
def index_photos(tmp_path):
    return image_folder(tmp_path / "photos", 8, lambda i: (40 + i, 36), broken=True)


def test_index_then_search(tmp_path, tiny_ckpt, index_photos):
    db = tmp_path / "g.db"
    r = run("index", index_photos, "--db", db, "--model", tiny_ckpt, "--batch-size", "3", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "8 images" in r.stdout and "8 added" in r.stdout and "1 skipped" in r.stdout
    assert "skipping" in r.stderr and "broken.jpg" in r.stderr
    r = run("search", "a photo of a cat", "--db", db, "--top-k", "3", "--format", "json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["results"]
    assert len(res) == 3 and res[0]["score"] >= res[1]["score"] >= res[2]["score"]
    assert set(res[0]) == {"id", "path", "score", "width", "height", "relevance", "relevant", "kind", "time_s",
                           "moments"}


def test_cli_in_process(tmp_path, tiny_ckpt, index_photos, capsys, monkeypatch):
    db = tmp_path / "g.db"
    assert cli(capsys, "index", index_photos, "--db", db, "--model", tiny_ckpt)[0] == 0
    rc, out, _ = cli(capsys, "index", index_photos, "--db", db, "--format", "json")  # the DB's model is reused
    doc = json.loads(out)
    assert (rc, doc["added"], doc["unchanged"], doc["still_skipped"], doc["total"]) == (0, 0, 8, 1, 8)
    rc, out, _ = cli(capsys, "search", "--image", index_photos / "p2.png", "--db", db, "--format", "paths", "-k", "2")
    assert rc == 0 and out.splitlines()[0] == str(index_photos / "p2.png") and len(out.splitlines()) == 2
    rc, out, _ = cli(capsys, "search", "dog", "--db", db)
    assert rc == 0 and "score" in out and out.count(".png") == 8
    rc, out, err = cli(capsys, "search", "dog", "--db", db, "--threshold", "1")  # (-1 to 1)
    assert rc == 0 and "no results" in err
    monkeypatch.chdir(tmp_path)  # default --db is ./clipseek.db
    assert cli(capsys, "index", index_photos, "--model", tiny_ckpt)[0] == 0 and (tmp_path / "clipseek.db").exists()
    assert cli(capsys, "search", "cat")[0] == 0


def test_bad_input_one_line(tmp_path, tiny_ckpt, index_photos, capsys):
    from clipseek.model.scratch import save_new_checkpoint
    from helpers import WORDS

    db = tmp_path / "g.db"
    assert cli(capsys, "index", index_photos, "--db", db, "--model", tiny_ckpt)[0] == 0
    (tmp_path / "notes.txt").write_text("just text\n" * 50)
    other = save_new_checkpoint(str(tmp_path / "other"), WORDS, seed=3, image_size=32, patch_size=8,
                                width=32, text_width=32, projection_dim=32)
    cases = [
        (["index", "/no/such/folder", "--db", db], "folder not found"),
        (["index", index_photos / "p1.png", "--db", db], "not a folder"),
        (["search", "", "--db", db], "empty query"),
        (["search", "--db", db], "empty query"),
        (["search", "cat", "--image", index_photos / "p1.png", "--db", db], "not both"),
        (["search", "cat", "--db", tmp_path / "notes.txt"], "not a clipseek database"),
        (["search", "cat", "--db", tmp_path / "missing.db"], "no clipseek database"),
        (["search", "cat", "--db", db, "--format", "xml"], "unknown format"),
        (["search", "cat", "--db", db, "--model", other], "indexed with model"),
        (["index", index_photos, "--db", db, "--model", other], "indexed with model"),
    ]
    for args, message in cases:
        rc, _, err = cli(capsys, *args)
        lines = [l for l in err.strip().splitlines()  # phases and export notes are progress, not errors
                 if l != "loading the model..." and not l.startswith("clipseek: export")]
        assert rc == 2 and len(lines) == 1 and message in lines[0], (args, err)
        if "--model" in args:  # the message names both models, and says how to go on
            assert str(tiny_ckpt) in lines[0] and str(other) in lines[0]
            assert f"leave --model out (it names its own model: --model {tiny_ckpt})" in lines[0]
            assert "to use this model, give a new --db" in lines[0]


def test_kill_9_mid_run_then_resume(tmp_path, tiny_ckpt):
    d = tmp_path / "many"
    d.mkdir()
    n = 300
    for i in range(n):
        make_image(i, (160, 120)).save(d / f"x{i:03d}.png")
    db = tmp_path / "crash.db"
    proc = subprocess.Popen([sys.executable, "-m", "clipseek.cli", "index", str(d), "--db", str(db),
                             "--model", tiny_ckpt, "--batch-size", "4", "--workers", "1"],
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = 0
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                committed = c.execute("SELECT count(*) FROM files").fetchone()[0]
        except sqlite3.Error:
            committed = 0
        if committed >= 8:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert 8 <= committed < n

    r = run("index", d, "--db", db, "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["total"] == n and doc["unchanged"] >= committed and doc["added"] == n - doc["unchanged"]
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    paths = [p for (p,) in c.execute("SELECT path FROM files")]
    assert len(paths) == len(set(paths)) == n
    assert set(paths) == {str(d / f"x{i:03d}.png") for i in range(n)}
    c.close()
