"""Fingerprint: the value that says which weights made a vector, and the spelling already on disk."""

import json
import os

import numpy as np
import pytest

from clipseek.errors import ClipseekError
from clipseek.model.fingerprint import Fingerprint, FingerprintError
from helpers import FakeEncoder, make_image

# Spellings as clipseek has always written them into databases, manifests and Parquet shards.
LOCAL = "/home/me/ckpts/ft-1@v2 (copy)@0123456789abcdef backend=torch dtype=float32 pre=center-224-crop224x224"
HUB = ("openai/clip-vit-base-patch32@3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268 backend=torch dtype=float16 "
       "pre=pad-(224, 224)-nocrop")


def test_parse_reads_todays_spelling_and_str_writes_it_back():
    fp = Fingerprint.parse(LOCAL)
    assert fp == Fingerprint("/home/me/ckpts/ft-1@v2 (copy)", "0123456789abcdef", "torch", "float32",
                             "center-224-crop224x224")
    assert fp.local and fp.framing == "center"
    hub = Fingerprint.parse(HUB)
    assert (hub.name, hub.identity, hub.dtype, hub.preprocess) == \
        ("openai/clip-vit-base-patch32", "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268", "float16", "pad-(224, 224)-nocrop")
    assert not hub.local and hub.framing == "pad"
    for text in (LOCAL, HUB, "m@main backend=torch dtype=int8 pre=center-32-crop32x32"):
        assert str(Fingerprint.parse(text)) == text


@pytest.mark.parametrize("text", ["", "fp", "someone-else@1", "m@1 dtype=float32",
                                  "m@1 backend=torch dtype=float32", "@1 backend=torch dtype=float32 pre=x"])
def test_parse_refuses_other_strings(text):
    with pytest.raises(FingerprintError, match="not a clipseek model fingerprint"):
        Fingerprint.parse(text)
    assert issubclass(FingerprintError, ClipseekError)


def test_the_real_encoder_spells_it_as_before(encoder, tiny_ckpt):
    fp = encoder.fingerprint
    assert isinstance(fp, Fingerprint) and fp.local
    assert str(fp) == f"{tiny_ckpt}@{fp.identity} backend=torch dtype=float32 pre=center-32-crop32x32"
    assert Fingerprint.parse(str(fp)) == fp and fp.name == encoder.name and fp.dtype == encoder.dtype_name


def _fp(**kw) -> Fingerprint:
    parts = dict(name="/a/ckpt", identity="0123456789abcdef", backend="torch", dtype="float32",
                 preprocess="center-224-crop224x224")
    return Fingerprint(**{**parts, **kw})


def test_same_weights_rule():
    base = _fp()
    assert base.same_weights(_fp())
    assert base.same_weights(_fp(name="/b/copy-of-ckpt"))          # same local content, other path
    assert not base.same_weights(_fp(identity="fedcba9876543210"))  # other content
    assert not base.same_weights(_fp(dtype="float16"))              # precision is part of identity
    assert not base.same_weights(_fp(dtype="int8"))
    assert not base.same_weights(_fp(preprocess="pad-224-crop224x224"))
    assert base.same_weights(_fp(backend="onnx"))                   # fp32: any runtime, same vectors
    half = _fp(dtype="float16")
    assert not half.same_weights(_fp(dtype="float16", backend="onnx"))  # reduced precision: not portable
    hub = _fp(name="org/model", identity="main")
    assert hub.same_weights(_fp(name="org/model", identity="main"))
    assert not hub.same_weights(_fp(name="org/other", identity="main"))  # a revision names no content
    pairs = [(base, _fp(name="/b")), (base, half), (hub, _fp(backend="onnx", name="org/model", identity="main"))]
    assert all(a.same_weights(b) == b.same_weights(a) for a, b in pairs)


def test_a_gallery_with_todays_spelling_keeps_working(tmp_path):
    """A DB written before Fingerprint existed (the string put in by hand) is indexed and searched."""
    from clipseek.gallery.gallery import Gallery
    from clipseek.gallery.store import Store

    enc = FakeEncoder()
    old = "fake-clip@v1 backend=fake dtype=float32 pre=center-32-crop32x32"
    with Store.open(str(tmp_path / "g.db")) as s, s.transaction():
        s._set_meta_rows({"fingerprint": old, "dim": "32", "model": "fake-clip", "dtype": "float32",
                          "framing": "center"})
    d = tmp_path / "imgs"
    d.mkdir()
    make_image(1).save(d / "a.png")
    with Gallery(str(tmp_path / "g.db"), enc) as g:
        assert g.store.fingerprint == enc.fingerprint
        assert g.index([str(d)]).added == 1
        assert g.search(image=str(d / "a.png"), k=1)[0].score == pytest.approx(1.0, abs=1e-5)
        assert g.store.meta("fingerprint") == old and g.stats()["fingerprint"] == old


def test_damaged_fingerprint_in_a_db_is_one_clear_error(tmp_path):
    from clipseek.gallery.store import Store, StoreError

    with Store.open(str(tmp_path / "g.db")) as s:
        s.conn.execute("INSERT INTO meta(key, value) VALUES ('fingerprint', 'garbage')")
        with pytest.raises(StoreError, match=r"g\.db: not a clipseek model fingerprint: \[garbage\]"):
            s.fingerprint  # noqa: B018


def test_shard_folders_with_todays_spelling_keep_working(tmp_path):
    pytest.importorskip("pyarrow")
    from clipseek.embed import shards

    enc = FakeEncoder()
    old = "fake-clip@v1 backend=fake dtype=float32 pre=center-32-crop32x32"
    manifest = {"format": 1, "fingerprint": old, "dim": 32}
    shards.check_model(manifest, enc.fingerprint, "out")  # the same model: accepted
    with pytest.raises(ClipseekError, match="holds vectors of model"):
        shards.check_model(manifest, FakeEncoder(name="other").fingerprint, "out")
    vec = enc.encode_texts(["x"])
    path = shards.write_shard(str(tmp_path), shards.Shard(0, enc.fingerprint, [("/a.png", "0" * 32, 1, 2, 3, 4)], vec))
    import pyarrow.parquet as pq

    assert pq.read_schema(path).metadata[b"clipseek.fingerprint"].decode() == old
    assert pq.read_table(path).column("fingerprint").to_pylist() == [old]
    from clipseek.embed.shard_load import read_shard

    rows, vectors, fp = read_shard(path)
    assert fp == enc.fingerprint and np.array_equal(vectors, vec)
    shards.bind_model(str(tmp_path), {"fingerprint": None}, enc.fingerprint, 32)
    written = json.loads(open(os.path.join(tmp_path, shards.MANIFEST)).read())
    assert (written["fingerprint"], written["model"], written["dtype"], written["framing"]) == \
        (old, "fake-clip", "float32", "center")
