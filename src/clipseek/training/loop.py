"""Contrastive (CLIP InfoNCE) training and fine-tuning of a `transformers` CLIP model: the epochs.

Input: image-caption pairs (`clipseek.data.pairs`). Output: a standard checkpoint directory
(model.safetensors, config, tokenizer, processor) that `CLIPModel.from_pretrained`,
`CLIPProcessor.from_pretrained` and the zero-shot pipeline load unchanged. A checkpoint is written each
epoch with the optimizer state (`training.checkpoint`), so `resume=True` continues a stopped run.

Randomness: the batch order comes from a generator seeded with `cfg.seed`, patch dropout from its own
generator, and torch's global generators (the DataLoader's worker seeds, dropout layers) are seeded
inside a fork that gives the caller's states back; Python's and NumPy's global generators are not
touched. The same seed gives the same weights.
"""

from __future__ import annotations

import math
import pickle
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from clipseek.data.pairs import DEFAULT_TEMPLATES, Pairs
from clipseek.core.numbers import check_number
from clipseek.errors import ClipseekError, UsageError
from clipseek.training.batches import GroupedBatchSampler, batch_count, make_loader
from clipseek.training.checkpoint import (
    STATE_DIR,
    STATE_FILE,
    recover_run,
    restore_state,
    run_state,
    save_checkpoint,
    training_log,
)
from clipseek.training.loss import PositiveMatcher, contrastive_loss
from clipseek.training.optim import (
    adamw,
    freeze,
    lr_schedule,
    optimizer_step,
    param_groups,
    ramp,
    scaled_warmup,
)
from clipseek.training.patch_dropout import PatchDropout


@dataclass
class TrainConfig:
    epochs: int = 5
    lr: float = 5e-4
    batch_size: int = 128
    weight_decay: float = 0.1
    warmup_steps: int | None = None      # None: a tenth of the run's steps, 1 to 100
    grad_accum: int = 1
    freeze: str | None = None            # None, "vision" or "text"
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    group_frac: float = 0.0              # share of batches drawn from one group (hard negatives)
    group_frac_end: float | None = None  # if set, the share moves linearly to this by the last epoch
    positives: tuple[str, ...] = ()      # manifest fields that decide which in-batch pairs also match
    cache_mb: float = 2048               # keep decoded images in memory when they fit (float16)
    mask_patches: float = 0.0            # share of image patches dropped, every epoch but the last

    def __post_init__(self) -> None:
        """Every number finite and in range (UsageError naming the field), before anything is loaded."""
        for name, (lo, hi, lo_open, integer) in _RANGES.items():
            value = getattr(self, name)
            if value is not None:
                check_number(value, f"{name} (--{name.replace('_', '-')})", lo, hi, lo_open=lo_open,
                             integer=integer)


# field -> (lowest, highest, lowest excluded, whole number); the CLI's options check the same ranges
_RANGES = {"epochs": (1, None, False, True), "lr": (0, None, True, False), "batch_size": (2, None, False, True),
           "weight_decay": (0, None, False, False), "warmup_steps": (0, None, False, True),
           "grad_accum": (1, None, False, True), "seed": (0, 2 ** 63 - 1, False, True),
           "workers": (0, None, False, True), "group_frac": (0, 1, False, False),
           "group_frac_end": (0, 1, False, False), "cache_mb": (0, None, False, False),
           "mask_patches": (0, 0.9, False, False)}


class Diverged(ClipseekError):
    """The loss or the weights stopped being finite numbers: training stops, the last good checkpoint stays."""


@dataclass
class EpochStats:
    epoch: int
    loss: float
    images: int
    seconds: float
    skipped: int


