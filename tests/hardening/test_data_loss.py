"""Issue 23, data loss: nothing trusted from a database row before a file moves, a database deleted
under a watcher, full and read-only disks, temp litter after a kill, relevance on a tiny gallery,
and links to outside the gallery while indexing.

Hostile cases are generated here. The full and read-only disks are small tmpfs mounts of the test's
own (we run as root in CI); where mounting is not allowed those tests are skipped, saying so.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import clipseek
from clipseek.gallery.store import Store
from helpers import cli_env, image_folder, indexed_gallery, make_image, wait_for
from helpers import cli_in_process as cli


def files_under(folder) -> list[str]:
    return sorted(os.path.relpath(p, folder) for p in glob.glob(f"{folder}/**/*", recursive=True)
                  if os.path.isfile(p))


# ---- 7: dupes --move-extras-to reads every file again ----------------------------------------------
def test_a_copy_overwritten_since_indexing_is_not_moved_nor_kept_in_place_of_the_original(
        tmp_path, fake_encoder, capsys):
    root = tmp_path / "photos"
    root.mkdir()
    make_image(1, (40, 30)).save(root / "a.png")
    shutil.copyfile(root / "a.png", root / "b_copy.png")
    make_image(2, (30, 30)).save(root / "other.png")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, fake_encoder) as g:
        g.index([str(root)])
    make_image(3, (200, 150)).save(root / "b_copy.png")  # another, bigger picture: it would be the keeper
    out = tmp_path / "extras"
    rc, _, err = cli(capsys, "dupes", "--db", db, "--move-extras-to", out)
    assert rc == 0, err
    assert files_under(root) == ["a.png", "b_copy.png", "other.png"]  # a.png, the only copy, stays
    assert not any(p.endswith(".png") for p in files_under(out)) if out.exists() else True
    line = next(ln for ln in err.splitlines() if "b_copy.png" in ln)
    assert line.startswith("not moving ") and "changed since it was indexed" in line


def test_hostile_rows_for_text_files_are_not_moved(tmp_path, fake_encoder, capsys):
    """A database that says notes.txt holds a.png's bytes, and two text files are identical images."""
    import hashlib

    root = tmp_path / "photos"
    root.mkdir()
    make_image(1, (64, 48)).save(root / "a.png")
    (root / "notes.txt").write_text("secret notes\n")
    for name in ("copy1.txt", "copy2.txt"):
        (root / name).write_text("my notes\n")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, fake_encoder) as g:
        g.index([str(root)])
    text_hash = hashlib.blake2b(b"my notes\n", digest_size=16).hexdigest()
    with Store.open(db) as s:
        (row,) = s.rows_under([str(root)]).values()
        vec = s.vector(row.id)
        with s.transaction():
            for name, h in (("notes.txt", row.hash), ("copy1.txt", text_hash), ("copy2.txt", text_hash)):
                st = os.stat(root / name)
                s.insert_files([(str(root / name), st.st_size, st.st_mtime_ns, h, 8, 8, vec)])
        assert len(s.same_content_ids()) == 2  # the database claims two pairs of identical files
    out = tmp_path / "extras"
    rc, _, err = cli(capsys, "dupes", "--db", db, "--move-extras-to", out)
    assert rc == 0, err
    assert files_under(root) == ["a.png", "copy1.txt", "copy2.txt", "notes.txt"]  # nothing moved
    dropped = {ln.split(": ")[0] for ln in err.splitlines() if ln.startswith("not moving ")}
    assert dropped == {f"not moving {root / n}" for n in ("notes.txt", "copy1.txt", "copy2.txt")}, err


