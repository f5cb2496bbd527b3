"""`clipseek index` on a folder with a video and a photo, then `clipseek search`: the table says
`path @ time`, JSON carries kind, time_s and the moments, `--media` and the duration filters filter,
an image query finds the moment too, and a bad `--media` is one line, exit 2."""

import json

import pytest

from clipseek.data.synthetic_video import segment_picture
from conftest import run_cli
from video_clips import clip


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    video = clip(str(folder))
    photo = folder / "circle.png"
    segment_picture("blue circle", 128, seed=5).save(photo)
    db = folder.parent / (folder.name + ".db")
    r = run_cli("index", folder, "--db", db, "--model", "clipseek-demo", "--backend", "torch", "-f", "json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["added"] == 2 and summary["moments"] >= 3 and summary["skipped"] == []
    return db, video, str(photo), folder


def test_the_table_says_when_and_json_carries_the_moments(indexed):
    db, video, photo, _ = indexed
    r = run_cli("search", "a red star", "--db", db, "-k", "1")
    assert r.returncode == 0, r.stderr
    assert "@ 00:02" in r.stdout or "@ 00:03" in r.stdout, r.stdout
    r = run_cli("search", "a red star", "--db", db, "-f", "json")
    (first, *rest) = json.loads(r.stdout)["results"]
    assert first["path"] == video and first["kind"] == "video" and 2.0 <= first["time_s"] < 4.0
    assert first["moments"][0] == {"time_s": first["time_s"], "score": first["score"]}
    assert [x["kind"] for x in rest] == ["photo"] and rest[0]["time_s"] is None and rest[0]["moments"] == []


def test_media_and_duration_filters(indexed):
    db, video, photo, _ = indexed
    def paths(*a):
        return run_cli("search", "a blue circle", "--db", db, "-f", "paths", *a).stdout.split()
    assert paths("--media", "video") == [video]
    assert paths("--media", "photo") == [photo]
    assert paths("--min-duration", "5") == [video]
    assert paths("--max-duration", "5") == []
    r = run_cli("search", "x", "--db", db, "--media", "gif")
    assert r.returncode == 2 and r.stderr.strip() == "clipseek: error: unknown media 'gif'; choose photo or video"
    r = run_cli("search", "x", "--db", db, "--min-duration", "9", "--max-duration", "3")
    assert r.returncode == 2 and "no video is in between" in r.stderr and "Traceback" not in r.stderr


def test_an_image_query_and_query_arithmetic_find_the_moment(indexed, tmp_path):
    db, video, _, _ = indexed
    star = tmp_path / "star.png"
    segment_picture("red star", 128, seed=9).save(star)
    r = run_cli("search", "--image", star, "--db", db, "--media", "video", "-f", "json")
    (hit,) = json.loads(r.stdout)["results"]
    assert hit["path"] == video and 2.0 <= hit["time_s"] < 4.0
    r = run_cli("search", "a red star", "--subtract", "a red star", "--add", "a blue circle", "--db", db,
                "--media", "video", "-f", "json")
    (hit,) = json.loads(r.stdout)["results"]
    assert 4.0 <= hit["time_s"] <= 6.0
