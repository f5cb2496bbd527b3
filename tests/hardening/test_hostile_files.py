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
from conftest import image_folder, make_image

from clipseek.cli import main


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
