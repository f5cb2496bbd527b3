"""A training run on disk, and where a run starts.

The run folder: a standard checkpoint folder (weights, config, tokenizer, processor) plus
`training_state/` (optimizer, schedule, epoch, random states: safetensors + JSON, never a pickle; see
`training.state`) and `training_log.json`.

Each save builds the whole folder under a temp name and swaps it in with `clipseek._io.atomic_dir`, so
at every moment the run folder, or (between the swap's two renames) its `.NAME.old-*` sibling, holds a
complete checkpoint; `recover_run` puts that one back, and resuming calls it first.

Starting: `check_start` refuses a run that cannot start (before any data is read), `start_checkpoint`
gives the checkpoint the first epoch loads (a given model, a new from-scratch model of a preset size,
or the run folder itself when resuming).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from clipseek._io import atomic_dir, recover_dir
from clipseek.data.pairs import DEFAULT_TEMPLATES, Pairs
from clipseek.errors import UsageError
from clipseek.training.state import RESTART, STRUCTURE_FILE, BadState, has_state, load_state, save_state

STATE_DIR = "training_state"
STATE_FILE = STRUCTURE_FILE
LOG_FILE = "training_log.json"


def state_path(out: str | os.PathLike) -> Path:
    return Path(out) / STATE_DIR / STATE_FILE


def recover_run(out: str | os.PathLike) -> bool:
    """After a kill in the middle of a save, put the last complete checkpoint back at `out` (also one left
    as `.NAME.old` by clipseek versions before atomic_dir). True when `out` then holds a resumable run."""
    out = Path(out)
    legacy = out.parent / f".{out.name}.old"
    if not out.exists() and legacy.is_dir():
        os.replace(legacy, out)
    recover_dir(out)
    return has_state(out / STATE_DIR)


def _clear_leftovers(out: Path) -> None:
    """Temp and set-aside folders of saves that were killed (only called while `out` is complete)."""
    name = glob.escape(f".{out.name}")
    for pattern in (f"{name}.tmp", f"{name}.old", f"{name}.tmp-*-*", f"{name}.old-*-*"):
        for p in out.parent.glob(pattern):
            shutil.rmtree(p, ignore_errors=True)


def run_state(opt, sched, loader_gen, epoch: int) -> dict:
    """What a resumed run needs besides the weights: optimizer and schedule, the epochs done, and the
    random states (the batch order's generator and torch's CPU generator)."""
    import torch

    return {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
            "loader_rng": loader_gen.get_state(), "torch_rng": torch.get_rng_state()}


def restore_state(out: str | os.PathLike, opt, sched, loader_gen) -> int:
    """Load a run's state into optimizer, schedule and generators; returns the epochs already done.
    Sets torch's global CPU generator: call it where that generator is private to the run. Nothing in
    the folder can run code (`training.state`); a state that does not fit the run is one line (BadState)."""
    import torch

    state = load_state(Path(out) / STATE_DIR)
    try:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        loader_gen.set_state(state["loader_rng"])
        torch.set_rng_state(state["torch_rng"])
        return int(state["epoch"])
    except Exception as e:  # another model's optimizer, a damaged generator state, a missing key
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BadState(f"the training state in {out} does not fit this run ({why}); {RESTART}") from None


def training_log(out: str | os.PathLike, cfg, history: list) -> dict:
    """The log to write: the config, and the epochs of this call after the earlier ones (of a resumed
    run) that the folder's log already has."""
    log = {"config": asdict(cfg), "epochs": [asdict(h) for h in history]}
    prev = Path(out) / LOG_FILE
    if history and prev.is_file():
        old = json.loads(prev.read_text(encoding="utf-8"))
        log["epochs"] = [e for e in old.get("epochs", []) if e["epoch"] < history[0].epoch] + log["epochs"]
    return log


def save_checkpoint(out: str | os.PathLike, model, processor, state: dict, log: dict) -> None:
    """Write the run folder as one swap: a reader, or a kill, never sees half a checkpoint."""
    out = Path(out)
    recover_run(out)
    _clear_leftovers(out)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / STATE_DIR).mkdir()
        save_state(tmp / STATE_DIR, state)
        (tmp / LOG_FILE).write_text(json.dumps(log, indent=1), encoding="utf-8")


def check_start(out: str | os.PathLike, model: str | None = None, scratch: str | None = None,
                resume: bool = False) -> None:
    """Refuse a run that cannot start: neither or both of a model and a scratch size (unless resuming),
    an unknown size, nothing to resume in `out`, or a new run over one `out` already holds. A save that
    was killed half-way is recovered first, so its run counts as held."""
    if not resume and (model is None) == (scratch is None):
        raise UsageError("give either --model CHECKPOINT (fine-tune) or --scratch tiny|small")
    if scratch:
        _check_size(scratch)
    held = recover_run(out)
    if resume and not held:
        raise UsageError(f"--resume: no checkpoint to resume from in {out} (no {STATE_DIR}/{STATE_FILE})")
    if not resume and (Path(out) / STATE_DIR).exists():
        raise UsageError(f"{out} already holds a training run; use --resume to continue it or another --out")


def _check_size(size: str) -> None:
    from clipseek.model.scratch import SIZES

    if size not in SIZES:
        raise UsageError(f"--scratch must be one of {', '.join(SIZES)}, not {size!r}")


def scratch_checkpoint(dest: str, size: str, captions: list[str], templates=DEFAULT_TEMPLATES,
                       seed: int = 0) -> str:
    """Save a new, randomly initialised CLIP of preset `size` (model.scratch.SIZES) into `dest`, with a
    vocabulary of the words in `captions` and `templates`. Torch's global random state is left as it was."""
    import torch

    from clipseek.core.prompts import words_of
    from clipseek.model.scratch import SIZES, save_new_checkpoint

    _check_size(size)
    with torch.random.fork_rng(devices=[]):
        return save_new_checkpoint(dest, words_of(list(captions) + list(templates)), seed=seed, **SIZES[size])


@contextmanager
def start_checkpoint(out: str | os.PathLike, pairs: Pairs, model: str | None = None, scratch: str | None = None,
                     resume: bool = False, templates=DEFAULT_TEMPLATES, seed: int = 0) -> Iterator[str]:
    """The checkpoint `train` starts from, for the length of the block: `out` when resuming, a new
    from-scratch model (in a temp folder, removed after) for `scratch`, else `model` resolved."""
    from clipseek.model.loader import resolve_checkpoint

    if resume:
        yield str(out)
    elif scratch:
        with tempfile.TemporaryDirectory() as tmp:
            yield scratch_checkpoint(tmp, scratch, pairs.captions, templates, seed)
    elif model is not None:
        yield resolve_checkpoint(model)[0]
    else:
        raise UsageError("give either --model CHECKPOINT (fine-tune) or --scratch tiny|small")
