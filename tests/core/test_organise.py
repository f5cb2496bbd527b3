"""Files into folders and back: safe names, no overwrites, the log first, undo, and kill -9 mid-move."""

import csv
import errno
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from clipseek.core import organise, transfer
from clipseek.core.organise import (
    check_destination,
    plan_transfers,
    read_log,
    safe_folder_name,
    transfer_all,
    undo_log,
    write_log,
)
from clipseek.errors import UsageError


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def files(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    made = {}
    for i in range(6):
        p = src / ("a" if i % 2 else "b") / f"img{i % 3}.jpg"  # the same names in two folders
        p.write_bytes(os.urandom(1000 + i))
        made[str(p)] = digest(p)
    return src, made


def test_safe_folder_names():
    assert safe_folder_name("red car") == "red car"
    assert safe_folder_name("a/b\\c") == "a_b_c"
    assert safe_folder_name("  ..  ") == "label" and safe_folder_name("") == "label"
    assert safe_folder_name("CON") == "label CON" and safe_folder_name("nul.txt") == "label nul.txt"
    assert safe_folder_name("_unsure") == "label_unsure"  # the unsure folder stays unambiguous
    assert safe_folder_name("dog.") == "dog" and safe_folder_name("x\x00y") == "x_y"
    assert len(safe_folder_name("x" * 500)) == organise.MAX_NAME
    assert safe_folder_name("été") == "été"


def test_out_inside_source_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(UsageError, match="inside the source folder"):
        check_destination(str(tmp_path / "photos" / "sorted"), [str(tmp_path / "photos")])
    with pytest.raises(UsageError, match="inside the source folder"):
        check_destination(str(tmp_path / "photos"), [str(tmp_path / "photos")])
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_destination(str(tmp_path / "file"), [])
    assert check_destination(str(tmp_path / "sorted"), [str(tmp_path / "photos")]) == str(tmp_path / "sorted")


def test_clashes_get_suffixes_and_nothing_is_overwritten(tmp_path, files):
    src, made = files
    out = tmp_path / "out"
    (out / "x").mkdir(parents=True)
    (out / "x" / "img0.jpg").write_bytes(b"already here")
    rows = [(p, os.path.join("x", os.path.basename(p)), "x", 0.9) for p in sorted(made)]
    plan = plan_transfers(rows, str(out))
    names = sorted(os.path.basename(t.destination) for t in plan)
    assert names == ["img0-1.jpg", "img0-2.jpg", "img1-1.jpg", "img1.jpg", "img2-1.jpg", "img2.jpg"]
    report = transfer_all(plan, "copy")
    assert len(report.done) == 6 and not report.skipped
    assert (out / "x" / "img0.jpg").read_bytes() == b"already here"
    for t in plan:
        assert digest(t.destination) == made[t.source] and os.path.exists(t.source)


@pytest.mark.parametrize("mode", ["move", "copy", "link"])
def test_round_trip_every_file_back_byte_identical(tmp_path, files, mode):
    src, made = files
    out = tmp_path / "out"
    plan = plan_transfers([(p, os.path.join("lbl", os.path.basename(p)), "lbl", 0.5) for p in made], str(out))
    log = str(out / "log.csv")
    write_log(log, plan, mode)
    assert read_log(log) == [(t, mode) for t in plan]
    transfer_all(plan, mode)
    for t in plan:
        assert digest(t.destination) == made[t.source]
        assert os.path.exists(t.source) == (mode != "move")
    report = undo_log(log)
    assert (report.restored, report.untouched, report.kept) == (6, 0, [])
    assert {str(p): digest(p) for p in src.rglob("*.jpg")} == made
    assert not (out / "lbl").exists() and out.exists()  # emptied folders are removed, not OUT
    again = undo_log(log)  # a second undo changes nothing
    assert (again.restored, again.untouched) == (0, 6)


def test_move_across_filesystems_copies_fsyncs_then_unlinks(tmp_path, files, monkeypatch):
    src, made = files

    def other_fs(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(transfer, "_rename", other_fs)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(transfer.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    plan = plan_transfers([(p, os.path.basename(p) + ".moved", "l", 1.0) for p in made], str(tmp_path / "o"))
    report = transfer_all(plan, "move")
    assert len(report.done) == 6 and len(synced) >= 12  # each file, and its folder
    for t in plan:
        assert not os.path.exists(t.source) and digest(t.destination) == made[t.source]
    assert not [n for n in os.listdir(tmp_path / "o") if ".tmp-" in n]


def test_vanished_source_and_appeared_destination_are_skipped(tmp_path, files):
    src, made = files
    paths = sorted(made)
    plan = plan_transfers([(p, os.path.basename(p) + f".{i}", "l", 1.0) for i, p in enumerate(paths)],
                          str(tmp_path / "o"))
    os.remove(paths[0])
    os.makedirs(tmp_path / "o")
    (tmp_path / "o" / os.path.basename(plan[1].destination)).write_bytes(b"someone else's")
    report = transfer_all(plan, "move")
    why = {s.path: s.reason for s in report.skipped}
    assert "disappeared" in why[paths[0]] and "not overwritten" in why[paths[1]]
    assert len(report.done) == 4
    assert open(plan[1].destination, "rb").read() == b"someone else's" and os.path.exists(paths[1])


def test_bad_logs(tmp_path):
    with pytest.raises(UsageError, match="log not found"):
        read_log(str(tmp_path / "none.csv"))
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UsageError, match="not a clipseek log"):
        read_log(str(tmp_path / "x.csv"))
    write_log(str(tmp_path / "ok.csv"), [], "move")
    with pytest.raises(UsageError, match="exists already"):
        write_log(str(tmp_path / "ok.csv"), [], "move")


CHILD = textwrap.dedent("""
    import errno, os, shutil, sys, time
    from clipseek.core import organise, transfer
    src, out, log, kind = sys.argv[1:5]
    if kind == "xdev":  # another filesystem: rename fails, so each move is copy + fsync + rename + unlink
        def other_fs(a, b):
            raise OSError(errno.EXDEV, "cross-device")
        transfer._rename = other_fs
        real_copy = shutil.copy2
        def slow_copy(a, b):
            real_copy(a, b)
            time.sleep(0.01)  # a kill often lands while the hidden temp copy exists
        transfer.shutil.copy2 = slow_copy
    paths = sorted(os.path.join(src, n) for n in os.listdir(src))
    plan = organise.plan_transfers([(p, os.path.join("lbl", os.path.basename(p)), "lbl", 1.0) for p in paths], out)
    organise.write_log(log, plan, "move")
    organise.transfer_all(plan, "move", on_item=lambda n: time.sleep(0.003))
""")


@pytest.mark.parametrize("kind", ["rename", "xdev"])
def test_kill_9_mid_move_leaves_every_file_in_one_place(tmp_path, kind):
    src, out, log = tmp_path / "src", tmp_path / "out", tmp_path / "logs" / "log.csv"
    src.mkdir()
    made = {}
    for i in range(400):
        p = src / f"f{i:03d}.jpg"
        p.write_bytes(os.urandom(20_000))
        made[str(p)] = digest(p)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(src), str(out), str(log), kind],
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        names = os.listdir(out / "lbl") if (out / "lbl").exists() else []
        moved = len([n for n in names if not n.startswith(".")])
        copying = any(n.startswith(".") for n in names)  # a hidden temp copy exists right now
        if moved >= 40 and (copying or kind == "rename"):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    rows = list(csv.DictReader(open(log, newline="")))
    assert len(rows) == 400 and {r["source"] for r in rows} == set(made)  # the log was complete first
    at_dst = 0
    for r in rows:
        s, d = os.path.exists(r["source"]), os.path.exists(r["destination"])
        assert s or d, f"{r['source']} is in neither place"
        if s and d:  # only across filesystems, killed between the rename and the unlink: same bytes
            assert kind == "xdev" and digest(r["source"]) == digest(r["destination"])
        where = r["destination"] if d else r["source"]
        assert digest(where) == made[r["source"]]
        at_dst += d
    assert 40 <= at_dst < 400

    report = undo_log(str(log))
    assert report.kept == [] and report.restored + report.untouched == 400
    assert {str(p): digest(p) for p in src.iterdir()} == made
    assert os.listdir(out / "lbl") == []  # no file, and no hidden temp copy, left behind
