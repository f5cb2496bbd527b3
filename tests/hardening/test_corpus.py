"""Issue 16's hostile corpus through every command: no traceback, no hang, every bad file reported with
its reason, every good file processed, valid JSON, and each name in each output opens the same file.

Each command runs as a user would run it (a subprocess under a timeout, so a hang fails the test);
the server runs in process. The corpus is generated (corpus.py); the model is the tiny checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from corpus import BAD, build_corpus, image

from clipseek.core.paths import unquote_path

TIMEOUT = 180  # seconds per command: generous for a loaded machine; a hang is forever


def run(*args, timeout=TIMEOUT):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-m", "clipseek.cli", *map(os.fsencode, args)], capture_output=True,
                       env=env, timeout=timeout)
    err = r.stderr.decode("utf-8")  # stderr is valid UTF-8 too: names are quoted
    assert "Traceback" not in err and "Warning" not in err, err
    return r.returncode, r.stdout, err


def loads(stdout: bytes):
    return json.loads(stdout.decode("utf-8"))  # strict: the document is valid UTF-8


def raw(path: str) -> bytes:
    return os.fsencode(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("hostile") / "photos")


def check_skips(skipped: dict[bytes, str], corpus) -> None:
    """Every bad file, and nothing else, reported with its reason."""
    assert set(skipped) == set(corpus.bad), sorted(set(skipped) ^ set(corpus.bad))
    for path, reason in skipped.items():
        assert reason.startswith(corpus.bad[path]), (path, reason)


def check_skip_lines(err: str, corpus) -> None:
    """`skipping NAME: reason` on stderr: one line per bad file, the name quoted when it must be."""
    lines = [ln[len("skipping "):] for ln in err.splitlines() if ln.startswith("skipping ")]
    found = {}
    for ln in lines:
        end = ln.index(": ")
        if ln.startswith('"'):  # a quoted name ends at its first unescaped quote
            end = 1
            while ln[end] != '"':
                end += 2 if ln[end] == "\\" else 1
            end += 1
        found[raw(unquote_path(ln[:end]))] = ln[end + 2:]
    assert len(found) == len(lines)
    check_skips(found, corpus)


def test_classify(corpus, tiny_ckpt):
    rc, out, err = run("classify", corpus.root, "--labels", "cat,dog", "--model", tiny_ckpt, "--format", "json")
    doc = loads(out)
    assert rc == 0 and sorted(raw(r["path"]) for r in doc["results"]) == sorted(corpus.good)
    check_skips({raw(s["path"]): s["reason"] for s in doc["skipped"]}, corpus)
    assert all(os.path.isfile(r["path"]) for r in doc["results"])  # the name opens the same file

    rc, out, err = run("classify", corpus.root, "--labels", "cat,dog", "--model", tiny_ckpt, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.decode("utf-8"))))
    assert rc == 0 and {raw(unquote_path(r["path"])) for r in rows} == set(corpus.good)
    check_skip_lines(err, corpus)

    rc, out, err = run("classify", *corpus.good, "--labels", "cat,dog", "--model", tiny_ckpt)
    table = out.decode("utf-8")
    assert rc == 0 and 'new\\nline.png"' in table and "[bold]markup.png" in table and "\t" not in table
    rc, _, err = run("classify", corpus.root, "--labels", "cat", "--template", "a {x} {}", "--model", tiny_ckpt)
    assert rc == 2 and err.count("\n") == 1 and "bad template 'a {x} {}'" in err  # the others: test_prompts


def eval_data(root, corpus_root) -> dict[bytes, str]:
    """train/ and test/ splits, each with a cat class holding the whole corpus and a plain dog class."""
    bad = {}
    for split in ("train", "test"):
        c = build_corpus(os.path.join(root, split, "cat"))
        bad.update(c.bad)
        os.makedirs(os.path.join(root, split, "dog"))
        for i in range(4):
            image(50 + i + (10 if split == "test" else 0)).save(os.path.join(root, split, "dog", f"d{i}.png"))
    return bad


def test_eval_with_report_and_the_train_split(corpus, tiny_ckpt, tmp_path):
    data = str(tmp_path / "data")
    bad = eval_data(data, corpus.root)
    rep = tmp_path / "rep"
    rc, out, err = run("eval", data, "--model", tiny_ckpt, "--report", rep, "--format", "json",
                       "--cache-dir", tmp_path / "cache")
    doc = loads(out)
    assert rc == 0 and doc["dataset"]["split"] == "test"
    skipped = {raw(s["path"]): s["reason"] for s in doc["skipped"]}
    assert set(skipped) == set(bad) and all(skipped[p].startswith(bad[p]) for p in bad)
    probe = doc["rows"][-1]
    assert probe["kind"] == "linear-probe" and probe["linear_probe"]["n_train_skipped"] == len(BAD)
    assert probe["metrics"]["n"] == len(corpus.good) + 4 and probe["metrics"]["n_skipped"] == len(BAD)
    report = json.loads((rep / "report.json").read_bytes().decode("utf-8"))
    assert {raw(s["path"]) for s in report["skipped"]} == set(bad)
    assert "\\n" in (rep / "report.md").read_text("utf-8")  # the newline name, quoted
    rc, out, _ = run("eval", data, "--model", tiny_ckpt, "--format", "json", "--cache-dir", tmp_path / "cache")
    assert rc == 0 and loads(out)["rows"][0]["metrics"] == doc["rows"][0]["metrics"]  # from the cache
    (tmp_path / "t.txt").write_text("a photo of a {}\n{0} {}\n")
    rc, _, err = run("eval", data, "--model", tiny_ckpt, "--templates", tmp_path / "t.txt")
    assert rc == 2 and "t.txt: line 2: bad template '{0} {}'" in err


@pytest.fixture(scope="module")
def indexed(corpus, tiny_ckpt, tmp_path_factory):
    # the database's own name is not UTF-8 either (SQLite, FAISS and the thumbnails live beside it)
    db = os.fsdecode(os.path.join(os.fsencode(tmp_path_factory.mktemp("db")), b"g\xff.db"))
    rc, out, err = run("index", corpus.root, "--db", db, "--model", tiny_ckpt, "--format", "json")
    assert rc == 0, err
    return db, loads(out), err


def test_index_twice(corpus, indexed):
    db, first, err = indexed
    assert (first["added"], first["total"]) == (len(corpus.good), len(corpus.good))
    check_skips({raw(s["path"]): s["reason"] for s in first["skipped"]}, corpus)
    rc, out, err = run("index", corpus.root, "--db", db, "--format", "json")  # the DB's model
    second = loads(out)
    limits = {p for p, why in corpus.bad.items() if why in ("too many pixels", "file too large")}
    assert (rc, second["added"], second["unchanged"]) == (0, 0, len(corpus.good))
    assert second["still_skipped"] == len(corpus.bad) - len(limits)  # limit skips are retried
    assert {raw(s["path"]) for s in second["skipped"]} == limits
    with sqlite3.connect(db) as c:
        stored = {os.fsencode(p) if isinstance(p, str) else p for (p,) in c.execute("SELECT path FROM files")}
    assert stored == set(corpus.good)


def cli(capfdbinary, *args):
    """`clipseek ...` in process (search reads no file that could block): (exit code, stdout bytes)."""
    from clipseek.cli import main

    rc = main([os.fsdecode(a) for a in args])
    out, err = capfdbinary.readouterr()
    assert b"Traceback" not in err
    return rc, out


def test_search_outputs_round_trip(corpus, indexed, capfdbinary):
    db = indexed[0]
    k = str(len(corpus.good))
    rc, out = cli(capfdbinary, "search", "a photo", "--db", db, "-k", k, "--format", "json")
    assert rc == 0 and {raw(r["path"]) for r in loads(out)["results"]} == set(corpus.good)
    rc, out = cli(capfdbinary, "search", "a photo", "--db", db, "-k", k, "--format", "paths")
    lines = out.decode("utf-8").splitlines()
    assert rc == 0 and len(lines) == len(corpus.good)  # no name split over two lines
    assert {raw(unquote_path(ln)) for ln in lines} == set(corpus.good)
    rc, out = cli(capfdbinary, "search", "a photo", "--db", db, "-k", k, "--print0")
    assert rc == 0 and out.endswith(b"\0") and set(out[:-1].split(b"\0")) == set(corpus.good)
    rc, out = cli(capfdbinary, "search", "a photo", "--db", db, "-k", k)
    assert rc == 0 and out.decode("utf-8").count('new\\nline.png"') == 1
    good = os.path.join(corpus.root, b"bad\xff\xfename.png")
    rc, out = cli(capfdbinary, "search", "--image", good, "--db", db, "-k", "1", "--format", "json")
    assert rc == 0 and raw(loads(out)["results"][0]["path"]) == good
    rc, _, err = run("search", "--image", os.path.join(corpus.root, b"fifo.png"), "--db", db, timeout=60)
    assert rc == 2 and err.count("\n") == 1 and "not a regular file (a FIFO)" in err  # a bad argument


def test_embed_and_load(corpus, tiny_ckpt, tmp_path):
    out_dir = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"emb\xfe"))  # pyarrow takes UTF-8 paths
    rc, out, err = run("embed", corpus.root, "--out", out_dir, "--model", tiny_ckpt, "--shard-size", "7",
                       "--format", "json")
    doc = loads(out)
    assert rc == 0 and doc["embedded"] == len(corpus.good)
    check_skips({raw(s["path"]): s["reason"] for s in doc["skipped"]}, corpus)
    from helpers import read_shards

    rows, _, skipped = read_shards(out_dir)
    assert sorted(raw(r[0]) for r in rows) == sorted(corpus.good)
    check_skips({raw(s.path): s.reason for s in skipped}, corpus)
    rc, out, err = run("index", "--from-parquet", out_dir, "--db", tmp_path / "p.db", "--format", "json")
    assert rc == 0 and loads(out)["added"] == len(corpus.good)


def test_serve(corpus, indexed, encoder):
    from fastapi.testclient import TestClient

    from clipseek.server import create_app

    with TestClient(create_app(indexed[0], encoder), base_url="http://127.0.0.1") as c:
        r = c.get("/api/search", params={"q": "a photo", "k": 50})
        results = json.loads(r.content.decode("utf-8"))["results"]
        assert r.status_code == 200 and len(results) == len(corpus.good)
        assert {os.path.join(corpus.root, raw(x["path"])) for x in results} == set(corpus.good)
        for x in results:
            assert c.get(f"/api/images/{x['id']}").status_code == 200
            assert c.get(f"/api/thumbs/{x['id']}").status_code == 200
        stats = c.get("/api/stats").json()
        assert stats["images"] == len(corpus.good) and not stats["db"].startswith("/")
        png = io.BytesIO()
        image(1).save(png, "PNG")
        for bad in ("a {x} {}", "{0} {}", "{}{"):
            r = c.post("/api/classify", files={"file": ("x.png", png.getvalue())},
                       data={"labels": "cat,dog", "templates": bad})
            assert r.status_code == 400 and repr(bad) in r.json()["error"]


def test_a_second_writer_exits_at_once_and_readers_go_on(corpus, indexed):
    from clipseek._io import writer_lock

    db = indexed[0]
    with writer_lock(db + ".lock", db):  # the first writer is this test
        t0 = time.perf_counter()
        rc, _, err = run("index", corpus.root, "--db", db)
        assert rc == 1 and err.count("\n") == 1 and f"pid {os.getpid()}" in err and "being written" in err
        rc, out, _ = run("search", "cat", "--db", db, "--format", "paths")
        assert rc == 0 and out
        assert time.perf_counter() - t0 < 2 * TIMEOUT


def test_ctrl_c_stops_index_at_once_and_keeps_what_was_committed(corpus, tiny_ckpt, tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(400):
        image(i, (160, 120)).save(d / f"x{i:03d}.png")
    os.mkfifo(d / "x200-fifo.png")
    os.symlink("/dev/zero", d / "x201-zero.png")
    db = tmp_path / "c.db"
    proc = subprocess.Popen([sys.executable, "-m", "clipseek.cli", "index", str(d), "--db", str(db),
                             "--model", tiny_ckpt, "--batch-size", "2", "--workers", "1"],
                            env=dict(os.environ, HF_HUB_OFFLINE="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    committed, deadline = 0, time.time() + TIMEOUT
    while time.time() < deadline and proc.poll() is None and committed < 4:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                committed = c.execute("SELECT count(*) FROM files").fetchone()[0]
        except sqlite3.Error:
            pass
        time.sleep(0.005)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err.decode() and "Traceback" not in err.decode()
    assert time.perf_counter() - t0 < 5  # within a second or two, on an idle machine
    with sqlite3.connect(db) as c:
        kept = c.execute("SELECT count(*) FROM files").fetchone()[0]
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert 4 <= kept < 400
    rc, out, _ = run("index", d, "--db", db, "--format", "json")
    doc = loads(out)
    assert rc == 0 and doc["total"] == 400 and doc["unchanged"] >= kept and len(doc["skipped"]) == 2


PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_mb(*args) -> float:
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "clipseek.cli", *map(str, args)],
                         capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    return int(out.stdout.strip()) / 1024


def test_bombs_cost_no_memory(tiny_ckpt, tmp_path):
    """Five 100-megapixel PNGs of 12 KB each (~400 MB each once decoded) against five small images:
    the bombs are refused from their header, so indexing them costs no more memory."""
    from corpus import write_bomb_png

    bombs, small = tmp_path / "bombs", tmp_path / "small"
    bombs.mkdir()
    small.mkdir()
    for i in range(5):
        write_bomb_png(os.fsencode(bombs / f"b{i}.png"))
        image(i).save(small / f"s{i}.png")
    base = peak_rss_mb("index", small, "--db", tmp_path / "s.db", "--model", tiny_ckpt)
    peak = peak_rss_mb("index", bombs, "--db", tmp_path / "b.db", "--model", tiny_ckpt)
    assert peak - base < 100, (base, peak)
    with sqlite3.connect(tmp_path / "b.db") as c:
        assert c.execute("SELECT count(*) FROM skipped WHERE reason LIKE 'too many pixels%'").fetchone()[0] == 5
