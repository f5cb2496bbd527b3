"""What trains and how: frozen towers, weight-decay groups, CLIP's AdamW, the warm-up + cosine learning
rate, one optimizer step, and a linear ramp for settings that move over the epochs."""

from __future__ import annotations

import math
from typing import Callable

from clipseek.errors import UsageError


def freeze(model, which: str | None) -> None:
    """Stop gradients to one tower: None (train both), "vision" or "text"."""
    if which is None:
        return
    if which not in ("vision", "text"):
        raise UsageError(f"--freeze must be 'vision' or 'text', not {which!r}")
    towers = ("vision_model", "visual_projection") if which == "vision" else ("text_model", "text_projection")
    for name, p in model.named_parameters():
        if name.startswith(towers):
            p.requires_grad_(False)


def param_groups(model, weight_decay: float) -> list[dict]:
    """The trainable parameters in two groups: matrices decay; biases, norms, embeddings and the
    temperature do not."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(groups, lr: float):
    """AdamW as in CLIP (betas 0.9/0.98, eps 1e-6); the fused kernel where torch has one (about 10%
    of a small model's step time on CPU), else the default."""
    import torch

    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """The learning-rate factor at a step: linear warm-up over `warmup` steps, then a cosine decay to 0
    at step `total`."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def scaled_warmup(total: int) -> int:
    """The default warm-up for a run of `total` optimizer steps: a tenth of it, at least 1, at most 100
    (a fixed 100 would leave a 3-step run at 3% of --lr)."""
    return max(1, min(100, round(0.1 * total)))


def lr_schedule(opt, warmup: int, total: int):
    """A torch scheduler that follows `warmup_cosine` (call its `step` after each optimizer step)."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup, total))


def optimizer_step(model, opt, sched) -> None:
    """Clip gradients to norm 1, step optimizer and schedule, clear gradients, and (as in CLIP) keep
    the temperature within [1, 100]."""
    import torch

    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))


def ramp(start: float, end: float, epoch: int, epochs: int) -> float:
    """Linear from `start` (first epoch) to `end` (last epoch)."""
    return start + (end - start) * epoch / max(1, epochs - 1)
