"""`clipseek index DIR --watch` as a user runs it: a subprocess, Ctrl-C (SIGINT), a deleted folder."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading

from helpers import cli_env, make_image, wait_for


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "clipseek.cli", *map(str, args)],
                            env=cli_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def read_lines(stream) -> tuple[list[str], threading.Thread]:
    """The lines of `stream` as they arrive (a list a daemon thread appends to), and that thread."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    return lines, reader


def count(db) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT count(*) FROM files").fetchone()[0]
    except sqlite3.Error:
        return -1


def test_watch_then_ctrl_c(tmp_path, tiny_ckpt):
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(3):
        make_image(i).save(d / f"p{i}.png")
    db = tmp_path / "g.db"
    proc = start("index", d, "--db", db, "--model", tiny_ckpt, "--watch", "--poll", "--poll-interval", "0.1")
    lines, reader = read_lines(proc.stdout)
    try:
        assert wait_for(lambda: count(db) == 3), "first pass did not commit"
        for i in range(3, 8):
            make_image(i).save(d / f"p{i}.png")
        assert wait_for(lambda: any("5 added (8 images)" in l for l in lines), timeout=30), lines
        os.remove(d / "p0.png")
        assert wait_for(lambda: any("1 removed (7 images)" in l for l in lines), timeout=30), lines
        (d / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
        assert wait_for(lambda: any("1 skipped" in l for l in lines), timeout=30), lines
        assert wait_for(lambda: any(l.startswith(f"  skipped {d / 'bad.jpg'}: ") for l in lines), timeout=10), lines
    finally:
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        proc.wait(timeout=30)
        reader.join(10)
    assert proc.returncode == 130, err  # Ctrl-C exits 130, as everywhere
    assert lines[0].startswith("3 images in") and count(db) == 7
    assert "watching" in err and "polling every 0.1 s: asked for (--poll)" in err
    assert "stopped watching; 7 images" in err and "Traceback" not in err
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert c.execute("SELECT count(*) FROM files").fetchone()[0] == 7
    c.close()


def test_deleted_folder_stops_with_one_line(tmp_path, tiny_ckpt):
    d = tmp_path / "photos"
    d.mkdir()
    make_image(0).save(d / "p0.png")
    db = tmp_path / "g.db"
    proc = start("index", d, "--db", db, "--model", tiny_ckpt, "--watch", "--poll", "--poll-interval", "0.1")
    errs, reader = read_lines(proc.stderr)
    try:
        assert wait_for(lambda: count(db) == 1)
        # delete once the watcher holds the folder (not a fixed delay after the first commit: what runs
        # between the two, e.g. building the FAISS cache, takes longer on a loaded machine)
        assert wait_for(lambda: any(l.startswith("watching") for l in errs), timeout=30), errs
        shutil.rmtree(d)
        proc.wait(timeout=30)
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(errs)
    lines = [l for l in err.splitlines() if l.startswith("clipseek")]
    assert proc.returncode == 1 and lines == [f"clipseek: error: watched folder {d} was deleted; stopped watching"], err
    assert "Traceback" not in err and count(db) == 1


def test_watch_bad_input(tmp_path, tiny_ckpt):
    r = subprocess.run([sys.executable, "-m", "clipseek.cli", "index", "--from-parquet", tmp_path, "--watch",
                        "--db", tmp_path / "g.db"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--watch follows folders" in r.stderr