def test_after_a_move_the_database_knows_and_undo_then_index_repairs_it(tmp_path, fake_encoder, capsys):
    root = tmp_path / "photos"
    image_folder(root, 4)
    shutil.copyfile(root / "p0.png", root / "p0-copy.png")
    shutil.copyfile(root / "p1.png", root / "p1-copy.png")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, fake_encoder) as g:
        assert g.index([str(root)]).added == 6
    out = tmp_path / "extras"
    rc, stdout, err = cli(capsys, "dupes", "--db", db, "--move-extras-to", out, "--format", "json")
    assert rc == 0, err
    moved = {f["source"] for f in json.loads(stdout)["files"]}
    assert len(moved) == 2 and not any(os.path.exists(p) for p in moved)
    rc, _, err = cli(capsys, "dupes", "--db", db)
    assert rc == 0 and "no duplicates found" in err  # the same groups are not listed again
    with clipseek.Gallery(db, fake_encoder) as g:
        found = {r.path for r in g.search("a photo", k=10)}
        assert len(found) == 4 and not found & moved  # and search does not return the old paths
    log = json.loads(stdout)["log"]
    assert cli(capsys, "undo", log)[0] == 0 and all(os.path.exists(p) for p in moved)
    with clipseek.Gallery(db, fake_encoder) as g:  # the next index puts them back, not re-embedded
        summary = g.index([str(root)])
        assert summary.added == 2 and summary.total == 6


# ---- 8: a database deleted or replaced under a watcher ---------------------------------------------
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_gone_under_serve_watch_stops_the_watcher_and_the_server_answers_503(
        tmp_path, encoder, how):
    from fastapi.testclient import TestClient

    from clipseek.gallery.dbfile import DatabaseGone
    from clipseek.server import create_app

    root = tmp_path / "photos"
    db = indexed_gallery(root, encoder, 3)
    batches, stops = [], []
    app = create_app(db, encoder)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        app.state.service.watch([str(root)], poll=True, interval=0.1, quiet=0.2, on_batch=batches.append,
                                on_stop=stops.append)
        assert wait_for(lambda: len(batches) == 1)
        if how == "deleted":
            os.remove(db)
        else:
            shutil.copyfile(db, db + ".new")
            os.replace(db + ".new", db)
        make_image(50).save(root / "new.png")
        assert wait_for(lambda: stops, timeout=15), "the watcher went on writing into the lost file"
        assert isinstance(stops[0], DatabaseGone) and f"was {how}" in str(stops[0])
        for url in ("/api/stats", "/api/search?q=photo", "/api/images/1", "/api/dupes"):
            r = c.get(url)
            assert r.status_code == 503 and f"was {how}" in r.json()["error"], (url, r.text)
    assert len(batches) == 1  # no batch went into the file that is gone


def test_a_database_deleted_under_index_watch_stops_it_with_one_line(tmp_path, tiny_ckpt):
    root = tmp_path / "photos"
    image_folder(root, 2)
    db = tmp_path / "g.db"
    proc = subprocess.Popen([sys.executable, "-m", "clipseek.cli", "index", str(root), "--db", str(db),
                             "--model", tiny_ckpt, "--watch", "--poll", "--poll-interval", "0.1"],
                            env=cli_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: any("watching" in ln for ln in lines), timeout=120), lines
        os.remove(db)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert proc.returncode == 1, lines
    assert lines[-1].startswith("clipseek: error: the database ") and "was deleted" in lines[-1]
    assert not any("Traceback" in ln for ln in lines)


