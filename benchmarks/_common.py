"""Shared helpers for the benchmarks: a full-size ViT-B/32 CLIP with random weights, saved as a
standard checkpoint directory, and wall-clock / memory probes. Benchmarks are scripts, not tests."""

from __future__ import annotations

import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

QUERY_WORDS = ("a photo of the cat dog on beach sunset over mountains red car parked in street "
               "people walking city at night bowl fruit table child playing with ball snowy "
               "forest trail old wooden boat lake close up flower bee").split()
QUERIES = ["a photo of a cat", "a dog on the beach", "sunset over the mountains", "a red car parked in the street",
           "people walking in a city at night", "a bowl of fruit on a table", "a child playing with a ball",
           "a snowy forest trail", "an old wooden boat on a lake", "a close up of a flower with a bee"]


def build_vit_b32(out_dir: str, seed: int = 0) -> str:
    """CLIPConfig defaults with patch size 32 (= ViT-B/32: 12x768 vision, 12x512 text, 512-d), random
    weights. The tokenizer knows the benchmark's words, so prompts have realistic token counts."""
    if os.path.exists(os.path.join(out_dir, "config.json")):
        return out_dir
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    from clipseek.model.scratch import make_processor, make_tokenizer

    tok = make_tokenizer(QUERY_WORDS, max_length=77)
    n = len(tok)
    cfg = CLIPConfig(text_config=dict(vocab_size=n, bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1),
                     vision_config=dict(patch_size=32))
    torch.manual_seed(seed)
    CLIPModel(cfg).save_pretrained(out_dir)
    CLIPProcessor(image_processor=make_processor(224), tokenizer=tok).save_pretrained(out_dir)
    return out_dir


def rss_mb() -> float:
    """Current resident memory of this process in MiB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds this process has used, all threads (a load-independent cost: on a shared machine
    wall time also counts other jobs)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


class Timer:
    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), cpu_s()
        return self

    def __exit__(self, *exc):
        self.s, self.cpu = time.perf_counter() - self.t0, cpu_s() - self.c0
