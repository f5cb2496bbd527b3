"""A training run's state (optimizer, schedule, counters, random states) on disk, in a form that cannot
carry code: the tensors in `state.safetensors`, everything else in `state.json`.

A pickle (`torch.save`) runs whatever its author put in it when it is loaded, and a run folder may come
from anyone, so no pickle is ever loaded with code allowed. The structure is written as tagged JSON
(dicts with any keys, lists, tuples, strings, numbers, booleans, None, tensor references) and read back
by a decoder that knows only those tags. Run folders of clipseek versions before this one hold
`state.pt`: read with torch's weights-only unpickler (tensors and plain values only) where torch has a
safe one (2.6 and later), refused with one line otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

from clipseek.errors import ClipseekError

TENSORS_FILE = "state.safetensors"
STRUCTURE_FILE = "state.json"
LEGACY_FILE = "state.pt"
FORMAT = "clipseek-train-state-1"
RESTART = "start the run again (a new --out, or remove this folder)"


class BadState(ClipseekError):
    """A run folder's training state that cannot be used (damaged, foreign, or a pickle refused)."""


def _encode(obj, tensors: dict):
    import torch

    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"t": key}
    if isinstance(obj, dict):
        return {"d": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"l" if isinstance(obj, list) else "u": [_encode(x, tensors) for x in obj]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"v": obj}
    raise TypeError(f"training state holds a {type(obj).__name__}, which is not saved")


def _decode(node, tensors: dict):
    if not isinstance(node, dict) or len(node) != 1:
        raise BadState("unexpected value")
    (tag, value), = node.items()
    if tag == "t":
        return tensors[value]
    if tag == "d":
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value}
    if tag in ("l", "u"):
        items = [_decode(x, tensors) for x in value]
        return items if tag == "l" else tuple(items)
    if tag == "v" and (value is None or isinstance(value, (bool, int, float, str))):
        return value
    raise BadState(f"unexpected tag {tag!r}")


def save_state(folder: str | Path, state: dict) -> None:
    """Write `state` (nested dicts, lists, tuples, tensors, numbers, strings) into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors: dict = {}
    doc = {"format": FORMAT, "state": _encode(state, tensors)}
    save_file(tensors, str(folder / TENSORS_FILE))
    (folder / STRUCTURE_FILE).write_text(json.dumps(doc), encoding="utf-8")


def has_state(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / STRUCTURE_FILE).is_file() or (folder / LEGACY_FILE).is_file()


def load_state(folder: str | Path) -> dict:
    """The state saved in `folder` (this format, or a legacy `state.pt` read without running code);
    BadState (one line, saying to restart the run) when it cannot be read safely."""
    folder = Path(folder)
    if not (folder / STRUCTURE_FILE).is_file() and (folder / LEGACY_FILE).is_file():
        return _load_legacy(folder / LEGACY_FILE)
    from safetensors.torch import load_file

    try:
        doc = json.loads((folder / STRUCTURE_FILE).read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BadState(f"not a {FORMAT} file")
        return _decode(doc["state"], load_file(str(folder / TENSORS_FILE)))
    except Exception as e:  # damaged, truncated, foreign: the reader's reason, in one line
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BadState(f"cannot read the training state in {folder} ({why}); {RESTART}") from None


def _load_legacy(path: Path) -> dict:
    import torch

    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 6):
        raise BadState(f"{path} is a pickle (older clipseek versions wrote one), and torch {torch.__version__} "
                       "has no safe "
                       f"reader for it (2.6 and later have one); {RESTART}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        why = "it holds objects other than tensors and numbers, and loading those could run code" \
            if "weights only" in str(e).lower() or "unsupported global" in str(e).lower() \
            else (str(e).splitlines()[0] if str(e) else type(e).__name__)
        raise BadState(f"refused {path}: {why}; {RESTART}") from None
    if not isinstance(state, dict):
        raise BadState(f"refused {path}: not a training state; {RESTART}")
    return state
