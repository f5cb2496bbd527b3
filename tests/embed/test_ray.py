"""`clipseek embed --engine ray` on a small local Ray instance started by the test (2 CPUs)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clipseek.model.spec import ModelSpec
from helpers import cli_env, image_folder, make_image, read_shards

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def ray_cluster():
    import clipseek

    src = str(Path(clipseek.__file__).resolve().parents[1])  # workers import this clipseek
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([src] + ([old] if old else []))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture
def photos(tmp_path):
    return image_folder(tmp_path / "photos", 9, lambda i: (40 + i, 36), broken=True)



def test_ray_equals_in_process(ray_cluster, tmp_path, tiny_ckpt, encoder, photos):
    from clipseek.core.images import walk_images
    from clipseek.embed.job import embed_job
    from clipseek.embed.stages import embed_all

    s = embed_job(str(photos), str(tmp_path / "out"), engine="ray", spec=ModelSpec(tiny_ckpt, device="cpu"),
                  shard_size=3, batch_size=2, ray_options={"workers": 1})
    assert (s.files, s.shards, s.shards_written, s.embedded) == (10, 4, 4, 9)
    assert [os.path.basename(k.path) for k in s.skipped] == ["broken.jpg"]
    rows, vecs, skipped = read_shards(tmp_path / "out")
    ref = embed_all(encoder, walk_images(photos), batch_size=4)
    assert [r[0] for r in rows] == ref.paths  # every file exactly once
    assert (np.sum(vecs * ref.vectors, axis=1) >= 0.9999).all()
    assert [(k.path, k.reason) for k in skipped] == [(k.path, k.reason) for k in ref.skipped]
    assert s.fingerprint == encoder.fingerprint


def test_ray_onnx_backend_matches_torch(ray_cluster, tmp_path, tiny_ckpt, encoder, photos):
    """--backend onnx reaches the encoder actors: their fingerprint says onnx, the vectors are torch's."""
    pytest.importorskip("onnxruntime")
    from clipseek.core.images import walk_images
    from clipseek.embed.job import embed_job
    from clipseek.embed.stages import embed_all
    from clipseek.model.fingerprint import Fingerprint

    s = embed_job(str(photos), str(tmp_path / "out"), engine="ray",
                  spec=ModelSpec(tiny_ckpt, device="cpu", backend="onnx"),
                  shard_size=5, batch_size=3, ray_options={"workers": 1})
    assert (s.files, s.embedded, len(s.skipped)) == (10, 9, 1)
    fp = Fingerprint.parse(str(s.fingerprint))
    assert fp.backend == "onnx" and fp.same_weights(encoder.fingerprint)
    rows, vecs, _ = read_shards(tmp_path / "out")
    ref = embed_all(encoder, walk_images(photos), batch_size=4)
    assert [r[0] for r in rows] == ref.paths
    assert (np.sum(vecs * ref.vectors, axis=1) >= 0.99999).all()


def test_ray_killed_mid_way_then_rerun(ray_cluster, tmp_path, tiny_ckpt):
    from clipseek.embed import shards
    from clipseek.embed.job import embed_job

    d, out = tmp_path / "many", tmp_path / "out"
    d.mkdir()
    n = 60
    for i in range(n):
        make_image(i, (480, 360)).save(d / f"x{i:02d}.png")
    proc = subprocess.Popen([sys.executable, "-m", "clipseek.cli", "embed", str(d), "--out", str(out),
                             "--engine", "ray", "--address", ray_cluster, "--model", tiny_ckpt,
                             "--device", "cpu", "--shard-size", "2", "--batch-size", "2", "--workers", "1"],
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not shards.done_shards(str(out)):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the job ended before it could be killed: {err.decode()[-2000:]}"
    written = shards.done_shards(str(out))
    assert 0 < len(written) < n // 2  # killed after some shards, before most

    s = embed_job(str(d), str(out), engine="ray", spec=ModelSpec(tiny_ckpt, device="cpu"), shard_size=2,
                  batch_size=2, ray_options={"workers": 1})
    assert s.shards_done_before >= len(written) and s.shards_done_before + s.shards_written == n // 2
    rows, vecs, skipped = read_shards(out)
    assert sorted(r[0] for r in rows) == [str(d / f"x{i:02d}.png") for i in range(n)] and not skipped
    assert not [f for f in os.listdir(out) if ".tmp-" in f]  # a temp file left by the kill is removed
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)

