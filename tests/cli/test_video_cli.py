"""`clipseek classify VIDEO`: a timeline of stretches (start, end, label, probability) in JSON, CSV and
the table; bad videos skipped with their reasons; the run goes on."""

import csv
import io
import json
import os
import sys

import pytest

from helpers import cli_env
from helpers import run_cli as run
from video_clips import LABELS, clip, hostile

LABEL_ARG = ",".join(LABELS)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-videos")
    return clip(folder), hostile(folder)


def test_classify_video_json_timeline_and_skips(videos):
    good, bad = videos
    names = ["audio only", "zero-length", "corrupt bytes", "16K frame in the header"]
    r = run("classify", good, *[bad[n][0] for n in names], "-l", LABEL_ARG, "--model", "clipseek-demo",
            "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["results"] == [] and [v["path"] for v in doc["videos"]] == [good]
    rows = doc["videos"][0]["stretches"]
    star = next(s for s in rows if s["start_s"] <= 3.0 < s["end_s"])
    assert star["label"] == "red star" and 1.5 <= star["start_s"] <= 2.5 and 3.5 <= star["end_s"] <= 4.5
    assert rows[0]["start_s"] == 0 and rows[-1]["end_s"] == pytest.approx(6.0, abs=0.1)
    assert all(0 < s["score"] <= 1 and s["moments"] >= 1 for s in rows)
    reasons = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert {p: w in reasons[p] for n in names for p, w in [bad[n]]} == {bad[n][0]: True for n in names}


def test_classify_video_csv_and_table(videos, image_dir):
    good, _ = videos
    r = run("classify", good, image_dir / "img0.png", "-l", LABEL_ARG, "--model", "clipseek-demo", "-f", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    stretches = [row for row in rows if row["path"] == good]
    assert stretches and all(row["rank"] == "1" and float(row["end_s"]) > float(row["start_s"]) for row in stretches)
    assert any(row["label"] == "red star" and float(row["start_s"]) <= 3 < float(row["end_s"]) for row in stretches)
    images = [row for row in rows if row["path"].endswith("img0.png")]
    assert len(images) == 4 and all(row["start_s"] == "" for row in images)
    r = run("classify", good, "-l", LABEL_ARG, "--model", "clipseek-demo")
    assert r.returncode == 0 and "red star" in r.stdout and "00:06.0" in r.stdout and "00:00.0" in r.stdout


def test_sort_into_refuses_videos_in_one_line(videos, tmp_path):
    r = run("classify", videos[0], "-l", LABEL_ARG, "--sort-into", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not videos" in r.stderr


def test_without_pyav_a_video_is_skipped_with_the_install_hint(videos, image_dir, tmp_path):
    (tmp_path / "av.py").write_text("raise ImportError('no PyAV here')\n")
    import subprocess

    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-m", "clipseek.cli", "classify", videos[0], image_dir / "img0.png",
                        "-l", LABEL_ARG, "--model", "clipseek-demo", "-f", "json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["results"]) == 1 and "pip install 'clipseek[video]'" in doc["skipped"][0]["reason"]