def train(model_dir: str, pairs: Pairs, out_dir: str, cfg: TrainConfig, resume: bool = False,
          on_step: Callable[[dict], None] | None = None) -> list[EpochStats]:
    """Train `model_dir` (a checkpoint directory) on `pairs`; write checkpoints into `out_dir`. With
    `resume`, continue the run in `out_dir` (after recovering a save that a kill interrupted)."""
    import torch

    from clipseek.model.devices import resolve_device

    out = Path(out_dir)
    if resume:
        if not recover_run(out):
            raise UsageError(f"--resume: no checkpoint to resume from in {out} (no {STATE_DIR}/{STATE_FILE})")
        model_dir = str(out)
    matcher = _matcher(pairs, cfg.positives)
    device = resolve_device(cfg.device)
    with _private_torch_rng(cfg.seed, device):
        model, processor = _load(model_dir, device)
        freeze(model, cfg.freeze)
        gen = torch.Generator().manual_seed(cfg.seed)
        loader = make_loader(pairs, _preprocess_cfg(processor), cfg, gen)
        opt = adamw(param_groups(model, cfg.weight_decay), cfg.lr)
        total = total_steps(len(pairs.paths), cfg)
        sched = lr_schedule(opt, scaled_warmup(total) if cfg.warmup_steps is None else cfg.warmup_steps, total)
        start = restore_state(out, opt, sched, gen) if resume else 0
        run = _Run(model, processor, loader, opt, sched, matcher, cfg, device, on_step)
        history: list[EpochStats] = []
        dropout = PatchDropout(model, cfg.mask_patches) if cfg.mask_patches > 0 else None
        try:
            for epoch in range(start, cfg.epochs):
                _set_epoch(loader, dropout, cfg, epoch)
                try:
                    history.append(run.epoch(epoch))
                    _check_weights(model)
                except Diverged as e:
                    raise Diverged(_stopped(str(e), out, epoch, cfg)) from None
                save_checkpoint(out, model, processor, run_state(opt, sched, gen, epoch + 1),
                                training_log(out, cfg, history))
        finally:
            if dropout:  # an exception mid-epoch must not leave the hook on the caller's model
                dropout.remove()
    return history


def total_steps(n_pairs: int, cfg: TrainConfig) -> int:
    """The optimizer steps of a run: every pair every epoch, a step each `grad_accum` batches."""
    return max(1, batch_count(n_pairs, cfg.batch_size) // cfg.grad_accum) * cfg.epochs


def size_warning(n_pairs: int, cfg: TrainConfig) -> str | None:
    """One line when the run is too small for its settings (else None): a warm-up as long as the run,
    a batch larger than the set, or too few steps to move the weights much."""
    total, notes = total_steps(n_pairs, cfg), []
    if cfg.warmup_steps is not None and cfg.warmup_steps >= total:
        notes.append(f"--warmup {cfg.warmup_steps} is not shorter than the run, so the learning rate "
                     f"never reaches --lr (leave --warmup out to scale it to the run)")
    if n_pairs < cfg.batch_size:
        notes.append(f"--batch-size {cfg.batch_size} is larger than the {n_pairs} pairs (each batch is the whole set)")
    if total < 10:
        notes.append("a few steps change the model little: more --epochs or a smaller --batch-size")
    if not notes:
        return None
    return f"warning: a small run, {n_pairs} pairs in {total} optimizer steps: " + "; ".join(notes)


def _check_weights(model) -> None:
    """Diverged when a weight is NaN or infinite (checked before each save: never a broken checkpoint)."""
    import torch

    if not bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()):
        raise Diverged("the weights are no longer finite numbers")


def _stopped(why: str, out: Path, epoch: int, cfg: TrainConfig) -> str:
    kept = f"{out} keeps the checkpoint of epoch {epoch}" if epoch else "no checkpoint was written"
    return (f"training stopped in epoch {epoch + 1}: {why}; {kept}. Try a lower --lr (it was {cfg.lr:g}) "
            "or check the data")


