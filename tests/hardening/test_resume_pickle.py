"""Issue 23 item 2 (and item 10's pytorch_model.bin): no file of a run folder or a checkpoint is ever
unpickled in a way that can run code. A hostile pickle whose `__reduce__` would write a marker file is
put where clipseek reads: `training_state/state.pt` of a run folder (`train --resume`) and a transformers
`pytorch_model.bin`; the marker must never appear, and each is one line with a non-zero exit."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

import clipseek
from helpers import make_image, run_cli


class _Hostile:
    """Unpickling this runs `open(marker, 'w')`: what a run folder from someone else could hold."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile_pickle(path: Path, marker: Path, extra: dict | None = None) -> None:
    import torch

    torch.save({**(extra or {}), "epoch": 1, "payload": _Hostile(marker)}, path)


def _classes(root: Path) -> Path:
    for k, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            make_image(10 * k + i, (32, 32)).save(root / name / f"{i}.png")
    return root


def _one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and lines and lines[-1].startswith("clipseek: error: "), r.stderr
    return lines[-1]


def test_resume_from_a_run_folder_with_a_hostile_pickle_runs_no_code(tiny_ckpt, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "PWNED"
    shutil.copytree(tiny_ckpt, out)
    (out / "training_state").mkdir()
    _hostile_pickle(out / "training_state" / "state.pt", marker)
    r = run_cli("train", _classes(tmp_path / "data"), "--out", out, "--resume", "--epochs", 2,
                "--batch-size", 4, "--warmup", 0, "--device", "cpu")
    assert not marker.exists(), "the run folder's pickle ran code"
    assert r.returncode in (1, 2)
    line = _one_error_line(r)
    assert "state.pt" in line and "start the run again" in line, line


def test_a_saved_run_holds_no_pickle_and_resumes(tiny_ckpt, tmp_path):
    from safetensors.torch import load_file

    from clipseek.data.pairs import load_pairs
    from clipseek.training.loop import TrainConfig, train

    pairs = load_pairs(str(_classes(tmp_path / "data")))
    out = tmp_path / "run"
    train(tiny_ckpt, pairs, str(out), TrainConfig(epochs=1, batch_size=4, warmup_steps=0))
    files = sorted(p.name for p in (out / "training_state").iterdir())
    assert files == ["state.json", "state.safetensors"], files
    json.loads((out / "training_state" / "state.json").read_text("utf-8"))  # plain JSON and safetensors
    assert load_file(str(out / "training_state" / "state.safetensors"))
    history = train(str(out), pairs, str(out), TrainConfig(epochs=2, batch_size=4, warmup_steps=0), resume=True)
    assert [h.epoch for h in history] == [2]


def test_an_old_run_folder_with_a_plain_state_pt_still_resumes(tiny_ckpt, tmp_path):
    """Run folders of earlier versions hold state.pt (tensors and numbers): read weights-only, not refused."""
    import torch

    from clipseek.data.pairs import load_pairs
    from clipseek.model.pickles import torch_unpickles_safely
    from clipseek.training.loop import TrainConfig, train
    from clipseek.training.state import load_state

    if not torch_unpickles_safely():
        pytest.skip("torch < 2.6 has no safe weights-only reader: old run folders are refused there")
    pairs = load_pairs(str(_classes(tmp_path / "data")))
    out = tmp_path / "run"
    train(tiny_ckpt, pairs, str(out), TrainConfig(epochs=1, batch_size=4, warmup_steps=0))
    state = load_state(out / "training_state")
    for name in ("state.json", "state.safetensors"):
        os.remove(out / "training_state" / name)
    torch.save(state, out / "training_state" / "state.pt")  # as clipseek wrote it before
    history = train(str(out), pairs, str(out), TrainConfig(epochs=2, batch_size=4, warmup_steps=0), resume=True)
    assert [h.epoch for h in history] == [2]


def test_a_hostile_pytorch_model_bin_is_refused_in_one_line(tiny_ckpt, tmp_path):
    import torch
    from safetensors.torch import load_file

    ckpt, marker = tmp_path / "ckpt", tmp_path / "PWNED"
    shutil.copytree(tiny_ckpt, ckpt)
    weights = load_file(str(ckpt / "model.safetensors"))
    os.remove(ckpt / "model.safetensors")
    torch.save({**weights, "payload": _Hostile(marker)}, ckpt / "pytorch_model.bin")
    with pytest.raises(clipseek.errors.ModelLoadError) as e:
        clipseek.load_model(str(ckpt), device="cpu", backend="torch")
    assert not marker.exists()
    msg = str(e.value)
    assert "\n" not in msg and "pytorch_model.bin" in msg and "safetensors" in msg, msg


def test_nothing_in_the_package_unpickles_with_code_allowed():
    """Every torch.load is weights-only; no pickle/joblib/dill/pandas pickle reader; no allow_pickle."""
    src = Path(clipseek.__file__).parent
    risky = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|cloudpickle\.load|joblib\.load|dill\.load|"
                       r"read_pickle|allow_pickle\s*=\s*True|torch\.load\((?![^)]*weights_only\s*=\s*True)")
    found = [f"{p.relative_to(src)}:{n}: {line.strip()}" for p in sorted(src.rglob("*.py"))
             for n, line in enumerate(p.read_text("utf-8").splitlines(), 1) if risky.search(line)]
    assert not found, found
