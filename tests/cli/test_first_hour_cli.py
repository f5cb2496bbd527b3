"""The first hour (issue 25): installing `clipseek`, the first commands offline, `models` at 80 columns,
no DB.lock after a failed start, an unchanged re-index that loads no model, an explicit ONNX export used
by later runs, and phone/RAW photos through `index`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import cli_env, make_image

ROOT = Path(__file__).resolve().parents[2]


def clipseek(*args, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipseek.cli", *map(str, args)], capture_output=True,
                          text=True, env=env or cli_env(), timeout=timeout)


# ---------------------------------------------------------------- getting started
def test_a_plain_pip_install_gives_a_working_clipseek(tmp_path):
    """The wheel `pip install .` builds, installed into a fresh venv: its own `clipseek` command runs,
    from the installed copy (package data included), and declares the phone-photo dependency."""
    src = tmp_path / "checkout"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "NOTICE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    py = sys.executable
    subprocess.run([py, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w",
                    str(tmp_path / "dist")], check=True, capture_output=True, timeout=120)
    wheel = next((tmp_path / "dist").glob("clipseek-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([py, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    subprocess.run([py, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True, timeout=120)
    # the dependencies come from the test environment (a path line: not its editable clipseek)
    site = Path(subprocess.check_output([str(venv / "bin" / "python"), "-c",
                                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    exe = venv / "bin" / "clipseek"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("clipseek "), version.stderr
    assert subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=env, timeout=60).returncode == 0
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import clipseek.model.clip_bpe as c; "
                            "print(c.__file__); print(c.VOCAB_FILE.is_file())"], capture_output=True, text=True,
                           env=env, timeout=60).stdout.split()
    assert where[0].startswith(str(venv)) and where[1] == "True"
    meta = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/METADATA").decode()
    assert "Requires-Dist: pillow-heif" in meta and 'Requires-Dist: rawpy>=0.21; extra == "raw"' in meta


def test_index_without_a_model_offline_says_the_demo_model_works(tmp_path, photos):
    env = {k: v for k, v in cli_env(HF_HOME=str(tmp_path / "empty-hf")).items() if k != "CLIPSEEK_MODEL"}
    db = tmp_path / "photos.db"
    r = clipseek("index", photos, "--db", db, env=env)
    lines = [line for line in r.stderr.splitlines() if not line.endswith("...")]  # phase lines aside
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("clipseek: error: "), r.stderr
    assert "`--model clipseek-demo` works offline" in r.stderr
    assert not os.path.exists(str(db) + ".lock")  # a failed start leaves no lock behind


def test_a_failed_start_leaves_no_db_lock(tmp_path, photos):
    (tmp_path / "not-a-model").mkdir()
    db = tmp_path / "g.db"
    r = clipseek("index", photos, "--db", db, "--model", tmp_path / "not-a-model")
    assert r.returncode != 0 and "not a checkpoint directory" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-model", "photos"]


def test_a_lock_file_removed_by_its_last_holder_is_not_trusted(tmp_path, monkeypatch):
    """A process that opened the lock file just before its holder removed it locks that orphan: the
    lock must notice the path now names another file and lock that one instead."""
    from clipseek._io import writer_lock

    lock = str(tmp_path / "g.db.lock")
    stale = os.open(lock, os.O_RDWR | os.O_CREAT)  # opened while the holder still had it
    with writer_lock(lock, "g.db"):
        pass
    assert not os.path.exists(lock)  # the holder removed it on the way out
    real, calls = os.open, []

    def first_open_is_stale(path, *args, **kwargs):
        calls.append(path)
        return stale if len(calls) == 1 else real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", first_open_is_stale)
    with writer_lock(lock, "g.db"):
        assert len(calls) == 2 and os.path.exists(lock)
        monkeypatch.setattr(os, "open", real)
        from clipseek.errors import BusyError

        with pytest.raises(BusyError):  # it is the real lock: another writer is refused
            with writer_lock(lock, "g.db", BusyError):
                pass
    assert not os.path.exists(lock)


def test_models_lists_the_demo_model_and_fits_80_columns():
    env = cli_env(COLUMNS="80")
    r = clipseek("models", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    assert lines[2].split()[:1] == ["clipseek-demo"] and "clipseek-demo" in r.stdout.split("How to pick:")[1]
    doc = json.loads(clipseek("models", "--format", "json").stdout)
    assert doc["bundled"][0]["hub_id"] == "clipseek-demo" and doc["bundled"][0]["cached"] is True
    wide = clipseek("models", env=cli_env(COLUMNS="200"))
    assert "images/s/core" in wide.stdout and "bundled demo" in wide.stdout


# ---------------------------------------------------------------- cold start
NO_MODEL = ("import sys; from clipseek.cli import main; rc = main(sys.argv[1:]); "
            "print('loaded:', 'torch' in sys.modules, 'transformers' in sys.modules, 'onnxruntime' in sys.modules)")


def test_an_unchanged_reindex_loads_no_model(tmp_path, photos):
    db = tmp_path / "g.db"
    first = clipseek("index", photos, "--db", db, "--model", "clipseek-demo", "--backend", "torch")
    assert first.returncode == 0, first.stderr
    again = subprocess.run([sys.executable, "-c", NO_MODEL, "index", str(photos), "--db", str(db), "--backend",
                            "torch"], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "0 added" in again.stdout and "11 unchanged" in again.stdout
    assert again.stdout.strip().splitlines()[-1] == "loaded: False False False"
    make_image(99, (50, 40)).save(photos / "new.png")  # something to embed: the model loads
    more = subprocess.run([sys.executable, "-c", NO_MODEL, "index", str(photos), "--db", str(db), "--backend",
                           "torch"], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert more.returncode == 0 and "1 added" in more.stdout, more.stderr
    assert more.stdout.strip().splitlines()[-1].startswith("loaded: True True")


def test_search_uses_the_explicit_export_instead_of_exporting_again(tiny_ckpt, photos, tmp_path):
    pytest.importorskip("onnxruntime")
    env = cli_env(CLIPSEEK_CACHE=str(tmp_path / "cache"))
    db = tmp_path / "b32.db"
    assert clipseek("index", photos, "--db", db, "--model", tiny_ckpt, "--backend", "torch", env=env).returncode == 0
    out = tmp_path / "b32-onnx"
    r = clipseek("export", "onnx", tiny_ckpt, out, "--int8", env=env)
    assert r.returncode == 0, r.stderr
    r = clipseek("search", "a red circle", "--db", db, "--backend", "onnx", "-f", "json", env=env)
    assert r.returncode == 0 and "exporting" not in r.stderr, r.stderr
    assert len(json.loads(r.stdout)["results"]) == 10
    assert not list((tmp_path / "cache" / "onnx").glob("*/clipseek-onnx.json"))  # nothing exported again


def test_the_first_export_into_the_cache_says_how_to_avoid_it_also_when_piped(tiny_ckpt, photos, tmp_path):
    pytest.importorskip("onnxruntime")
    env = cli_env(CLIPSEEK_CACHE=str(tmp_path / "cache"))
    img = next(photos.glob("*.png"))
    r = clipseek("classify", img, "-l", "a,b", "--model", tiny_ckpt, "--backend", "onnx", env=env)
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if "exporting" in line]
    assert len(notes) == 1 and f"clipseek export onnx {tiny_ckpt} DIR" in notes[0]
    again = clipseek("classify", img, "-l", "a,b", "--model", tiny_ckpt, "--backend", "onnx", env=env)
    assert "exporting" not in again.stderr


# ---------------------------------------------------------------- phone photos and camera RAW
def _phone_and_raw_folder(tmp_path) -> Path:
    import io

    import pillow_heif
    from PIL import Image
    from raw_images import minimal_dng

    pillow_heif.register_heif_opener()
    d = tmp_path / "phone"
    d.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[36867] = "2021:05:06 07:08:09"
    for fmt, ext in (("HEIF", ".heic"), ("AVIF", ".avif")):
        buf = io.BytesIO()
        make_image(1, (40, 20)).save(buf, fmt, exif=exif.tobytes(), quality=90)
        (d / f"IMG_0001{ext}").write_bytes(buf.getvalue())
    (d / "DSC_0001.dng").write_bytes(minimal_dng(make_image(2, (40, 20)), orientation=6))
    return d


def test_index_reads_phone_photos_and_raw(tmp_path):
    pytest.importorskip("rawpy")
    d = _phone_and_raw_folder(tmp_path)
    db = tmp_path / "g.db"
    r = clipseek("index", d, "--db", db, "--model", "clipseek-demo", "--backend", "torch")
    assert r.returncode == 0 and "3 added" in r.stdout and "0 skipped" in r.stdout, r.stdout + r.stderr
    found = json.loads(clipseek("search", "a shape", "--db", db, "-f", "json").stdout)["results"]
    assert sorted((Path(x["path"]).name, x["width"], x["height"]) for x in found) == [
        ("DSC_0001.dng", 20, 40), ("IMG_0001.avif", 20, 40), ("IMG_0001.heic", 20, 40)]
    dated = clipseek("search", "a shape", "--db", db, "--after", "2021-05-06", "--before", "2021-05-07", "-f", "json")
    assert {Path(x["path"]).name for x in json.loads(dated.stdout)["results"]} >= {"IMG_0001.heic", "IMG_0001.avif"}


def test_without_rawpy_index_lists_raw_files_as_skipped_with_how_to_read_them(tmp_path):
    d = _phone_and_raw_folder(tmp_path)
    blocker = tmp_path / "no-rawpy"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['rawpy'] = None\n")
    env = cli_env(PYTHONPATH=os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]))
    r = clipseek("index", d, "--db", tmp_path / "g.db", "--model", "clipseek-demo", "--backend", "torch", env=env)
    assert r.returncode == 0 and "2 added" in r.stdout, r.stdout + r.stderr
    assert f"skipping {d / 'DSC_0001.dng'}: RAW: install clipseek[raw]" in r.stderr
