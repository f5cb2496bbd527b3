"""Weights stored as a pickle (`pytorch_model.bin`, open_clip's `.bin`/`.pt`): read only by torch's
weights-only unpickler, only where torch has a safe one (2.6 and later; CVE-2025-32434 broke the earlier
ones), and refused with one line saying why and what to do otherwise. Safetensors files carry no code."""

from __future__ import annotations

import pickle

CONVERT = ("convert it to safetensors where you trust the file: load it there and save it with "
           "save_pretrained(DIR, safe_serialization=True) (transformers), or safetensors.torch.save_file")


def torch_unpickles_safely() -> bool:
    """torch's `weights_only=True` loader can be trusted with a hostile file (torch >= 2.6)."""
    import torch

    major, minor = (int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    return (major, minor) >= (2, 6)


def old_torch_refusal(where: str, name: str) -> str:
    import torch

    return (f"{where}: refused {name}, pickled weights: torch {torch.__version__} cannot read a pickle "
            f"without the risk of running code in it (torch 2.6 and later can); {CONVERT}")


def pickle_refusal(where: str, e: BaseException, name: str = "pytorch_model.bin") -> str | None:
    """One line when `e` is torch (or transformers) refusing pickled weights as unsafe, else None."""
    text = str(e).lower()
    if isinstance(e, pickle.UnpicklingError) or "weights only load failed" in text:
        return (f"{where}: refused {name}, pickled weights that hold more than tensors (loading them could "
                f"run code); {CONVERT}")
    if "torch.load" in text and ("vulnerability" in text or "upgrade torch" in text):
        return old_torch_refusal(where, name)
    return None
