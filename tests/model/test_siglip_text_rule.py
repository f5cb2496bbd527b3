"""SigLIP's text tower as it was trained: 64 tokens, padded, and no attention mask, even when the
checkpoint's tokenizer returns one (transformers 5's zero-shot pipeline passes that mask, so its
numbers differ from clipseek's; README, "SigLIP and SigLIP 2")."""

import shutil

import numpy as np
import torch

from clipseek import load_model
from tiny_siglip import make_word_tokenizer

TEXTS = ["cat", "a photo of a dog", "кошка", "猫"]


def _unit(t: torch.Tensor) -> np.ndarray:
    v = (t if hasattr(t, "shape") else t.pooler_output).float().numpy()
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_siglip_text_runs_unmasked_even_when_the_tokenizer_returns_a_mask(tiny_siglip_ckpt, tmp_path):
    from conftest import SIGLIP_WORDS

    d = tmp_path / "masked-tokenizer"
    shutil.copytree(tiny_siglip_ckpt, d)
    tok = make_word_tokenizer(SIGLIP_WORDS)
    tok.model_input_names = ["input_ids", "attention_mask"]  # as SigLIP tokenizers in transformers 5 do
    tok.save_pretrained(d)
    enc = load_model(str(d), device="cpu")
    batch = enc.tokenizer(TEXTS, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    assert "attention_mask" in batch and batch["input_ids"].shape == (len(TEXTS), 64)
    with torch.inference_mode():
        trained = _unit(enc.model.get_text_features(input_ids=batch["input_ids"]))
        masked = _unit(enc.model.get_text_features(**batch))  # what the pipeline runs
    ours = enc.encode_texts(TEXTS)
    assert np.abs(ours - trained).max() <= 1e-5
    assert np.abs(ours - masked).max() > 1e-3  # the rule matters: the mask changes the vectors
