"""clipseek.core.video: probe, moments at shot changes, limits, and the timeline of `classify`.

Every video is generated here with PyAV (tests/video_clips.py): the shapes clip is a plain background
for 0-2 s, a red star from 2 to 4 s, a blue circle from 4 to 6 s."""

import hashlib
import os
import signal
import threading
import time

import numpy as np
import pytest

from clipseek.core.files import hash_regular
from clipseek.core.video import (
    MAX_MOMENTS,
    VideoLimits,
    media_kind,
    probe,
    sample_moments,
    stretches,
    walk_media,
    walk_videos,
)
from clipseek.core.video.shots import SHOT_THRESHOLD, Picker, Plan, shot_distance
from clipseek.data.synthetic_video import H264, repeat_video, shapes_clip, write_audio_only, write_video
from clipseek.errors import VideoError
from video_clips import LABELS, VARIANTS, claims_100_hours, clip, hostile, really_100_hours

SEGMENTS = [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


def test_probe_reads_what_the_file_is(folder):
    info = probe(clip(folder))
    assert (info.codec, info.width, info.height, info.rotation, info.has_audio) == ("h264", 128, 128, 0, False)
    assert info.fps == 30 and abs(info.duration_s - 6.0) < 0.1 and info.notes == ()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_moments_fall_at_the_shot_changes_and_inside_each_stretch(folder, name):
    sampling = sample_moments(clip(folder, name))
    moments = list(sampling)
    times = [m.time_s for m in moments]
    assert times == sorted(times) and times[0] == 0 and all(0 <= t <= 6.0 for t in times)
    for a, b in SEGMENTS:  # at least one moment inside each stretch
        assert any(a <= t < b for t in times), (name, times)
    shots = [m.time_s for m in moments if m.shot]
    assert len(shots) == 2 and abs(shots[0] - 2.0) <= 0.5 and abs(shots[1] - 4.0) <= 0.5, (name, times)
    assert all(m.image.size == (128, 128) and m.image.mode == "RGB" for m in moments)
    # what each moment shows: red in the star's stretch, blue in the circle's
    star, circle = (np.asarray(m.image, np.float32).reshape(-1, 3) for m in moments if m.shot)
    red = lambda px: float(np.mean(px[:, 0] - px[:, 2] > 80))  # noqa: E731  (share of red pixels)
    assert red(star) > 0.05 and red(circle) < 0.01 and float(np.mean(circle[:, 2] - circle[:, 0] > 80)) > 0.05


def test_a_moment_at_least_every_two_seconds_on_a_still_clip(folder):
    still = write_video(os.path.join(folder, "still.mp4"), (np.full((64, 64, 3), 120, np.uint8)
                                                           for _ in range(30 * 9)), 30, "libx264",
                        options={"preset": "ultrafast"})
    times = [m.time_s for m in sample_moments(still)]
    assert times[0] == 0 and all(1.7 <= b - a <= 2.1 for a, b in zip(times, times[1:])) and times[-1] > 6


def test_a_moment_every_two_seconds_when_keyframes_are_irregular(folder):
    """x264's default spacing (250 frames) in a file joined from 10-s pieces: keyframes 8.3 s, then 1.7 s
    apart. Where the next keyframe is far (the container's index says so), the frames between are decoded."""
    frames = (np.full((96, 160, 3), 100 + i // 10, np.uint8) for i in range(300))
    ten = write_video(os.path.join(folder, "ten.mp4"), frames, 30, "libx264", options={"preset": "ultrafast"},
                      gop=250)
    sampling = sample_moments(repeat_video(ten, os.path.join(folder, "thirty.mp4"), 3))
    times = [m.time_s for m in sampling]
    assert max(b - a for a, b in zip(times, times[1:])) <= 2.5 and times[-1] > 27, times
    assert sampling.decoded < 900  # not every frame: none after the last moment due before a keyframe


def test_rotation_is_applied_and_capture_time_read(folder):
    import av

    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display matrix")
    frames = []
    for _ in range(10):
        a = np.zeros((32, 64, 3), np.uint8)
        a[:, :32] = 255  # left half white
        frames.append(a)
    path = write_video(os.path.join(folder, "rot.mp4"), frames, 10, "libx264", options={"preset": "ultrafast"},
                       rotation=90, metadata={"creation_time": "2023-06-01T10:20:30.000000Z"})
    info = probe(path)
    assert (info.rotation, info.width, info.height) == (90, 32, 64)
    assert info.taken_ns == 1685614830 * 10**9
    img = np.asarray(next(iter(sample_moments(path))).image, np.float32).mean(axis=2)
    assert img.shape == (64, 32)  # shown upright: turned a quarter counter-clockwise, the left half
    assert img[40:].mean() > 200 and img[:24].mean() < 50  # is at the bottom


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return hostile(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("case", ["corrupt bytes", "truncated mp4", "zero-length", "audio only",
                                  "16K frame in the header", "unknown codec", "FIFO"])
def test_each_bad_input_is_refused_with_its_reason(bad_inputs, case):
    if case not in bad_inputs:
        pytest.skip(f"no {case} on this system")
    path, word = bad_inputs[case]
    t0 = time.monotonic()
    with pytest.raises(VideoError) as e:
        list(sample_moments(path))
    assert word in e.value.reason and e.value.path == path
    assert time.monotonic() - t0 < 10


def test_a_truncated_stream_keeps_its_moments_with_a_note(folder):
    data = open(shapes_clip(os.path.join(folder, "whole.mkv"), H264), "rb").read()
    cut = os.path.join(folder, "cut.mkv")
    open(cut, "wb").write(data[: len(data) // 2])  # Matroska streams: the first half still plays
    sampling = sample_moments(cut)
    times = [m.time_s for m in sampling]
    assert times and times[-1] < 4 and any("ends at" in n for n in sampling.notes)


def test_a_header_claiming_100_hours_is_measured(folder):
    sampling = sample_moments(claims_100_hours(folder))
    assert sampling.info.claimed_duration_s == 360000 and abs(sampling.info.duration_s - 6) < 0.5
    assert "the header claims 360,000.0 s" in sampling.notes[0]
    shots = [m.time_s for m in sampling if m.shot]  # planned for 6 s, not spread over 100 hours
    assert len(shots) == 2


def test_a_real_100_hour_video_is_capped_and_spread(folder):
    t0 = time.monotonic()
    sampling = sample_moments(really_100_hours(folder))
    times = [m.time_s for m in sampling]
    assert len(times) <= MAX_MOMENTS and times[-1] > 0.95 * 360000  # all of it is covered
    assert min(b - a for a, b in zip(times, times[1:])) >= 600 - 1e-6
    assert sampling.decoded < 2 * MAX_MOMENTS and time.monotonic() - t0 < 60  # sought, not read through


def test_the_moment_cap_spreads_the_moments(folder):
    times = [m.time_s for m in sample_moments(clip(folder, "mjpeg-avi"), VideoLimits(max_moments=2))]
    assert len(times) == 2 and times[1] - times[0] >= 3.0  # 2 moments over 6 s: 3 s apart at least


def test_frames_come_one_at_a_time(folder):
    """A 60-s clip: after its first moment the reader is still near the start, and reading all of it
    keeps memory flat (no frame is held after its moment is yielded)."""
    long = repeat_video(clip(folder, "h264-mp4", size=320), os.path.join(folder, "60s.mp4"), 10)
    sampling = sample_moments(long)
    it = iter(sampling)
    next(it)
    assert sampling.position_s < 3 and sampling.decoded < 5
    before = _rss_mb()
    n = sum(1 for _ in it)
    assert n >= 29 and _rss_mb() - before < 60  # the 1,800 frames held would be 270 MB


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_the_time_budget_cuts_a_slow_run(folder):
    sampling = sample_moments(repeat_video(clip(folder), os.path.join(folder, "30s.mp4"), 5),
                              VideoLimits(budget_s=1.0))
    taken = []
    for m in sampling:
        taken.append(m.time_s)
        time.sleep(0.3)  # a consumer this slow (or a decoder that stalls) runs into the budget
    assert 2 <= len(taken) < 10 and "over the time budget of 1 s" in sampling.notes[-1]
    with pytest.raises(VideoError, match="time budget"):
        list(sample_moments(clip(folder), VideoLimits(budget_s=0)))


@pytest.fixture(scope="module")
def long_clip(folder) -> str:
    """10 minutes of 640x360 H.264 with a keyframe every 10 s: most frames have to be decoded."""
    ramp = np.linspace(0, 255, 640, dtype=np.float32)[None, :, None]
    frames = (np.clip(ramp + i / 2 + np.zeros((360, 1, 3)), 0, 255).astype(np.uint8) for i in range(300))
    ten = write_video(os.path.join(folder, "ten-s.mp4"), frames, 30, "libx264", options={"preset": "ultrafast"},
                      gop=300)
    return repeat_video(ten, os.path.join(folder, "10min.mp4"), 60)


def test_ctrl_c_stops_sampling_within_a_second(long_clip):

    def interrupt(*_):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    sampling = sample_moments(long_clip)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            for _ in sampling:
                pass
        assert time.monotonic() - t0 < 1.5 and sampling.position_s < 590
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_cancel_stops_a_run_in_another_thread(long_clip):
    stop = threading.Event()
    sampling = sample_moments(long_clip, cancel=stop)
    got = []
    worker = threading.Thread(target=lambda: got.extend(m.time_s for m in sampling))
    worker.start()
    time.sleep(0.3)
    stop.set()
    worker.join(5)
    assert not worker.is_alive() and got and "cancelled at" in sampling.notes[-1]


def test_mjpeg_is_decoded_at_reduced_size(folder):
    sampling = sample_moments(clip(folder, "mjpeg-avi", stem="big", size=544))
    moments = list(sampling)  # decoded at 272x272 (half), shown at 256x256
    assert sampling.lowres == 1 and len(moments) >= 3 and all(m.image.size == (256, 256) for m in moments)
    assert sample_moments(clip(folder, "h264-mp4")).lowres == 0


def test_a_frame_over_the_pixel_limit_is_refused(folder):
    with pytest.raises(VideoError, match="exceeds the limit of 10,000 pixels"):
        probe(clip(folder), VideoLimits(max_pixels=10_000))


def test_streaming_hash_is_the_image_hash(tmp_path):
    from clipseek.gallery.store import file_hash

    p = tmp_path / "v.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    p.write_bytes(data)
    digest, st = hash_regular(str(p), chunk=1000)
    assert digest == hashlib.blake2b(data, digest_size=16).hexdigest() == file_hash(str(p))
    assert st.st_size == len(data)


def test_names_and_walkers(tmp_path):
    for name in ("a.MP4", "b.mov", "c.mkv", "d.webm", "e.avi", "f.m4v", "g.jpg", ".h.mp4", "i.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [media_kind(n) for n in ("x.MOV", "y.png", "z.txt")] == ["video", "image", None]
    assert [os.path.basename(p) for p in walk_videos(tmp_path)] == ["a.MP4", "b.mov", "c.mkv", "d.webm",
                                                                     "e.avi", "f.m4v"]
    assert len(walk_media(tmp_path)) == 7
    from clipseek.core.images import walk_images
    assert [os.path.basename(p) for p in walk_images(tmp_path)] == ["g.jpg"]  # image commands: unchanged


def test_picker_takes_cuts_but_not_too_often():
    plan = Plan.for_duration(60, MAX_MOMENTS, every_s=2, min_gap_s=1)
    picker = Picker(plan)
    a, b = np.zeros((16, 16, 3), np.float32), np.ones((16, 16, 3), np.float32)
    assert shot_distance(a, b) > SHOT_THRESHOLD > shot_distance(a, a + 0.01)
    seq = [(0.0, a), (0.25, a), (0.5, b), (0.75, b), (1.0, b), (1.25, a), (1.5, a), (2.0, a), (3.5, a), (4.0, a)]
    taken = [(t, picker.offer(t, s)) for t, s in seq]
    # the cut at 0.5 is taken at once (the last moment was no cut); the cut back at 1.25 waits for the
    # minimum gap (1 s) after the first cut's moment; then a moment 2 s (less a candidate step) after
    assert [(t, shot) for t, (take, shot) in taken if take] == [(0.0, False), (0.5, True), (1.5, True),
                                                                (3.5, False)]
    long = Plan.for_duration(360000, MAX_MOMENTS, 2, 1)
    assert (long.min_gap, long.every, long.step) == (600, 1200, 150)


def test_stretches_merge_equal_top_labels():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    out = stretches([0.1, 2.0, 3.0, 4.0], probs, ["a", "b"], end_s=6.0)
    assert [(s.start_s, s.end_s, s.label, s.moments) for s in out] == [(0.0, 2.0, "a", 1), (2.0, 4.0, "b", 2),
                                                                        (4.0, 6.0, "a", 1)]
    assert out[1].score == pytest.approx(0.75) and stretches([], np.zeros((0, 2)), ["a", "b"]) == []


def test_classify_video_timeline_with_the_bundled_model(folder):
    from clipseek import load_model
    from clipseek.zero_shot import classify, classify_video

    encoder = load_model("clipseek-demo", backend="torch")  # onnx: an export per test run (30 s)
    timeline = classify_video(encoder, clip(folder), LABELS)
    at = lambda t: next(s for s in timeline.stretches if s.start_s <= t < s.end_s)  # noqa: E731
    assert at(3.0).label == "red star" and 1.5 <= at(3.0).start_s <= 2.5 and 3.5 <= at(3.0).end_s <= 4.5
    assert at(5.0).label == "blue circle" and at(1.0).label == "plain background"
    audio = write_audio_only(os.path.join(folder, "audio.mov"))
    result = classify(encoder, [clip(folder), audio], LABELS)
    assert [t.path for t in result.timelines] == [clip(folder)] and result.predictions == []
    assert [s.reason for s in result.skipped] == ["no video stream (audio only)"]
