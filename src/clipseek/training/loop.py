"""Contrastive (CLIP InfoNCE) training and fine-tuning of a `transformers` CLIP model.

Input: image-caption pairs from a JSONL manifest, or a labelled folder (captions from templates).
Output: a standard checkpoint directory (model.safetensors, config, tokenizer, processor) that
`CLIPModel.from_pretrained`, `CLIPProcessor.from_pretrained` and the zero-shot pipeline load unchanged.
A checkpoint is written each epoch with the optimizer state, so `resume=True` continues a stopped run.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from clipseek.core.images import ImageError, open_image, walk_images
from clipseek.errors import ClipseekError, UsageError

STATE_DIR = "training_state"


@dataclass
class TrainConfig:
    epochs: int = 5
    lr: float = 5e-4
    batch_size: int = 128
    weight_decay: float = 0.1
    warmup_steps: int = 100
    grad_accum: int = 1
    freeze: str | None = None            # None, "vision" or "text"
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    templates: tuple[str, ...] = ("a photo of a {}.",)
    group_frac: float = 0.0              # share of batches drawn from one group (hard negatives)
    group_frac_end: float | None = None  # if set, the share moves linearly to this by the last epoch
    positives: tuple[str, ...] = ()      # manifest fields that decide which in-batch pairs also match
    cache_mb: float = 2048               # keep decoded images in memory when they fit (float16)
    mask_patches: float = 0.0            # share of image patches dropped, every epoch but the last


@dataclass
class Pairs:
    """Image paths with one caption each; `skipped` counts manifest lines whose image is missing."""

    paths: list[str]
    captions: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    groups: list[str] | None = None   # per pair, a manifest field's value (for hard-negative batches)
    attrs: dict[str, list[str]] | None = None  # field -> per-pair value (for --positives)


def read_caption_manifest(path: str | os.PathLike, split: str | None = None,
                          group_by: str | None = None, positives: tuple[str, ...] = ()) -> Pairs:
    """JSONL lines with an image path (`image`/`path`/`file`) and a `caption`/`text` (or `label`).
    `group_by` and `positives` name fields every line must have (see GroupedBatchSampler and
    PositiveMatcher)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"manifest not found: {path}")
    root = path.parent
    pairs = Pairs([], [], groups=[] if group_by else None, attrs={k: [] for k in positives} or None)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                raise UsageError(f"{path}:{n}: malformed manifest line ({e})") from None
            if split and row.get("split", split) != split:
                continue
            img = row.get("image") or row.get("path") or row.get("file")
            text = row.get("caption") or row.get("text")
            if text is None and row.get("label") is not None:
                text = f"a photo of a {row['label']}."
            if not img or not text:
                raise UsageError(f"{path}:{n}: needs an image path ('image') and a 'caption'")
            full = str(root / img)
            if not os.path.isfile(full):
                pairs.skipped.append((full, "missing image file"))
                continue
            if group_by:
                if group_by not in row:
                    raise UsageError(f"{path}:{n}: no field {group_by!r} (--group-by)")
                pairs.groups.append(str(row[group_by]))
            for k in positives:
                if k not in row:
                    raise UsageError(f"{path}:{n}: no field {k!r} (--positives)")
                pairs.attrs[k].append(str(row[k]))
            pairs.paths.append(full)
            pairs.captions.append(str(text))
    if not pairs.paths:
        raise UsageError(f"{path}: no usable image-caption pairs" + (f" in split {split!r}" if split else ""))
    return pairs


def read_labelled_folder(root: str | os.PathLike, templates=("a photo of a {}.",), seed: int = 0) -> Pairs:
    """Folder per class; each image gets a caption from a (seeded) random template of its class."""
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UsageError(f"{root}: no class folders")
    rng = random.Random(seed)
    pairs = Pairs([], [], attrs={"label": []})
    for c in classes:
        for p in walk_images(root / c):
            pairs.paths.append(p)
            pairs.captions.append(rng.choice(list(templates)).format(c))
            pairs.attrs["label"].append(c)
    if not pairs.paths:
        raise UsageError(f"{root}: no images in the class folders")
    return pairs


