"""`clipseek embed` with the in-process engine: shards, resume, skipped files, and `index --from-parquet`."""

import json
import os

import numpy as np
import pytest

from helpers import FakeEncoder, make_image, read_shards

pq = pytest.importorskip("pyarrow.parquet")


def reference(encoder, photos):
    from clipseek.core.images import walk_images
    from clipseek.embed.stages import embed_all

    return embed_all(encoder, walk_images(photos), batch_size=4, workers=2)


def test_local_shards_match_embed_paths(tmp_path, fake_encoder, photos):
    encoder = fake_encoder
    from clipseek.embed import shards
    from clipseek.embed.job import embed_job

    out = tmp_path / "out"
    s = embed_job(str(photos), str(out), encoder, shard_size=4, batch_size=3, workers=2)
    assert (s.files, s.shards, s.shards_written, s.embedded, len(s.skipped)) == (13, 4, 4, 11, 2)
    assert sorted(os.listdir(out)) == ["manifest.json"] + [f"shard-{i:05d}.{e}" for i in range(4)
                                                           for e in ("parquet", "skipped.json")]
    rows, vecs, skipped = read_shards(out)
    ref = reference(encoder, photos)
    assert [r[0] for r in rows] == ref.paths  # every good file exactly once, sorted
    np.testing.assert_allclose(vecs, ref.vectors, atol=1e-5)
    assert {os.path.basename(k.path): k.reason for k in skipped} == \
        {os.path.basename(k.path): k.reason for k in ref.skipped}
    from clipseek.gallery.store import file_hash

    assert all(r[1] == file_hash(r[0]) and r[2] == os.path.getsize(r[0]) for r in rows)
    assert [(r[4], r[5]) for r in rows] == ref.sizes
    t = pq.read_table(shards.shard_path(str(out), 0))
    vtype = t.schema.field("vector").type
    assert vtype.list_size == 32 and str(vtype.value_type) == "float"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"] == str(encoder.fingerprint) and manifest["num_shards"] == 4
    assert manifest["dim"] == 32 and manifest["dtype"] == "float32"
    assert (manifest["model"], manifest["framing"]) == (encoder.name, "center")
    assert s.fingerprint == encoder.fingerprint and s.to_dict()["fingerprint"] == manifest["fingerprint"]


def test_resume_redoes_only_missing_shards(tmp_path, fake_encoder, photos):
    encoder = fake_encoder
    from clipseek.embed import shards
    from clipseek.embed.job import embed_job

    out = tmp_path / "out"
    embed_job(str(photos), str(out), encoder, shard_size=4, vector_dtype="float16")
    before = {i: os.stat(shards.shard_path(str(out), i)).st_mtime_ns for i in range(4)}
    os.remove(shards.shard_path(str(out), 2))  # as if the job died before writing shard 2
    (out / "shard-00003.parquet.tmp-dead").write_bytes(b"half")  # a temp file left by a kill
    s = embed_job(str(photos), str(out), encoder, shard_size=4, vector_dtype="float16")
    assert (s.shards_done_before, s.shards_written) == (3, 1)
    assert all(os.stat(shards.shard_path(str(out), i)).st_mtime_ns == before[i] for i in (0, 1, 3))
    rows, vecs, _ = read_shards(out)
    assert len(rows) == len({r[0] for r in rows}) == 11 and vecs.dtype == np.float32
    assert not (out / "shard-00003.parquet.tmp-dead").exists()
    np.testing.assert_allclose(vecs, reference(encoder, photos).vectors, atol=2e-3)  # float16 storage


def test_other_job_or_model_refused(tmp_path, fake_encoder, photos):
    from clipseek.embed.job import embed_job
    from clipseek.errors import ClipseekError, ModelMismatchError

    encoder = fake_encoder
    out = tmp_path / "out"
    embed_job(str(photos), str(out), encoder, shard_size=4)
    with pytest.raises(ClipseekError, match="another embedding job"):
        embed_job(str(photos), str(out), encoder, shard_size=5)
    os.remove(out / "shard-00001.parquet")
    other = FakeEncoder(name="other-model")
    with pytest.raises(ModelMismatchError, match="model") as e:
        embed_job(str(photos), str(out), other, shard_size=4)
    assert str(other.fingerprint) in str(e.value) and str(encoder.fingerprint) in str(e.value)


