"""`clipseek train`: contrastive training and fine-tuning (training.loop), resumable."""

from __future__ import annotations

from typing import Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import SEED_MAX, batch_size_option, device_option, finite, model_option
from clipseek.cli.output import eprint, progress


@app.command("train")
def train_cmd(
    data: str = typer.Argument(..., help="JSONL manifest (image + caption) or labelled folder."),
    out: str = typer.Option(..., "--out", "-o", help="Checkpoint directory to write."),
    model: Optional[str] = model_option("Checkpoint to fine-tune."),
    scratch: Optional[str] = typer.Option(None, "--scratch", help="Train from scratch: tiny or small."),
    split: Optional[str] = typer.Option("train", "--split", help="Manifest split (or subfolder) to use."),
    epochs: int = typer.Option(5, "--epochs", min=1),
    lr: float = typer.Option(5e-4, "--lr", callback=finite(0, lo_open=True)),
    batch_size: int = batch_size_option(128, minimum=2),
    weight_decay: float = typer.Option(0.1, "--weight-decay", callback=finite(0)),
    warmup: Optional[int] = typer.Option(
        None, "--warmup", min=0,
        help="Warm-up steps before cosine decay [default: a tenth of the run's steps, 1 to 100]."),
    freeze: Optional[str] = typer.Option(None, "--freeze", help="Freeze a tower: vision or text."),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX),
    device: str = device_option(),
    workers: int = typer.Option(0, "--workers", min=0, help="DataLoader worker processes."),
    templates: Optional[str] = typer.Option(None, "--templates", help="Caption templates for folders."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint in --out."),
    group_by: Optional[str] = typer.Option(None, "--group-by",
                                           help="Manifest field for hard-negative batches (e.g. colour)."),
    group_frac: float = typer.Option(0.5, "--group-frac", callback=finite(0, 1),
                                     help="Share of batches drawn from one --group-by value."),
    group_frac_end: Optional[float] = typer.Option(
        None, "--group-frac-end", callback=finite(0, 1),
        help="Move the --group-frac share linearly to this value by the last epoch."),
    positives: Optional[str] = typer.Option(
        None, "--positives",
        help="Comma-separated manifest fields (a folder: label): in-batch pairs whose caption names "
             "only values the image has count as matches, not negatives."),
    mask_patches: float = typer.Option(
        0.0, "--mask-patches", callback=finite(0, 0.9),
        help="Drop this share of each image's patches while training (faster steps), every epoch but the last."),
    cache_mb: float = typer.Option(2048, "--cache-mb", callback=finite(0),
                                   help="Keep decoded images in memory (float16) when they fit in this many MB."),
) -> None:
    """Contrastive (InfoNCE) training; writes a standard transformers checkpoint each epoch."""
    from clipseek.core.prompts import resolve_templates
    from clipseek.data.pairs import DEFAULT_TEMPLATES, load_pairs
    from clipseek.training.checkpoint import check_start, start_checkpoint
    from clipseek.training.loop import TrainConfig, size_warning, train

    tmpl = tuple(resolve_templates(None, templates)) if templates else DEFAULT_TEMPLATES
    check_start(out, model=model, scratch=scratch, resume=resume)
    fields = tuple(f.strip() for f in positives.split(",") if f.strip()) if positives else ()
    pairs = load_pairs(data, split, tmpl, seed, group_by, fields)
    for path, reason in pairs.skipped:
        eprint(f"skipping {path}: {reason}")
    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                      warmup_steps=warmup, grad_accum=grad_accum, freeze=freeze, seed=seed, device=device,
                      workers=workers, templates=tmpl, group_frac=group_frac if group_by else 0.0,
                      group_frac_end=group_frac_end if group_by else None, positives=fields,
                      cache_mb=cache_mb, mask_patches=mask_patches)
    with start_checkpoint(out, pairs, model=model, scratch=scratch, resume=resume, templates=tmpl,
                          seed=seed) as start:
        eprint(f"training on {len(pairs.paths)} pairs ({len(pairs.skipped)} skipped), {epochs} epochs")
        if (warning := size_warning(len(pairs.paths), cfg)):
            eprint(warning)
        with progress(len(pairs.paths) * epochs, "training") as advance:
            def on_step(info: dict) -> None:
                advance(info["images"], f"loss {info['loss']:.3f} epoch {info['epoch']}", "img")
            history = train(start, pairs, out, cfg, resume=resume, on_step=on_step)
    for h in history:
        print(f"epoch {h.epoch}: loss {h.loss:.4f}, {h.images} images in {h.seconds:.0f}s "
              f"({h.images / max(h.seconds, 1e-9):.0f} img/s), {h.skipped} unreadable")
    print(f"checkpoint: {out}")