def load_pairs(data: str, split: str | None = None, templates=("a photo of a {}.",), seed: int = 0,
               group_by: str | None = None, positives: tuple[str, ...] = ()) -> Pairs:
    """A manifest or a labelled folder. A folder's pairs carry their class as the field `label`."""
    p = Path(data)
    if p.is_dir():
        if (p / "manifest.jsonl").is_file():
            return read_caption_manifest(p / "manifest.jsonl", split, group_by, positives)
        pairs = read_labelled_folder(p / split if split and (p / split).is_dir() else p, templates, seed)
        if set(positives) - {"label"}:
            raise UsageError(f"--positives: a labelled folder has only the field 'label', not "
                             f"{', '.join(sorted(set(positives) - {'label'}))}")
        return pairs
    if p.suffix.lower() in (".jsonl", ".json"):
        return read_caption_manifest(p, split, group_by, positives)
    raise UsageError(f"training data must be a JSONL manifest or a folder, not {data!r}")


class _PairDataset:
    """Decodes and preprocesses one pair; a bad image yields a ("skip", path, reason) marker (dropped
    from its batch and counted). When the whole preprocessed set fits in `cache_mb`, each image is
    decoded once and kept in memory, as float16, for the later epochs (80k images at 64 px: 1.9 GB)."""

    def __init__(self, pairs: Pairs, preprocess_cfg, cache_mb: float):
        self.pairs, self.cfg = pairs, preprocess_cfg
        per_image_mb = 3 * preprocess_cfg.input_size ** 2 * 2 / 2**20
        self.cache: dict[int, np.ndarray] | None = {} if len(pairs.paths) * per_image_mb <= cache_mb else None

    def __len__(self) -> int:
        return len(self.pairs.paths)

    def __getitem__(self, i: int):
        from clipseek.core.preprocess import preprocess

        if self.cache is not None and i in self.cache:
            return (self.cache[i].astype(np.float32), self.pairs.captions[i], i)
        try:
            img = open_image(self.pairs.paths[i], draft_size=self.cfg.input_size)
        except ImageError as e:
            return ("skip", e.path, e.reason)
        pixels = preprocess(img, self.cfg)
        if self.cache is not None:  # every epoch sees the same (float16-rounded) pixels
            self.cache[i] = pixels.astype(np.float16)
            pixels = self.cache[i].astype(np.float32)
        return (pixels, self.pairs.captions[i], i)


def _collate(items):
    import torch

    good = [it for it in items if not isinstance(it[0], str)]
    bad = [(it[1], it[2]) for it in items if isinstance(it[0], str)]
    pixels = torch.from_numpy(np.stack([g[0] for g in good])) if good else None
    return pixels, [g[1] for g in good], [g[2] for g in good], bad


class PositiveMatcher:
    """Which images in a batch match which captions, beyond each image's own caption.

    Caption j "names" a field when the field's value appears in it as a whole word (case-insensitive);
    image i matches caption j when it has caption j's value for every field caption j names. So with
    fields (colour, shape), "a red star" matches every red star in the batch, "a star" every star and
    "a photo" every image. Without this, InfoNCE treats those as negatives and pushes apart images and
    captions that agree, which is most of a batch when it is drawn from one colour.
    """

    def __init__(self, captions: list[str], attrs: dict[str, list[str]]):
        import re

        self.codes, self.named = [], []
        for values in attrs.values():
            index = {v: k for k, v in enumerate(sorted(set(values)))}
            self.codes.append(np.array([index[v] for v in values]))
            self.named.append(np.array([
                bool(v.strip()) and re.search(r"(?<!\w)" + re.escape(v.lower()) + r"(?!\w)", c.lower()) is not None
                for v, c in zip(values, captions)]))

    def mask(self, idx: list[int]) -> np.ndarray:
        """(B, B) bool: [i, j] is True when image idx[i] matches caption idx[j] (always on the diagonal)."""
        idx = np.asarray(idx)
        m = np.ones((len(idx), len(idx)), dtype=bool)
        for codes, named in zip(self.codes, self.named):
            c = codes[idx]
            m &= (c[:, None] == c[None, :]) | ~named[idx][None, :]
        return m


