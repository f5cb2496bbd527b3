"""Tiny SigLIP checkpoints built offline: a word-level tokenizer (any script) and a small `SiglipModel`.

For the tests: a SigLIP-architecture model scored with a learned bias and a sigmoid, and a
tokenizer that keeps the words it is given as they are (no lowercasing, no ASCII folding), so that a
query in Cyrillic or Han characters is one known token. Nothing is downloaded.
"""

from __future__ import annotations

from typing import Iterable

SPECIALS = ("</s>", "<unk>")  # ids 0, 1; "</s>" also pads, as in SigLIP's own tokenizer


def make_word_tokenizer(words: Iterable[str], max_length: int = 64):
    """A fast tokenizer: whitespace and punctuation split words, each known word is one token, and
    `</s>` ends every text and pads it. Case and script are kept. Like SigLIP's original tokenizer it
    returns input ids only: SigLIP's text tower was trained on 64 tokens without an attention mask."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in sorted(set(words)):
        vocab.setdefault(w, len(vocab))
    for p in ".,!?'\"-":
        vocab.setdefault(p, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="</s>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=max_length,
                                   model_input_names=["input_ids"])


def tiny_siglip_config(vocab_size: int, *, image_size: int = 32, patch_size: int = 8, width: int = 32,
                       layers: int = 2, heads: int = 2, max_text_len: int = 64):
    from transformers import SiglipConfig

    common = dict(hidden_size=width, intermediate_size=width * 4, num_hidden_layers=layers,
                  num_attention_heads=heads)
    text = dict(common, vocab_size=vocab_size, max_position_embeddings=max_text_len,
                pad_token_id=0, eos_token_id=0, bos_token_id=0)
    vision = dict(common, image_size=image_size, patch_size=patch_size)
    return SiglipConfig(text_config=text, vision_config=vision)


def save_tiny_siglip(out_dir: str, words: Iterable[str], seed: int = 0, logit_scale: float = 10.0,
                     logit_bias: float = -2.0, **config_kwargs) -> str:
    """A randomly initialised SigLIP with a word vocabulary, saved as a standard checkpoint directory.

    `logit_scale`/`logit_bias`: the exp of the stored scale, and the bias (SigLIP starts at 10 and -10;
    -2 keeps random-weight probabilities away from 0 so the tests compare meaningful numbers)."""
    import math

    import torch
    from transformers import SiglipImageProcessor, SiglipModel

    from clipseek.model.hf import quiet_transformers

    quiet_transformers()
    tok = make_word_tokenizer(words, max_length=config_kwargs.get("max_text_len", 64))
    cfg = tiny_siglip_config(len(tok), **config_kwargs)
    torch.manual_seed(seed)
    model = SiglipModel(cfg).eval()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(logit_scale))
        model.logit_bias.fill_(logit_bias)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    size = cfg.vision_config.image_size
    SiglipImageProcessor(size={"height": size, "width": size}).save_pretrained(out_dir)
    return out_dir