# ---- 11: full and read-only disks -------------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs folder of that size (unmounted at teardown)."""
    mounted = []

    def mount(size: str):
        d = tmp_path / f"disk{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); the full and "
                        "read-only disk cases need one (run as root)")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def fill(folder, leave: int = 0) -> None:
    """Fill the file system of `folder` to ENOSPC, then free `leave` bytes."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk in (1 << 20, 1 << 12):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
        if leave:
            os.ftruncate(fd, max(os.fstat(fd).st_size - leave, 0))
    finally:
        os.close(fd)


def remount_read_only(folder) -> None:
    r = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot remount {folder} read-only ({r.stderr.strip()})")


def test_index_on_a_full_disk_says_so_in_one_line_and_keeps_what_was_committed(
        tmp_path, encoder, tmpfs, capsys):
    disk = tmpfs("4m")
    root = tmp_path / "photos"
    image_folder(root, 3)
    db = disk / "g.db"
    with clipseek.Gallery(str(db), encoder) as g:
        g.index([str(root)])
    for i in range(3, 300):
        make_image(i, (24, 24)).save(root / f"p{i}.png")
    fill(disk, leave=160_000)
    rc, _, err = cli(capsys, "index", root, "--db", db, "--batch-size", "4")
    last = err.strip().splitlines()[-1]
    assert rc == 1 and last.startswith("clipseek: error: no space left on device"), err
    assert str(disk) in last and "committed before is kept" in last
    os.remove(disk / "filler")
    with Store.open(str(db), create=False) as s:
        assert s.count() >= 3 and s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_search_on_a_full_disk_answers_and_keeps_the_vector_index_in_memory(tmp_path, encoder, tmpfs, capsys):
    disk = tmpfs("4m")
    db = indexed_gallery(disk / "photos", encoder, 12)
    for f in glob.glob(db + ".faiss*"):
        os.remove(f)
    with Store.open(db, create=False):  # another reader keeps the -shm in place (its space is taken)
        fill(disk)
        rc, stdout, err = cli(capsys, "search", "a photo", "--db", db, "-k", "3", "--format", "json")
        assert rc == 0, err
        assert len(json.loads(stdout)["results"]) == 3
    assert not glob.glob(db + ".faiss*.tmp-*")  # no half-written cache left behind
    fill(disk)  # what closing the database freed
    rc, stdout, err = cli(capsys, "search", "a photo", "--db", db, "-k", "3", "--format", "json")
    assert rc == 0 and len(json.loads(stdout)["results"]) == 3, err  # a new process, disk still full


def test_a_read_only_gallery_is_searched_and_served_and_index_says_why_not(tmp_path, encoder, tmpfs, capsys):
    from fastapi.testclient import TestClient

    from clipseek.server import create_app

    disk = tmpfs("8m")
    root = disk / "photos"
    db = indexed_gallery(root, encoder, 12)
    shutil.copyfile(root / "p0.png", root / "p0-copy.png")
    with clipseek.Gallery(db, encoder) as g:
        g.index([str(root)])
    for f in glob.glob(db + ".faiss*"):  # the cache is rebuilt in memory, never written
        os.remove(f)
    before = files_under(disk)
    remount_read_only(disk)
    rc, stdout, err = cli(capsys, "search", "a photo", "--db", db, "-k", "3", "--format", "json")
    assert rc == 0 and len(json.loads(stdout)["results"]) == 3, err
    rc, _, err = cli(capsys, "dupes", "--db", db)
    assert rc == 0 and "1 group, 1 extra copy" in err, err
    with TestClient(create_app(db, encoder), base_url="http://127.0.0.1") as c:
        assert c.get("/api/stats").json()["images"] == 13
        res = c.get("/api/search", params={"q": "a photo", "k": 2}).json()["results"]
        assert len(res) == 2 and c.get(f"/api/thumbs/{res[0]['id']}").status_code == 200
        assert len(c.get("/api/dupes").json()["groups"]) == 1
    rc, _, err = cli(capsys, "index", root, "--db", db)
    assert rc == 1 and err.count("\n") == 1 and "read-only" in err and str(disk) in err, err
    assert files_under(disk) == before


# ---- 16: temp files a killed run left ----------------------------------------------------------------
def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def litter(folder, name: str, pid: int, kind: str = "dir") -> str:
    path = os.path.join(folder, f"{name}.tmp-{pid}-{os.urandom(4).hex()}")
    os.mkdir(path) if kind == "dir" else open(path, "wb").close()
    if kind == "dir":
        open(os.path.join(path, "image.onnx"), "wb").close()
    return path


def test_remove_stale_temps_keeps_a_live_owners_and_spots_a_reused_pid(tmp_path, monkeypatch):
    from clipseek import _io

    dead = litter(tmp_path, "x.png", dead_pid(), "file")
    mine = litter(tmp_path, "x.png", os.getpid(), "file")
    other = litter(tmp_path, ".y.png", 1, "file")  # pid 1 runs, and started before the file was made
    unrelated = tmp_path / "holiday.tmp-1-notours.png"
    unrelated.write_bytes(b"")
    assert _io.remove_stale_temps(tmp_path) == [dead]
    assert os.path.exists(mine) and os.path.exists(other) and unrelated.exists()
    monkeypatch.setattr(_io, "process_start", lambda pid: time.time() + 60)  # pid 1 reused since
    assert _io.remove_stale_temps(tmp_path) == [other]


def test_export_removes_the_litter_of_a_killed_export_only(tmp_path, tiny_ckpt, capsys):
    out = tmp_path / "export"
    dead, live = litter(tmp_path, ".export", dead_pid()), litter(tmp_path, ".export", os.getpid())
    rc, _, err = cli(capsys, "export", "onnx", tiny_ckpt, out)
    assert rc == 0, err
    assert not os.path.exists(dead) and os.path.exists(live)
    assert sorted(os.listdir(tmp_path)) == sorted(["export", os.path.basename(live)])


def test_the_onnx_cache_removes_the_litter_of_a_killed_export(tmp_path, encoder):
    from clipseek.model import onnx_store

    fp = encoder.fingerprint
    folder = onnx_store.cache_folder(fp.name, fp.identity, fp.local)
    folder.parent.mkdir(parents=True, exist_ok=True)
    dead, live = litter(folder.parent, "." + folder.name, dead_pid()), litter(folder.parent, "." + folder.name,
                                                                             os.getpid())
    clipseek.load_model(fp.name, device="cpu", backend="onnx")
    assert not os.path.exists(dead) and os.path.exists(live)
    shutil.rmtree(live)


def test_dupes_removes_the_litter_of_a_killed_move_in_its_target(tmp_path, fake_encoder, capsys):
    root = tmp_path / "photos"
    image_folder(root, 2)
    shutil.copyfile(root / "p0.png", root / "p0-copy.png")
    db = str(tmp_path / "g.db")
    with clipseek.Gallery(db, fake_encoder) as g:
        g.index([str(root)])
    out = tmp_path / "extras"
    (out / "sub").mkdir(parents=True)
    dead = litter(out / "sub", ".p5.png", dead_pid(), "file")
    live = litter(out, ".p6.png", os.getpid(), "file")
    rc, _, err = cli(capsys, "dupes", "--db", db, "--move-extras-to", out)
    assert rc == 0, err
    assert not os.path.exists(dead) and os.path.exists(live) and (out / "p0-copy.png").exists()


# ---- 17: relevance on a gallery too small for the statistic ---------------------------------------
def gallery_of_vectors(tmp_path, fake_encoder, vectors) -> str:
    """A gallery whose rows hold exactly these vectors (files need not exist to be searched)."""
    db = str(tmp_path / "v.db")
    with Store.open(db, model=(fake_encoder.fingerprint, fake_encoder.dim)) as s, s.transaction():
        s.insert_files([(str(tmp_path / f"v{i}.png"), 1, 1, f"{i:032x}", 8, 8, v)
                        for i, v in enumerate(vectors)])
    return db


def test_relevance_on_three_images_is_undefined_not_fifty_thousand(tmp_path, fake_encoder):
    q = np.zeros(fake_encoder.dim, np.float32)
    q[0] = 1.0
    vecs = []
    for s in (-0.5, 0.0, 0.5):  # scores symmetric about their median: mean - median = 0
        v = np.zeros(fake_encoder.dim, np.float32)
        v[0], v[1] = s, np.sqrt(1 - s * s)
        vecs.append(v)
    db = gallery_of_vectors(tmp_path, fake_encoder, vecs)
    with clipseek.Gallery(db, fake_encoder) as g:
        res = g.search_vector(q, 3)
        assert [r.relevance for r in res] == [None, None, None]
        assert len(g.search_vector(q, 3, relevant=True)) == 3  # nothing can be told apart: all kept
        assert json.loads(json.dumps([r.to_dict() for r in res]))[0]["relevance"] is None  # valid JSON


def test_relevance_is_bounded_on_galleries_big_enough(tmp_path, fake_encoder):
    rng = np.random.default_rng(0)
    base = rng.standard_normal(fake_encoder.dim)
    vecs = [base + 1e-4 * rng.standard_normal(fake_encoder.dim) for _ in range(11)]  # a burst: all alike
    vecs += [rng.standard_normal(fake_encoder.dim)]
    vecs = [(v / np.linalg.norm(v)).astype(np.float32) for v in vecs]
    db = gallery_of_vectors(tmp_path, fake_encoder, vecs)
    with clipseek.Gallery(db, fake_encoder) as g:
        res = g.search_vector(vecs[0], 12)
        rel = [r.relevance for r in res]
        assert all(r is None for r in rel) or all(np.isfinite(r) and -3 <= r <= 3 for r in rel), rel


def test_search_relevant_on_a_tiny_gallery_says_so_in_one_line(tmp_path, encoder, capsys):
    db = indexed_gallery(tmp_path / "photos", encoder, 3)
    rc, stdout, err = cli(capsys, "search", "a photo", "--db", db, "--relevant", "--format", "json")
    assert rc == 0
    results = json.loads(stdout)["results"]
    assert len(results) == 3 and all(r["relevance"] is None for r in results)
    assert "--relevant needs a gallery of at least 10 images (this one has 3)" in err


# ---- 1 (indexing): links to outside the gallery ----------------------------------------------------
OUTSIDE_REASON = "link to outside the gallery (use --follow-links)"


def test_links_to_outside_the_gallery_are_followed_only_when_asked(tmp_path, fake_encoder):
    root, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    image_folder(root, 2)
    elsewhere.mkdir()
    make_image(7).save(elsewhere / "private.png")
    os.symlink(elsewhere / "private.png", root / "out.png")
    os.symlink(root / "p0.png", root / "in.png")  # a link inside the roots: followed as before
    db = str(tmp_path / "g.db")
    out, inside = str(root / "out.png"), str(root / "in.png")
    with clipseek.Gallery(db, fake_encoder) as g:
        s = g.index([str(root)])
        assert [(k.path, k.reason) for k in s.skipped] == [(out, OUTSIDE_REASON)]
        assert set(g.store.rows_under([str(root)])) == {str(root / "p0.png"), str(root / "p1.png"), inside}
        assert g.store.skipped() == [(out, OUTSIDE_REASON)]
        s = g.index([str(root)], follow_links=True)  # asked: indexed, and the choice is recorded
        assert s.added == 1 and out in g.store.rows_under([str(root)])
        s = g.index([str(root)])  # a later run (or a watcher's batch) keeps the recorded rule
        assert s.unchanged == 4 and not s.skipped
        s = g.index([str(root)], follow_links=False)
        assert [k.path for k in s.skipped] == [out] and out not in g.store.rows_under([str(root)])
        assert g.index([str(root)]).still_skipped == 1


def test_index_cli_follow_links(tmp_path, tiny_ckpt, capsys):
    root, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    image_folder(root, 1)
    elsewhere.mkdir()
    make_image(7).save(elsewhere / "private.png")
    os.symlink(elsewhere / "private.png", root / "out.png")
    db = tmp_path / "g.db"
    rc, stdout, err = cli(capsys, "index", root, "--db", db, "--model", tiny_ckpt)
    assert rc == 0 and f"skipping {root / 'out.png'}: link to outside the gallery (use --follow-links)" in err
    rc, stdout, err = cli(capsys, "index", root, "--db", db, "--follow-links")
    assert rc == 0 and "2 images in" in stdout and "1 added" in stdout, err
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT value FROM meta WHERE key = 'follow_links'").fetchone() == ("1",)
