"""open_clip-format checkpoints without open_clip: golden fixtures made by the real open_clip package
(scripts/make_open_clip_fixtures.py) must come out the same through clipseek, and anything clipseek
cannot load exactly is refused in one line before a model exists."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipseek import load_model
from clipseek.core.scores import probabilities, scoring
from clipseek.errors import ModelLoadError, UsageError
from clipseek.model.loader import load_preprocess_cfg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "open_clip"
NAMES = ["vit-quickgelu-40", "vit-gelu-48-squash"]


def expected(name):
    d = FIXTURES / name
    return json.loads((d / "expected.json").read_text("utf-8")), np.load(d / "expected.npz")


@pytest.fixture(scope="module", params=NAMES)
def case(request):
    d = FIXTURES / request.param
    meta, exp = expected(request.param)
    return d, load_model(str(d), device="cpu"), meta, exp


def test_fixtures_stay_small():
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < 2_000_000


def test_tokens_match_open_clip(case):
    d, enc, meta, exp = case
    ours = enc.tokenizer(meta["texts"], truncation=True, max_length=enc.max_text_len)["input_ids"]
    for got, ref in zip(ours, exp["tokens"]):  # open_clip pads with 0 after the end-of-text token
        assert got == ref[:len(got)].tolist() and not ref[len(got):].any()


def test_preprocessing_matches_open_clip(case):
    d, enc, meta, exp = case
    pixels = np.stack([enc.preprocess(Image.open(d / n).convert("RGB")) for n in meta["images"]])
    assert pixels.shape == exp["pixels"].shape
    assert np.abs(pixels - exp["pixels"]).max() <= 1e-4  # resize mode, interpolation, crop offsets
    assert load_preprocess_cfg(str(d)) == enc.preprocess_cfg  # without reading the weights


def test_embeddings_and_probabilities_match_open_clip(case):
    d, enc, meta, exp = case
    images = [Image.open(d / n).convert("RGB") for n in meta["images"]]
    img, txt = enc.encode_images(images), enc.encode_texts(meta["texts"])
    assert (img * exp["image_embeds"]).sum(1).min() >= 0.9999
    assert (txt * exp["text_embeds"]).sum(1).min() >= 0.9999
    assert enc.logit_scale == pytest.approx(meta["logit_scale"], rel=1e-6)
    assert enc.logit_bias == (None if meta["logit_bias"] is None else pytest.approx(meta["logit_bias"]))
    assert scoring(enc.logit_bias) == meta["scoring"]
    probs = probabilities(img, txt, enc.logit_scale, enc.logit_bias)
    assert np.abs(probs - exp["probs"]).max() <= 1e-4


def test_fingerprint_names_the_source(case, tmp_path):
    d, enc, meta, exp = case
    fp = enc.fingerprint
    assert fp.name == str(d) and fp.local and fp.preprocess == enc.preprocess_cfg.describe()
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    assert load_model(str(copy), device="cpu").fingerprint.same_weights(fp)  # same files elsewhere


def test_fixtures_are_different_checkpoints():
    a, b = (load_model(str(FIXTURES / n), device="cpu").fingerprint for n in NAMES)
    assert a.identity != b.identity and not a.same_weights(b)


def fake_hub_cache(root: Path, repo: str, src: Path, commit: str = "0123456789abcdef" * 2 + "01234567"):
    """The Hugging Face cache layout for `repo` at `commit`, holding the files of `src`."""
    base = root / ("models--" + repo.replace("/", "--"))
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in src.iterdir():
        if not f.name.startswith("expected") and f.suffix != ".png":
            shutil.copy(f, snap / f.name)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    return commit


def test_hf_hub_name_from_the_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    commit = fake_hub_cache(tmp_path, "someone/tiny-open-clip", FIXTURES / NAMES[0])
    enc = load_model("hf-hub:someone/tiny-open-clip", device="cpu")
    assert (enc.fingerprint.name, enc.fingerprint.identity) == ("hf-hub:someone/tiny-open-clip", commit)
    ref = load_model(str(FIXTURES / NAMES[0]), device="cpu")
    img = [Image.open(FIXTURES / NAMES[0] / "wide.png").convert("RGB")]
    assert np.allclose(enc.encode_images(img), ref.encode_images(img), atol=1e-6)
    # a plain hub id whose repo holds an open_clip checkpoint (and no config.json) loads as one too
    assert load_model("someone/tiny-open-clip", device="cpu").fingerprint.identity == commit


def test_hub_names_offline_and_malformed():
    with pytest.raises(ModelLoadError, match="not in the Hugging Face cache"):
        load_model("hf-hub:nobody/not-cached-anywhere")
    with pytest.raises(UsageError, match="hf-hub:ORG/NAME"):
        load_model("hf-hub:no-slash")


# ---------------------------------------------------------------- refused, in one line
def broken_copy(tmp_path, edit_config=None, edit_weights=None, name=NAMES[0]) -> str:
    d = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / name, d)
    if edit_config:
        cfg = json.loads((d / "open_clip_config.json").read_text())
        edit_config(cfg)
        (d / "open_clip_config.json").write_text(json.dumps(cfg))
    if edit_weights:
        from safetensors.torch import load_file, save_file

        w = d / "open_clip_model.safetensors"
        state = load_file(str(w))
        edit_weights(state)
        save_file(state, str(w))
    return str(d)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["model_cfg"]["vision_cfg"].update(timm_model_name="convnext_base"),
     "timm image tower 'convnext_base'"),
    (lambda c: c["model_cfg"]["vision_cfg"].update(timm_model_name="eva02_large_patch14_224"), "eva02"),
    (lambda c: c["model_cfg"].update(multimodal_cfg={"width": 512}), "CoCa"),
    (lambda c: c["model_cfg"]["text_cfg"].update(hf_model_name="xlm-roberta-large"), "Hugging Face text tower"),
    (lambda c: c["model_cfg"]["vision_cfg"].update(layers=[3, 4, 6, 3]), "ResNet image tower"),
    (lambda c: c["model_cfg"]["vision_cfg"].update(ls_init_value=1e-5), "ls_init_value"),
    (lambda c: c["model_cfg"]["text_cfg"].update(pool_type="last"), "pool_type"),
    (lambda c: c["model_cfg"]["vision_cfg"].update(image_size=[40, 48]), "non-square"),
    (lambda c: c["preprocess_cfg"].update(resize_mode="longest"), "resize_mode 'longest'"),
    (lambda c: c.pop("model_cfg"), "no model_cfg"),
])
def test_unsupported_configs_are_refused_by_name(tmp_path, edit, message):
    with pytest.raises(ModelLoadError, match=message) as err:
        load_model(broken_copy(tmp_path, edit_config=edit), device="cpu")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("visual.ln_post.weight"), "1 missing .*visual.ln_post.weight"),
    (lambda s: s.update({"visual.extra_head.weight": torch.zeros(3)}), "1 unexpected .*visual.extra_head"),
    (lambda s: s.update({"visual.proj": torch.zeros(48, 30)}), r"visual.proj has shape \(48, 30\)"),
])
def test_weights_that_do_not_match_are_refused(tmp_path, edit, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(broken_copy(tmp_path, edit_weights=edit), device="cpu")


def test_config_and_weights_of_different_sizes(tmp_path):
    deeper = lambda c: c["model_cfg"]["vision_cfg"].update(layers=3)  # noqa: E731
    with pytest.raises(ModelLoadError, match="missing .*resblocks.2"):
        load_model(broken_copy(tmp_path, edit_config=deeper), device="cpu")
    wider = lambda c: c["model_cfg"].update(embed_dim=32)  # noqa: E731
    with pytest.raises(ModelLoadError, match="does not match|do not match"):
        load_model(broken_copy(tmp_path / "w", edit_config=wider), device="cpu")


def test_no_weights_and_damaged_weights(tmp_path):
    d = Path(broken_copy(tmp_path))
    (d / "open_clip_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="cannot read open_clip_model.safetensors"):
        load_model(str(d), device="cpu")
    (d / "open_clip_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no open_clip weights"):
        load_model(str(d), device="cpu")


def test_tokenizer_from_tokenizer_json_alone(tmp_path):
    d = Path(broken_copy(tmp_path))
    ref = load_model(str(d), device="cpu")
    ref.tokenizer.save_pretrained(tmp_path / "tok")
    for name in ("vocab.json", "merges.txt"):
        (d / name).unlink()
    shutil.copy(tmp_path / "tok" / "tokenizer.json", d / "tokenizer.json")
    enc = load_model(str(d), device="cpu")
    texts = expected(NAMES[0])[0]["texts"]
    assert np.allclose(enc.encode_texts(texts), ref.encode_texts(texts), atol=1e-6)


def test_missing_tokenizer_files_fall_back_to_the_shipped_clip_bpe(tmp_path):
    d = Path(broken_copy(tmp_path))
    for name in ("vocab.json", "merges.txt"):
        (d / name).unlink()
    # the fixture's vocabulary is tiny: CLIP's 49,408 tokens do not fit its embedding table
    with pytest.raises(ModelLoadError, match="49408 tokens .* the open_clip config 564: they do not match"):
        load_model(str(d), device="cpu")
