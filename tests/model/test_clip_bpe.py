"""CLIP's BPE vocabulary shipped with clipseek: open_clip's token ids with no files and no network, and
an open_clip checkpoint that brings no tokenizer files loads offline."""

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from clipseek import load_model
from clipseek.model import clip_bpe

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "open_clip"
GOLDEN = json.loads((FIXTURES / "clip_bpe_tokens.json").read_text("utf-8"))  # open_clip's SimpleTokenizer
TEXTS = [r["text"] for r in GOLDEN["texts"]]
IDS = [r["ids"] for r in GOLDEN["texts"]]


def test_the_golden_set_covers_what_matters():
    assert any(len(ids) == 77 for ids in IDS) and any(len(t) > 300 for t in TEXTS)  # truncated
    assert any(not t.isascii() for t in TEXTS) and any("\u2019" in t for t in TEXTS)  # unicode, curly quotes
    assert "&amp;" in "".join(TEXTS) and "" in TEXTS


def test_shipped_vocabulary_gives_open_clips_token_ids():
    tok = clip_bpe.clip_tokenizer(77)
    assert (len(tok), tok.bos_token_id, tok.eos_token_id) == (49408, 49406, 49407)
    got = tok(TEXTS, truncation=True, max_length=77)["input_ids"]
    for text, ours, ref in zip(TEXTS, got, IDS):
        assert ours == ref, text


def test_tokenizer_json_as_an_onnx_export_writes_it_gives_the_same_ids():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(clip_bpe.backend_tokenizer().to_str())  # what `backend_tokenizer.save` writes
    tok.enable_truncation(77)
    assert [e.ids for e in tok.encode_batch(TEXTS)] == IDS


def _no_tokenizer_checkpoint(tmp_path) -> Path:
    """An open_clip checkpoint with CLIP's real vocabulary size and context length (random weights for
    the token and position tables) and only open_clip_config.json + weights, as many on the hub."""
    import torch
    from safetensors.torch import load_file, save_file

    d = tmp_path / "no-tokenizer"
    shutil.copytree(FIXTURES / "vit-quickgelu-40", d)
    for name in ("vocab.json", "merges.txt", "expected.json", "expected.npz"):
        (d / name).unlink()
    cfg = json.loads((d / "open_clip_config.json").read_text())
    cfg["model_cfg"]["text_cfg"].update(vocab_size=49408, context_length=77)
    (d / "open_clip_config.json").write_text(json.dumps(cfg))
    state = load_file(str(d / "open_clip_model.safetensors"))
    g = torch.Generator().manual_seed(0)
    width = state["token_embedding.weight"].shape[1]
    state["token_embedding.weight"] = torch.randn(49408, width, generator=g) * 0.02
    state["positional_embedding"] = torch.randn(77, width, generator=g) * 0.01
    save_file(state, str(d / "open_clip_model.safetensors"))
    return d


def test_checkpoint_without_tokenizer_files_loads_offline(tmp_path, monkeypatch):
    d = _no_tokenizer_checkpoint(tmp_path)

    def no_network(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    enc = load_model(str(d), device="cpu")
    assert enc.tokenizer(TEXTS, truncation=True, max_length=enc.max_text_len)["input_ids"] == IDS
    vecs = enc.encode_texts(TEXTS)
    assert vecs.shape == (len(TEXTS), enc.dim) and np.isfinite(vecs).all()
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert len({v.tobytes() for v in vecs}) == len(TEXTS)


def test_same_vectors_as_the_checkpoint_with_clips_vocabulary_files(tmp_path):
    """The vocabulary written as vocab.json + merges.txt (how hub checkpoints ship it, read by
    transformers' CLIPTokenizer) gives the same model, so the same vectors for ordinary text."""
    d = _no_tokenizer_checkpoint(tmp_path)
    shipped = load_model(str(d), device="cpu")
    vocab, merges = clip_bpe.vocab_and_merges()
    (d / "vocab.json").write_text(json.dumps(vocab), "utf-8")
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", "utf-8")
    with_files = load_model(str(d), device="cpu")
    plain = [t for t in TEXTS if "\u2019" not in t and "&amp;" not in t]  # what ftfy/html change
    assert np.allclose(shipped.encode_texts(plain), with_files.encode_texts(plain), atol=1e-6)


@pytest.mark.parametrize("n", [24, 77])
def test_truncation_keeps_the_end_token(n):
    ids = clip_bpe.clip_tokenizer(n)(["word " * 200], truncation=True, max_length=n)["input_ids"][0]
    assert len(ids) == n and ids[0] == 49406 and ids[-1] == 49407
