"""CLIP's BPE tokenizer from the vocabulary shipped with clipseek: no files, no network.

`bpe_simple_vocab_16e6.txt.gz` (beside this module) is OpenAI's CLIP BPE merges file, as published
with CLIP (https://github.com/openai/CLIP, MIT licence, Copyright (c) 2021 OpenAI) and shipped inside
the open_clip package (MIT); it is copied unchanged from open_clip_torch 3.3.0. It is what open_clip
tokenizes with when a checkpoint brings no tokenizer files, so open_clip-format checkpoints that ship
only `open_clip_config.json` and weights load offline with open_clip's token ids.

The vocabulary is built from it the way CLIP's `SimpleTokenizer` builds it: the 256 byte symbols of
the reversible byte -> unicode map (in that map's order), the same followed by the end-of-word mark
`</w>`, then one token per merge (the first 48,894 lines after the header), then start and end of
text (49406, 49407): 49,408 tokens. Text is cleaned as open_clip's "lower" clean does, in
`tokenizers` normalizers so the same `tokenizer.json` runs in an ONNX export: NFC, curly quotes made
straight and ligatures split (what ftfy's `fix_text` does to ordinary text), `&amp;`-style HTML
entities unescaped, runs of white space made one space, lower case. Not reproduced: ftfy's repair of
mis-decoded text (mojibake) and HTML entities other than the common ones listed in `_ENTITIES`.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

VOCAB_FILE = Path(__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
N_MERGES = 49152 - 256 - 2  # CLIP's SimpleTokenizer: merges = lines[1:49152-256-2+1]
BOS, EOS = "<|startoftext|>", "<|endoftext|>"  # open_clip names them <start_of_text>; same ids
PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_QUOTES = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
           "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"'}
_LIGATURES = {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
              "\ufb05": "st", "\ufb06": "st"}
# open_clip unescapes HTML twice: "&amp;amp;" -> "&"; the longer forms come first
_ENTITIES = {"&amp;amp;": "&", "&amp;": "&", "&quot;": '"', "&#39;": "'", "&#x27;": "'", "&apos;": "'",
             "&lt;": "<", "&gt;": ">", "&nbsp;": " "}


def byte_pairs() -> list[tuple[int, int]]:
    """GPT-2/CLIP's reversible byte -> printable code point map as (byte, code point), in the map's own
    order (printable bytes first: the order of the first 256 vocabulary entries)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    pairs = [(b, b) for b in bs]
    pairs += [(b, 256 + n) for n, b in enumerate(b for b in range(256) if b not in set(bs))]
    return pairs


def byte_symbols() -> list[str]:
    """The map's symbols in its own order (`byte_pairs`)."""
    return [chr(c) for _, c in byte_pairs()]


@lru_cache(maxsize=1)
def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(token -> id, merges) of CLIP's BPE, read from the shipped file."""
    lines = gzip.open(VOCAB_FILE).read().decode("utf-8").split("\n")[1:N_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges  # type: ignore[return-value]


def backend_tokenizer():
    """The `tokenizers.Tokenizer` (normalizer, pre-tokenizer, BPE, start/end tokens added)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    vocab, merges = vocab_and_merges()
    tok = Tokenizer(BPE(vocab=dict(vocab), merges=list(merges), continuing_subword_prefix="",
                        end_of_word_suffix="</w>", fuse_unk=False, unk_token=EOS))
    swaps = [normalizers.Replace(a, b) for a, b in {**_ENTITIES, **_QUOTES, **_LIGATURES}.items()]
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), *swaps, normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", pair=f"{BOS} $A {EOS} {BOS} $B {EOS}",
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])])
    tok.add_special_tokens([BOS, EOS])
    return tok


def clip_tokenizer(context_length: int = 77):
    """A `transformers` tokenizer over `backend_tokenizer()`, as transformers' CLIPTokenizer sets it up
    (padding with the end-of-text token, as openai/clip-vit-* do; open_clip pads with 0, which the
    text tower never attends to), truncating to `context_length` with the end token kept."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=backend_tokenizer(), bos_token=BOS, eos_token=EOS,
                                   pad_token=EOS, unk_token=EOS, model_max_length=context_length)