@contextmanager
def _private_torch_rng(seed: int, device: str):
    """Seed torch's global CPU generator (and the training GPU's) for the block, then give the caller's
    states back, so a run is reproducible and leaves no trace on the caller's random streams."""
    import torch

    dev = torch.device(device)
    gpus = []
    if dev.type == "cuda":
        torch.cuda.init()
        gpus = [dev.index if dev.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=gpus, device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        for g in gpus:
            torch.cuda.default_generators[g].manual_seed(seed)
        yield


def _load(model_dir: str, device: str):
    from transformers import AutoProcessor, CLIPModel

    from clipseek.model.hf import quiet_transformers

    quiet_transformers()
    try:
        model = CLIPModel.from_pretrained(model_dir).to(device)
        processor = AutoProcessor.from_pretrained(model_dir)
    except (OSError, ValueError, pickle.UnpicklingError) as e:
        from clipseek.model.pickles import pickle_refusal

        raise ClipseekError(pickle_refusal(model_dir, e)
                            or f"cannot load {model_dir} for training: {str(e).splitlines()[0]}") from None
    return model, processor


def _preprocess_cfg(processor):
    from clipseek.core.preprocess import PreprocessCfg

    return PreprocessCfg.from_processor(processor.image_processor)


def _matcher(pairs: Pairs, positives: tuple[str, ...]) -> PositiveMatcher | None:
    if not positives:
        return None
    missing = set(positives) - set(pairs.attrs or {})
    if missing:
        raise UsageError(f"--positives: the training data has no field {', '.join(sorted(missing))}")
    return PositiveMatcher(pairs.captions, {k: pairs.attrs[k] for k in positives})


def _set_epoch(loader, dropout: PatchDropout | None, cfg: TrainConfig, epoch: int) -> None:
    """Per-epoch settings: the grouped share's ramp, and patch dropout (off in the last epoch, which sees
    whole images as inference does: FLIP's unmasked tuning), its draws started from (seed, epoch)."""
    if isinstance(loader.batch_sampler, GroupedBatchSampler) and cfg.group_frac_end is not None:
        loader.batch_sampler.frac = ramp(cfg.group_frac, cfg.group_frac_end, epoch, cfg.epochs)
    if dropout:
        dropout.share = cfg.mask_patches if epoch < cfg.epochs - 1 else 0.0
        dropout.reseed(int(np.random.SeedSequence([cfg.seed, epoch]).generate_state(1)[0]))


class _Run:
    """One training run's parts, and an epoch over them."""

    def __init__(self, model, processor, loader, opt, sched, matcher, cfg: TrainConfig, device: str, on_step):
        self.model, self.loader, self.opt, self.sched, self.matcher = model, loader, opt, sched, matcher
        self.tokenizer, self.cfg, self.device, self.on_step = processor.tokenizer, cfg, device, on_step
        self.max_len = int(model.config.text_config.max_position_embeddings)

    def epoch(self, epoch: int) -> EpochStats:
        self.model.train()
        t0, seen, skipped, losses = time.perf_counter(), 0, 0, []
        self.opt.zero_grad(set_to_none=True)
        try:
            for i, (pixels, captions, idx, bad) in enumerate(self.loader):
                skipped += len(bad)
                if pixels is None or len(captions) < 2:
                    continue
                losses.append(self.step(pixels, captions, idx, (i + 1) % self.cfg.grad_accum == 0))
                seen += len(captions)
                if self.on_step:
                    self.on_step({"epoch": epoch + 1, "loss": losses[-1], "images": len(captions),
                                  "img_per_s": seen / max(time.perf_counter() - t0, 1e-9),
                                  "lr": self.sched.get_last_lr()[0]})
        finally:
            self.model.eval()
        return EpochStats(epoch + 1, float(np.mean(losses)) if losses else float("nan"), seen,
                          time.perf_counter() - t0, skipped)

    def step(self, pixels, captions: list[str], idx: list[int], update: bool) -> float:
        """Forward and backward one batch; step the optimizer when `update` (every grad_accum batches)."""
        import torch

        tok = self.tokenizer(captions, padding=True, truncation=True, max_length=self.max_len,
                             return_tensors="pt")
        out = self.model(input_ids=tok["input_ids"].to(self.device),
                         attention_mask=tok["attention_mask"].to(self.device),
                         pixel_values=pixels.to(self.device))
        pos = torch.from_numpy(self.matcher.mask(idx)).to(self.device) if self.matcher else None
        loss = contrastive_loss(out.logits_per_image, pos)
        value = float(loss.detach())
        if not math.isfinite(value):  # before backward: the weights of this step stay as they were
            raise Diverged(f"the loss became {value}")
        (loss / self.cfg.grad_accum).backward()
        if update:
            optimizer_step(self.model, self.opt, self.sched)
        return value
