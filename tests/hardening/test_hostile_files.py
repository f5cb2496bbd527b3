"""Issue 23, items 9 (non-finite vectors from shards and database rows), 10 and 15: hostile ONNX export
folders, Parquet shards, database rows and manifests, generated here. Each must give one line and the
right exit code (1: the data cannot be used, 2: a bad argument), never a traceback; a bad row or file
is skipped with its reason and the run goes on; nothing outside the given folder is read for it, and
nothing non-finite is stored."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3

import numpy as np
import pytest

from clipseek.cli import main
from helpers import image_folder, make_image


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


# ---- ONNX export folders -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def export(tiny_ckpt, tmp_path_factory):
    """A good export folder of the tiny checkpoint (each test changes a copy)."""
    pytest.importorskip("onnxruntime")
    from clipseek.model.loader import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "good"
    export_onnx(tiny_ckpt, str(out))
    return out


def rehash(folder) -> None:
    """Make the manifest's checksums match the folder again, as a hostile folder's maker would."""
    doc = json.loads((folder / "clipseek-onnx.json").read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        return
    for name in doc["files"]:
        if os.path.isfile(folder / name):
            data = (folder / name).read_bytes()
            doc["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (folder / "clipseek-onnx.json").write_text(json.dumps(doc))
    (folder / ".verified.json").unlink(missing_ok=True)


def edit_manifest(folder, **values) -> None:
    doc = json.loads((folder / "clipseek-onnx.json").read_text())
    for key, v in values.items():
        part, _, sub = key.partition("__")
        if sub:
            doc[part][sub] = v
        else:
            doc[part] = v
    (folder / "clipseek-onnx.json").write_text(json.dumps(doc))


def tiny_graph(path, input_name: str) -> None:
    """A valid ONNX graph (Flatten) whose one input is named `input_name`."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["n", 3, 32, 32])
    y = helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["n", 3072])
    graph = helper.make_graph([helper.make_node("Flatten", [input_name], ["embeds"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def external_data_at(folder, location: str) -> None:
    """Point every external tensor of image.onnx at `location`."""
    onnx = pytest.importorskip("onnx")

    model = onnx.load(str(folder / "image.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
    (folder / "image.onnx").write_bytes(model.SerializeToString())


def _garbage_graph(d):
    (d / "image.onnx").write_bytes(b"\x08\x07garbage, not a protobuf" * 40)


def _bad_tokenizer(d):
    (d / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "NoSuchModel"}}')


def _outside_link(d):
    secret = d.parent / f"{d.name}-secret.txt"
    secret.write_text("secret")
    (d / "image.onnx.data").unlink()
    os.symlink(secret, d / "image.onnx.data")


def _outside_name(d):
    (d.parent / f"{d.name}-notes.txt").write_text("mine")
    doc = json.loads((d / "clipseek-onnx.json").read_text())
    doc["files"][f"../{d.name}-notes.txt"] = {"sha256": "0" * 64, "size": 4}
    (d / "clipseek-onnx.json").write_text(json.dumps(doc))


def _preprocess(**values):
    def change(d):
        doc = json.loads((d / "preprocessor_config.json").read_text())
        (d / "preprocessor_config.json").write_text(json.dumps({**doc, **values}))
    return change


# case -> (change to the folder, a fragment of the one line)
ONNX_CASES = {
    "garbage graph": (_garbage_graph, "image.onnx: onnxruntime cannot load it"),
    "other input names": (lambda d: tiny_graph(d / "image.onnx", "images"), "must take pixel_values"),
    "logit_scale string": (lambda d: edit_manifest(d, logit_scale="100"), "'logit_scale' must be a finite"),
    "logit_scale nan": (lambda d: edit_manifest(d, logit_scale=float("nan")), "'logit_scale' must be"),
    "logit_scale inf": (lambda d: edit_manifest(d, logit_scale=float("inf")), "'logit_scale' must be"),
    "logit_scale negative": (lambda d: edit_manifest(d, logit_scale=-3.0), "'logit_scale' must be"),
    "logit_scale huge": (lambda d: edit_manifest(d, logit_scale=1e300), "'logit_scale' must be"),
    "logit_bias nan": (lambda d: edit_manifest(d, logit_bias=float("nan")), "'logit_bias' must be"),
    "bad tokenizer": (_bad_tokenizer, "tokenizer.json: not a `tokenizers` tokenizer"),
    "external data outside": (lambda d: external_data_at(d, "../../etc/passwd"), "escapes model directory"),
    "external data absolute": (lambda d: external_data_at(d, "/etc/passwd"), "Absolute path not allowed"),
    "listed file is a link out": (_outside_link, "image.onnx.data is a symbolic link"),
    "listed name outside": (_outside_name, "is not a plain name inside the folder"),
    "dim 1e30": (lambda d: edit_manifest(d, dim=1e30), "'dim' must be a whole number from 1 to 65536"),
    "dim huge int": (lambda d: edit_manifest(d, dim=10 ** 30), "'dim' must be a whole number"),
    "max_length huge": (lambda d: edit_manifest(d, text__max_length=10 ** 30), "'text.max_length' must be"),
    "pad_id negative": (lambda d: edit_manifest(d, text__pad_id=-1), "'text.pad_id' must be"),
    "manifest a list": (lambda d: (d / "clipseek-onnx.json").write_text("[1, 2]"), "not a JSON object"),
    "files not an object": (lambda d: edit_manifest(d, files=[1]), "'files' must be an object"),
    "image side 1e9": (_preprocess(size={"shortest_edge": 10 ** 9}), "values out of range"),
    "image std zero": (_preprocess(image_std=[0, 0, 0]), "values out of range"),
    "processor size text": (_preprocess(size="big"), "not a usable image processor config"),
}


@pytest.mark.parametrize("case", list(ONNX_CASES))
def test_a_hostile_onnx_export_folder_is_one_line_exit_1(case, export, tmp_path, capsys):
    change, fragment = ONNX_CASES[case]
    folder = tmp_path / "hostile"
    shutil.copytree(export, folder)
    change(folder)
    if case not in ("listed name outside",):
        rehash(folder)
    make_image(0).save(tmp_path / "x.png")
    rc = main(["classify", str(tmp_path / "x.png"), "-l", "cat,dog", "--model", str(folder)])
    err = one_line_error(capsys)
    assert rc == 1 and fragment in err, err


def test_the_good_export_still_classifies(export, tmp_path, capsys):
    make_image(0).save(tmp_path / "x.png")
    assert main(["classify", str(tmp_path / "x.png"), "-l", "cat,dog", "--model", str(export)]) == 0


# ---- Parquet shards for `index --from-parquet` -------------------------------------------------------
@pytest.fixture(scope="module")
def job(tmp_path_factory, fake_encoder):
    """A good `clipseek embed` folder: 10 images (9 embedded, a broken one skipped) in 3 shards of 4."""
    pytest.importorskip("pyarrow")
    from clipseek.embed.job import embed_job

    root = tmp_path_factory.mktemp("shards")
    photos = image_folder(root / "photos", 9, broken=True)
    embed_job(str(photos), str(root / "out"), fake_encoder, shard_size=4, workers=1)
    return root / "out"


def table(folder, i):
    import pyarrow.parquet as pq

    return pq.read_table(folder / f"shard-{i:05d}.parquet")


def rewrite(folder, i, types=None, drop=(), **changes):
    """Shard i again with `changes` (column -> function of its Python list), columns `drop`ped, and
    column types from `types` (the shard's own otherwise); its model metadata kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = table(folder, i)
    cols = {k: changes.get(k, lambda v: v)(v) for k, v in t.to_pydict().items() if k not in drop}
    kinds = {k: (types or {}).get(k, t.schema.field(k).type) for k in cols}
    new = pa.table({k: pa.array(v, kinds[k]) for k, v in cols.items()}).replace_schema_metadata(t.schema.metadata)
    pq.write_table(new, folder / f"shard-{i:05d}.parquet")


def at(row: int, value):
    """A column change: row `row` becomes `value`."""
    return lambda v: [value if j == row else x for j, x in enumerate(v)]


def _nan_vector(v):
    return at(1, [float("nan")] + v[1][1:])(v)


def _outside(d, i, path):
    rewrite(d, i, path_bytes=at(0, path), path=at(0, os.fsdecode(path)))


def _duplicate(d):
    first = table(d, 0).column("path_bytes")[0].as_py()
    rewrite(d, 1, path_bytes=at(2, first), path=at(2, os.fsdecode(first)))


def _manifest(d, **values):
    doc = json.loads((d / "manifest.json").read_text())
    doc.update(values)
    doc = {k: v for k, v in doc.items() if v is not DROP}
    (d / "manifest.json").write_text(json.dumps(doc))


DROP = object()
# case -> (change to a copy of the job, [(shard, row or None: the whole shard, reason fragment)])
SHARD_CASES = {
    "dimension mismatch": (lambda d: rewrite(d, 1, types={"vector": __import__("pyarrow").list_(
        __import__("pyarrow").float32(), 16)}, vector=lambda v: [x[:16] for x in v]),
        [(1, None, "vectors of 16 dimensions; the job's are 32")]),
    "null path_bytes": (lambda d: rewrite(d, 0, path_bytes=at(1, None)), [(0, 1, "no path")]),
    "ragged vectors": (lambda d: rewrite(d, 2, types={"vector": __import__("pyarrow").list_(
        __import__("pyarrow").float32())}, vector=lambda v: [x[:31] if j == 0 else x for j, x in enumerate(v)]),
        [(2, 0, "a vector of 31 numbers, not 32")]),
    "null vector": (lambda d: rewrite(d, 0, vector=at(2, None)), [(0, 2, "no vector")]),
    "missing column": (lambda d: rewrite(d, 1, drop=("hash",)), [(1, None, "no column 'hash'")]),
    "not parquet": (lambda d: (d / "shard-00002.parquet").write_bytes(b"PAR1 not really" * 10),
                    [(2, None, "not a Parquet file")]),
    "duplicate paths": (_duplicate, [(1, 2, "a second row for this path")]),
    "duplicate paths in a shard": (lambda d: rewrite(d, 0, path_bytes=lambda v: [v[0], v[0]] + v[2:],
                                                     path=lambda v: [v[0], v[0]] + v[2:]),
                                   [(0, 1, "a second row for this path")]),
    "nan vector": (lambda d: rewrite(d, 0, vector=_nan_vector), [(0, 1, "not finite")]),
    "not a unit vector": (lambda d: rewrite(d, 0, vector=at(0, [3.0] * 32)), [(0, 0, "not a unit vector")]),
    "non-hex hash": (lambda d: rewrite(d, 1, hash=at(0, "zz" * 16)), [(1, 0, "is not 32 hex digits")]),
    "width -5": (lambda d: rewrite(d, 1, width=at(1, -5)), [(1, 1, "is not positive")]),
    "size a text": (lambda d: rewrite(d, 1, types={"size": __import__("pyarrow").string()},
                                      size=lambda v: [str(x) for x in v]),
                    [(1, None, "column 'size' is string, not what `clipseek embed` writes")]),
    "size 0": (lambda d: rewrite(d, 1, size=at(3, 0)), [(1, 3, "is not a positive whole number")]),
    "path outside the folder": (lambda d: _outside(d, 0, b"/etc/passwd"),
                                [(0, 0, "outside the job's source folder")]),
    "relative path": (lambda d: _outside(d, 2, b"../../etc/passwd"),
                      [(2, 0, "not an absolute, normalised local path")]),
    "bad skipped.json": (lambda d: (d / "shard-00000.skipped.json").write_text("{not json"),
                         [(0, "skip", "unreadable list of skipped files")]),
    "skipped.json entries": (lambda d: (d / "shard-00000.skipped.json").write_text(
        json.dumps([{"path": 5}, "x", {"path": "/p.png", "reason": ["r"]}])),
        [(0, "skip", "3 entries that are not a path and a reason left out")]),
}


def good_rows(folder) -> dict[int, list[bytes]]:
    return {i: table(folder, i).column("path_bytes").to_pylist() for i in range(3)}


def stored(db) -> dict[bytes, np.ndarray]:
    with sqlite3.connect(db) as c:
        return {os.fsencode(p) if isinstance(p, str) else p: np.frombuffer(v, np.float32)
                for p, v in c.execute("SELECT path, vector FROM files")}


@pytest.mark.parametrize("case", list(SHARD_CASES))
def test_a_hostile_shard_is_skipped_with_its_reason_and_the_rest_loads(case, job, tmp_path, capsys):
    change, refused = SHARD_CASES[case]
    folder = tmp_path / "out"
    shutil.copytree(job, folder)
    rows = good_rows(folder)
    change(folder)
    db = tmp_path / "g.db"
    rc = main(["index", "--from-parquet", str(folder), "--db", str(db)])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err, err
    skips = [line for line in err.splitlines() if line.startswith("skipping ")]
    for _shard, row, fragment in refused:
        assert any(fragment in line and (row is None or row == "skip" or f"row {row}:" in line
                                         or "second row" in line) for line in skips), (fragment, err)
    lost = {p for shard, row, _ in refused if row != "skip"
            for p in (rows[shard] if row is None else [rows[shard][row]])}
    have = stored(db)
    assert set(have) == {p for ps in rows.values() for p in ps} - lost
    assert all(np.isfinite(v).all() and len(v) == 32 for v in have.values())


@pytest.mark.parametrize("values, fragment", [
    ({"dim": DROP}, "no valid 'dim'"), ({"dim": "32"}, "no valid 'dim'"), ({"dim": 10 ** 30}, "no valid 'dim'"),
    ({"fingerprint": "not one"}, "not a clipseek model fingerprint"),
    ({"fingerprint": 5}, "not a clipseek model fingerprint"),
    ({"fingerprint": None}, "has shards but its manifest.json names no model")])
def test_a_bad_shard_manifest_is_one_line_exit_2(values, fragment, job, tmp_path, capsys):
    folder = tmp_path / "out"
    shutil.copytree(job, folder)
    _manifest(folder, **values)
    rc = main(["index", "--from-parquet", str(folder), "--db", str(tmp_path / "g.db")])
    err = one_line_error(capsys)
    assert rc == 2 and fragment in err, err
    assert not (tmp_path / "g.db").exists() or not stored(tmp_path / "g.db")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_manifest_that_is_not_a_json_object_is_one_line_exit_2(text, job, tmp_path, capsys):
    folder = tmp_path / "out"
    shutil.copytree(job, folder)
    (folder / "manifest.json").write_text(text)
    rc = main(["index", "--from-parquet", str(folder), "--db", str(tmp_path / "g.db")])
    err = one_line_error(capsys)
    assert rc == 2 and "not a `clipseek embed` manifest" in err, err


# ---- database rows whose vector cannot be used -------------------------------------------------------
BAD_BLOBS = {"p1.png": b"abc", "p2.png": b"", "p3.png": np.ones(16, np.float32).tobytes(),
             "p4.png": np.full(32, np.nan, np.float32).tobytes(), "p5.png": "text, not a blob"}


@pytest.fixture
def hostile_db(tmp_path, tiny_ckpt, capsys):
    """A gallery of 8 images indexed with the tiny model, then 5 rows given a 3-byte, an empty, a
    16-float (the model's dim is 32), a NaN and a TEXT vector."""
    photos = image_folder(tmp_path / "photos", 8, lambda i: (40 + i, 36))
    db = tmp_path / "g.db"
    assert main(["index", str(photos), "--db", str(db), "--model", tiny_ckpt]) == 0
    for name in ("g.db.faiss", "g.db.faiss.ids.npy", "g.db.faiss.json"):  # as a database from elsewhere
        (tmp_path / name).unlink(missing_ok=True)
    with sqlite3.connect(db) as c:
        for name, blob in BAD_BLOBS.items():
            c.execute("UPDATE files SET vector = ? WHERE path = ?", (blob, str(photos / name)))
    capsys.readouterr()
    return db, photos


def notes(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if "unusable stored vector" in line]


def test_search_and_dupes_leave_unusable_rows_out_with_one_line(hostile_db, capsys):
    db, photos = hostile_db
    rc = main(["search", "a red photo", "--db", str(db), "-k", "8", "-f", "json"])
    out, err = capsys.readouterr()
    assert rc == 0 and len(notes(err)) == 1 and "5 rows" in notes(err)[0], err
    found = {os.path.basename(r["path"]) for r in json.loads(out)["results"]}
    assert found == {"p0.png", "p6.png", "p7.png"}
    assert main(["search", "--image", str(photos / "p0.png"), "--db", str(db), "-f", "json"]) == 0
    assert main(["dupes", "--db", str(db), "--similar", "--threshold", "0.5", "-f", "json"]) == 0
    notes(capsys.readouterr().err)  # no traceback


def test_the_server_leaves_unusable_rows_out(hostile_db, tiny_ckpt):
    from fastapi.testclient import TestClient

    from clipseek.server import create_app

    db, _ = hostile_db
    with TestClient(create_app(str(db)), base_url="http://127.0.0.1") as c:
        r = c.get("/api/search", params={"q": "a photo", "k": 8})
        assert r.status_code == 200 and len(r.json()["results"]) == 3
        assert c.get("/api/dupes", params={"similar": "true"}).status_code == 200


def test_index_embeds_unusable_rows_again(hostile_db, capsys):
    db, photos = hostile_db
    assert main(["index", str(photos), "--db", str(db), "-f", "json"]) == 0
    out, err = capsys.readouterr()
    assert len(notes(err)) == 1 and "5 under the folders indexed now are embedded again" in notes(err)[0], err
    doc = json.loads(out)
    assert (doc["updated"], doc["added"], doc["total"]) == (5, 0, 8)
    with sqlite3.connect(db) as c:
        blobs = [v for (v,) in c.execute("SELECT vector FROM files")]
    assert len(blobs) == 8 and all(isinstance(b, bytes) and len(b) == 4 * 32 for b in blobs)
    assert all(np.isfinite(np.frombuffer(b, np.float32)).all() for b in blobs)
    assert main(["search", "a photo", "--db", str(db), "-k", "8", "-f", "json"]) == 0
    out, err = capsys.readouterr()
    assert not notes(err) and len(json.loads(out)["results"]) == 8


def test_a_damaged_dim_or_phash_is_no_traceback(hostile_db, capsys):
    db, _ = hostile_db
    with sqlite3.connect(db) as c:
        c.execute("UPDATE files SET phash = 'not hex'")
    assert main(["dupes", "--db", str(db), "-f", "json"]) == 0
    capsys.readouterr()
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value = 'abc' WHERE key = 'dim'")
    rc = main(["search", "a photo", "--db", str(db)])
    err = one_line_error(capsys)
    assert rc == 1 and "recorded vector dim 'abc'" in err, err


def test_a_non_finite_vector_is_never_stored(tmp_path):
    from clipseek.errors import ClipseekError
    from clipseek.gallery.store import Store

    with Store.open(str(tmp_path / "s.db")) as s:
        s.bind_model(__import__("conftest").FakeEncoder(dim=4).fingerprint, 4)
        for bad in (np.array([np.nan, 0, 0, 1], np.float32), np.ones(3, np.float32)):
            with pytest.raises(ClipseekError, match="refusing to store"), s.transaction():
                s.insert_files([("/a.png", 1, 1, "0" * 32, 1, 1, bad)])
        assert s.count() == 0


# ---- manifests: a spreadsheet's byte order mark, a field over csv's limit ---------------------------
def test_a_csv_or_jsonl_manifest_with_a_byte_order_mark_is_read(tmp_path):
    from clipseek.data.labelled import read_manifest
    from clipseek.embed.job import list_source

    image_folder(tmp_path / "imgs", 2)
    (tmp_path / "m.csv").write_bytes(b"\xef\xbb\xbfpath,label\r\nimgs/p0.png,cat\r\nimgs/p1.png,dog\r\n")
    (tmp_path / "m.jsonl").write_bytes(b'\xef\xbb\xbf{"path": "imgs/p0.png", "label": "cat"}\n'
                                       b'{"path": "imgs/p1.png", "label": "dog"}\n')
    for name in ("m.csv", "m.jsonl"):
        ds = read_manifest(tmp_path / name)
        assert ds.classes == ["cat", "dog"] and [os.path.basename(p) for p in ds.paths] == ["p0.png", "p1.png"]
    assert [os.path.basename(p) for p in list_source(str(tmp_path / "m.csv"))] == ["p0.png", "p1.png"]


def test_a_csv_field_over_the_csv_limit_is_one_line_exit_2(tmp_path, tiny_ckpt, capsys):
    image_folder(tmp_path / "imgs", 1)
    (tmp_path / "m.csv").write_text("path,label\nimgs/p0.png,cat\nimgs/p0.png," + "x" * 140_000 + "\n")
    rc = main(["eval", str(tmp_path / "m.csv"), "--model", tiny_ckpt, "--no-cache"])
    err = one_line_error(capsys)
    assert rc == 2 and f"{tmp_path / 'm.csv'}:3: unreadable CSV row" in err and "131072" in err, err
    rc = main(["embed", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"), "--model", tiny_ckpt])
    err = one_line_error(capsys)
    assert rc == 2 and "m.csv:3: unreadable CSV row" in err, err


# ---- paths longer than the system allows ------------------------------------------------------------
def deep_tree(root) -> tuple[str, str, str]:
    """Nested folders of 200-byte names (made relative to an open folder: no call sees a long path)
    past PATH_MAX (4096 bytes). Returns (a good image whose path is under it, an image whose full path
    is over it in a folder that can still be listed, an image in a folder whose own path is over it)."""
    import io

    buf = io.BytesIO()
    make_image(0).save(buf, "PNG")
    png = buf.getvalue()
    fd, path, out = os.open(root, os.O_RDONLY | os.O_DIRECTORY), str(root), {}
    try:
        while len(os.fsencode(path)) < 4300:
            name = "d" * 200
            os.mkdir(name, dir_fd=fd)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, path = sub, os.path.join(path, name)
            n = len(os.fsencode(path))
            for key, fname, fits in (("near", "near.png", n + 9 < 4096),
                                     ("long", "n" * 240 + ".png", n < 4096 < n + 241),
                                     ("deep", "deep.png", n > 4096)):
                if fits and key not in out:
                    f = os.open(fname, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                    os.write(f, png)
                    os.close(f)
                    out[key] = os.path.join(path, fname)
    finally:
        os.close(fd)
    assert set(out) == {"near", "long", "deep"}, out
    return out["near"], out["long"], os.path.dirname(out["deep"])


def test_a_path_over_path_max_is_listed_as_skipped_by_index_and_classify(tmp_path, tiny_ckpt, capsys):
    root = tmp_path / "photos"
    root.mkdir()
    make_image(1).save(root / "top.png")
    near, long_file, deep_dir = deep_tree(root)
    rc = main(["index", str(root), "--db", str(tmp_path / "g.db"), "--model", tiny_ckpt, "-f", "json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert rc == 0 and "Traceback" not in err and (doc["added"], doc["total"]) == (2, 2), err
    reasons = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert set(reasons) == {long_file, deep_dir}
    assert all("over the system's limit (PATH_MAX 4096)" in r for r in reasons.values()), reasons
    rc = main(["classify", str(root), "-l", "cat,dog", "--model", tiny_ckpt])
    out, err = capsys.readouterr()
    assert rc == 0 and "Traceback" not in err
    skipped = [line for line in err.splitlines() if line.startswith("skipping ")]
    assert len(skipped) == 2 and all("PATH_MAX" in line for line in skipped), err
    assert "near.png" in out and "top.png" in out
