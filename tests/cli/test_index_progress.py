"""`clipseek index` names each phase (also piped), and Ctrl-C says what was committed and exits 130."""

import signal
import subprocess
import sys

from conftest import cli_env, image_folder, run_cli, wait_for
from test_watch_cli import count, read_lines


def test_piped_index_prints_each_phase(tmp_path, tiny_ckpt):
    d = image_folder(tmp_path / "photos", 5)
    r = run_cli("index", d, "--db", tmp_path / "g.db", "--model", tiny_ckpt)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    want = ["loading the model...", "scanning...", "embedding 5 new or changed files", "saving the index (5 images)"]
    assert [l for l in lines if l in want] == want, r.stderr
    again = run_cli("index", d, "--db", tmp_path / "g.db", "--model", tiny_ckpt)
    assert "nothing new to embed" in again.stderr.splitlines()


def test_ctrl_c_mid_index_says_what_was_committed_and_exits_130(tmp_path, tiny_ckpt):
    d = image_folder(tmp_path / "photos", 400, size=lambda i: (160, 120))
    db = tmp_path / "g.db"
    proc = subprocess.Popen([sys.executable, "-m", "clipseek.cli", "index", d, "--db", db, "--model", tiny_ckpt,
                             "--batch-size", "1", "--workers", "1"], env=cli_env(PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errs, reader = read_lines(proc.stderr)
    try:
        assert wait_for(lambda: count(db) >= 3, timeout=120), errs
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(10)
    done = [l for l in errs if l.startswith("interrupted: ")]
    assert proc.returncode == 130, errs
    assert len(done) == 1 and done[0].endswith(" of 400 files committed; run the same command to go on\n"), errs
    committed = int(done[0].split()[1].replace(",", ""))
    assert 3 <= committed < 400 and committed == count(db)
    assert not any("Traceback" in l for l in errs)


def test_the_first_onnx_export_is_named_once_with_its_time_and_size(tmp_path, tiny_ckpt):
    d = image_folder(tmp_path / "photos", 2)
    env = cli_env(CLIPSEEK_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "clipseek.cli", "index", str(d), "--db", str(tmp_path / "g.db"), "--model",
           tiny_ckpt, "--backend", "onnx"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    done = [l for l in first.stderr.splitlines() if "exported to ONNX in " in l]
    assert len(done) == 1 and " s (" in done[0] and " MB in " in done[0], first.stderr
    (d / "new.png").write_bytes((d / "p0.png").read_bytes()[:-1] + b"\0")  # something to do again
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "ONNX" not in again.stderr, again.stderr