def test_list_file_csv_and_parquet_sources(tmp_path, photos):
    import csv

    import pyarrow as pa

    from clipseek.embed.job import list_source

    files = sorted(str(p) for p in photos.rglob("*.p*g"))
    (tmp_path / "list.txt").write_text("# my files\n" + "\n".join(files[::-1]) + "\n\n")
    assert list_source(str(tmp_path / "list.txt")) == files
    with open(tmp_path / "f.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "file"])
        w.writerows([[i, os.path.relpath(p, tmp_path)] for i, p in enumerate(files)])
    assert list_source(str(tmp_path / "f.csv"), "file") == files
    pq.write_table(pa.table({"path": files + ["s3://bucket/x.jpg"]}), tmp_path / "f.parquet")
    assert list_source(str(tmp_path / "f.parquet")) == files + ["s3://bucket/x.jpg"]


def test_names_that_are_not_utf8_survive_shards_and_loading(tmp_path, fake_encoder):
    from clipseek.embed.job import embed_job
    from clipseek.gallery.parquet_load import index_from_parquet
    from clipseek.gallery.store import Store

    d = os.fsencode(tmp_path / "photos")
    os.makedirs(d)
    names = [b"ok.png", b"bad\xff.png", b"new\nline.png"]
    for i, n in enumerate(names):
        with open(os.path.join(d, n), "wb") as f:
            make_image(i).save(f, "PNG")
    os.mkfifo(os.path.join(d, b"fifo\xfe.png"))
    out = tmp_path / "out"
    s = embed_job(os.fsdecode(d), str(out), fake_encoder, shard_size=2)
    assert s.embedded == 3 and [(os.fsencode(k.path), k.reason) for k in s.skipped] == \
        [(os.path.join(d, b"fifo\xfe.png"), "not a regular file (a FIFO)")]
    rows, _, skipped = read_shards(out)
    assert sorted(os.fsencode(r[0]) for r in rows) == sorted(os.path.join(d, n) for n in names)
    assert os.fsencode(skipped[0].path) == os.path.join(d, b"fifo\xfe.png")
    table = pq.read_table(out / "shard-00000.parquet")
    assert table.column("path").type == "string" and table.column("path_bytes").type == "binary"
    with Store.open(str(tmp_path / "g.db")) as store:
        assert index_from_parquet(store, str(out)).added == 3
        assert sorted(os.fsencode(p) for p in store.rows_under([os.fsdecode(d)])) == \
            sorted(os.path.join(d, n) for n in names)


def test_one_job_per_folder_and_the_model_recorded_before_the_first_shard(tmp_path, fake_encoder, photos,
                                                                          monkeypatch):
    from clipseek._io import writer_lock
    from clipseek.embed import job, shards
    from clipseek.errors import BusyError

    out = tmp_path / "out"
    out.mkdir()
    with writer_lock(out / ".lock", str(out)):
        with pytest.raises(BusyError, match=f"pid {os.getpid()}"):
            job.embed_job(str(photos), str(out), fake_encoder)

    def killed(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(job, "run_local", killed)  # dies before the first batch
    with pytest.raises(KeyboardInterrupt):
        job.embed_job(str(photos), str(out), fake_encoder, shard_size=4)
    manifest = shards.read_manifest(str(out))
    assert manifest["fingerprint"] == str(fake_encoder.fingerprint) and manifest["model"] == "fake-clip"
    assert shards.done_shards(str(out)) == set()


def test_an_output_folder_whose_name_is_not_utf8(tmp_path, fake_encoder, photos):
    from clipseek.embed.job import embed_job
    from clipseek.gallery.parquet_load import index_from_parquet
    from clipseek.gallery.store import Store

    out = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"out\xff"))
    s = embed_job(str(photos), out, fake_encoder, shard_size=5)
    assert s.embedded == 11 and s.shards_written == 3
    with Store.open(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"g\xfe.db"))) as store:
        assert index_from_parquet(store, out).added == 11