def contrastive_loss(logits_per_image, positives=None):
    """CLIP's symmetric InfoNCE. With a (B, B) `positives` mask the target of each image (caption) is
    spread evenly over the captions (images) it matches, instead of only its own pair."""
    import torch
    import torch.nn.functional as F

    if positives is None:
        target = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
        return (F.cross_entropy(logits_per_image, target) + F.cross_entropy(logits_per_image.t(), target)) / 2
    t = positives.to(logits_per_image.dtype)

    def soft_ce(logits, t):
        return -(t / t.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    return (soft_ce(logits_per_image, t) + soft_ce(logits_per_image.t(), t.t())) / 2


class GroupedBatchSampler:
    """Batches where a share `frac` are drawn from a single group (e.g. one colour), the rest at random.

    Inside a one-group batch the shared attribute cannot tell captions apart, so the contrastive loss
    must use the others: hard negatives that keep a model from settling on the easiest attribute.
    """

    def __init__(self, groups: list[str], batch_size: int, frac: float, generator):
        self.groups, self.batch_size, self.frac, self.gen = groups, batch_size, frac, generator

    def __len__(self) -> int:
        return len(self.groups) // self.batch_size

    def __iter__(self):
        import torch

        n, bs = len(self.groups), self.batch_size
        order = torch.randperm(n, generator=self.gen).tolist()
        cut = int(n * self.frac)
        buckets: dict[str, list[int]] = {}
        for i in order[:cut]:
            buckets.setdefault(self.groups[i], []).append(i)
        batches, rest = [], order[cut:]
        for members in buckets.values():
            full = len(members) // bs * bs
            batches += [members[j:j + bs] for j in range(0, full, bs)]
            rest += members[full:]
        batches += [rest[j:j + bs] for j in range(0, len(rest) - bs + 1, bs)]
        for k in torch.randperm(len(batches), generator=self.gen).tolist():
            yield batches[k]


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class PatchDropout:
    """Drops a random share of each image's patch tokens while the vision tower trains (FLIP, Li et al.
    2023): the encoder then runs on fewer tokens, so a step costs less, and the model sees more images
    in the same time. The class token always stays; positions were already added, so the kept patches
    keep theirs. A model in eval mode sees every patch, so the saved checkpoint is a plain CLIP."""

    def __init__(self, model, share: float):
        self.share = share
        self.handle = model.vision_model.embeddings.register_forward_hook(self._hook)

    def _hook(self, module, inputs, out):
        import torch
        import torch.nn.functional as F

        if not module.training or self.share <= 0:
            return out
        b, t, d = out.shape
        keep = max(1, round((t - 1) * (1 - self.share)))
        patches = torch.rand(b, t - 1, device=out.device).argsort(dim=1)[:, :keep] + 1
        idx = F.pad(patches, (1, 0))  # token 0, the class token, first
        return out.gather(1, idx.unsqueeze(-1).expand(-1, -1, d))

    def remove(self) -> None:
        self.handle.remove()


def _freeze(model, which: str | None) -> None:
    if which is None:
        return
    if which not in ("vision", "text"):
        raise UsageError(f"--freeze must be 'vision' or 'text', not {which!r}")
    towers = ("vision_model", "visual_projection") if which == "vision" else ("text_model", "text_projection")
    for name, p in model.named_parameters():
        if name.startswith(towers):
            p.requires_grad_(False)


def _adamw(groups, lr: float):
    """AdamW as in CLIP (betas 0.9/0.98, eps 1e-6); the fused kernel where torch has one (about 10%
    of a small model's step time on CPU), else the default."""
    import torch

    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


@dataclass
class EpochStats:
    epoch: int
    loss: float
    images: int
    seconds: float
    skipped: int


def train(model_dir: str, pairs: Pairs, out_dir: str, cfg: TrainConfig, resume: bool = False,
          on_step: Callable[[dict], None] | None = None) -> list[EpochStats]:
    """Train `model_dir` (a checkpoint directory) on `pairs`; write checkpoints into `out_dir`."""
    import torch
    from transformers import AutoProcessor, CLIPModel

    from clipseek.core.preprocess import PreprocessCfg
    from clipseek.model.hf import quiet_transformers
    from clipseek.model.loader import resolve_device

    quiet_transformers()
    out = Path(out_dir)
    state_path = out / STATE_DIR / "state.pt"
    if resume:
        if not state_path.is_file():
            raise UsageError(f"--resume: no checkpoint to resume from in {out} (no {STATE_DIR}/state.pt)")
        model_dir = str(out)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    try:
        model = CLIPModel.from_pretrained(model_dir).to(device)
        processor = AutoProcessor.from_pretrained(model_dir)
    except (OSError, ValueError) as e:
        raise ClipseekError(f"cannot load {model_dir} for training: {str(e).splitlines()[0]}") from None
    _freeze(model, cfg.freeze)
    tokenizer = processor.tokenizer
    pre_cfg = PreprocessCfg.from_processor(processor.image_processor)
    max_len = int(model.config.text_config.max_position_embeddings)

    gen = torch.Generator().manual_seed(cfg.seed)
    common = dict(num_workers=cfg.workers, collate_fn=_collate, persistent_workers=cfg.workers > 0)
    dataset = _PairDataset(pairs, pre_cfg, cfg.cache_mb)
    if cfg.group_frac > 0 and pairs.groups:
        sampler = GroupedBatchSampler(pairs.groups, cfg.batch_size, cfg.group_frac, gen)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, **common)
    else:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=cfg.batch_size, shuffle=True, generator=gen,
            drop_last=len(pairs.paths) > cfg.batch_size, **common)
    steps_per_epoch = max(1, len(loader) // cfg.grad_accum)
    total = steps_per_epoch * cfg.epochs
    opt = _adamw(_param_groups(model, cfg.weight_decay), cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps, total))
    matcher = None
    if cfg.positives:
        missing = set(cfg.positives) - set(pairs.attrs or {})
        if missing:
            raise UsageError(f"--positives: the training data has no field {', '.join(sorted(missing))}")
        matcher = PositiveMatcher(pairs.captions, {k: pairs.attrs[k] for k in cfg.positives})
    start_epoch = 0
    if resume:
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["loader_rng"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = state["epoch"]
    history: list[EpochStats] = []
    dropout = PatchDropout(model, cfg.mask_patches) if cfg.mask_patches > 0 else None
    for epoch in range(start_epoch, cfg.epochs):
        if isinstance(loader.batch_sampler, GroupedBatchSampler) and cfg.group_frac_end is not None:
            loader.batch_sampler.frac = ramp(cfg.group_frac, cfg.group_frac_end, epoch, cfg.epochs)
        if dropout:  # the last epoch sees whole images, as at inference (FLIP's unmasked tuning)
            dropout.share = cfg.mask_patches if epoch < cfg.epochs - 1 else 0.0
        history.append(_run_epoch(model, loader, tokenizer, max_len, opt, sched, cfg, device, epoch, on_step,
                                  matcher))
        _save(model, processor, out, opt, sched, gen, epoch + 1, cfg, history)
    if dropout:
        dropout.remove()
    return history


def ramp(start: float, end: float, epoch: int, epochs: int) -> float:
    """Linear from `start` (first epoch) to `end` (last epoch)."""
    return start + (end - start) * epoch / max(1, epochs - 1)


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


def _run_epoch(model, loader, tokenizer, max_len, opt, sched, cfg, device, epoch, on_step,
               matcher: PositiveMatcher | None = None) -> EpochStats:
    import torch

    model.train()
    t0, seen, skipped, losses = time.perf_counter(), 0, 0, []
    opt.zero_grad(set_to_none=True)
    for i, (pixels, captions, idx, bad) in enumerate(loader):
        skipped += len(bad)
        if pixels is None or len(captions) < 2:
            continue
        tok = tokenizer(captions, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        out = model(input_ids=tok["input_ids"].to(device), attention_mask=tok["attention_mask"].to(device),
                    pixel_values=pixels.to(device))
        pos = torch.from_numpy(matcher.mask(idx)).to(device) if matcher else None
        loss = contrastive_loss(out.logits_per_image, pos)
        (loss / cfg.grad_accum).backward()
        if (i + 1) % cfg.grad_accum == 0:
            optimizer_step(model, opt, sched)
        seen += len(captions)
        losses.append(float(loss.detach()))
        if on_step:
            on_step({"epoch": epoch + 1, "loss": losses[-1], "images": len(captions),
                     "img_per_s": seen / max(time.perf_counter() - t0, 1e-9), "lr": sched.get_last_lr()[0]})
    model.eval()
    return EpochStats(epoch + 1, float(np.mean(losses)) if losses else float("nan"), seen,
                      time.perf_counter() - t0, skipped)


def _save(model, processor, out: Path, opt, sched, gen, epoch: int, cfg: TrainConfig, history) -> None:
    """Write the checkpoint to a temp dir, then swap it in, so a crash never leaves half a checkpoint."""
    import torch

    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / STATE_DIR).mkdir()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                "loader_rng": gen.get_state(), "torch_rng": torch.get_rng_state()}, tmp / STATE_DIR / "state.pt")
    log = {"config": asdict(cfg), "epochs": [asdict(h) for h in history]}
    prev = out / "training_log.json"
    if prev.is_file():
        old = json.loads(prev.read_text())
        log["epochs"] = [e for e in old.get("epochs", []) if e["epoch"] < history[0].epoch] + log["epochs"]
    (tmp / "training_log.json").write_text(json.dumps(log, indent=1))
    old = out.parent / f".{out.name}.old"
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old)
