"""An ONNX export folder: what it holds, how it is checked, and where the cache keeps them.

A folder (written by `model/export.py`, read by `model/onnx.py`) is self-contained:
`image.onnx`, `text.onnx` (fp32; `image.int8.onnx`, `text.int8.onnx` when exported with int8), each
graph's weights beside it as ONNX external data (`image.onnx.data`, ...: onnxruntime maps that file
instead of copying it, which halves the time to open a session),
`tokenizer.json` (Hugging Face `tokenizers`), `preprocessor_config.json` (the image processor's saved
values) and `clipseek-onnx.json`, the manifest: the source checkpoint and its weights identity, the
torch fingerprint of the source, the model's dim, logit scale and text settings, and the sha256 and
size of every file. Other tools can run the two graphs with those files alone.

Checking. Nothing in a folder is trusted: the manifest's values must have their types and ranges
(`check_manifest`: a dim, a finite logit scale, bounded text settings, plain file names inside the
folder), and every file it lists must be a regular file, not a link. A file whose size differs from the manifest is
corrupt. Hashing 500 MB costs about a second,
too much for every start, so a file is hashed in full once, and its (size, mtime, inode) is then kept
in `.verified.json` beside it: a later start re-hashes only a file whose stat changed since. A folder
that fails the check is never used: the cache redoes it, a folder given by the user is an error.

The cache: `<cache>/onnx/<key>` where `key` hashes the fingerprint's weights part (name and identity;
the identity alone for a local checkpoint, whose identity is a content hash). A folder is built under
a temp name and swapped in (`atomic_dir`), under an exclusive lock (`<key>.lock`), so two processes
exporting one model at once do not corrupt it: the second waits, then finds the first one's export.

Export folders made by `clipseek export onnx` are cache entries too: each is registered under its
key in `<cache>/onnx/exports.json` (key -> absolute folder paths), so loading its source checkpoint
with `--backend onnx` uses that folder instead of exporting the model again. A registered folder is
used only after the same checks (manifest, sizes, checksums) and only if its manifest still names
the same weights; one that is gone or changed is dropped from the registry.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from clipseek._io import atomic_write_json, default_cache_dir, short_lock
from clipseek.core.preprocess import PreprocessCfg
from clipseek.errors import ModelLoadError

MANIFEST = "clipseek-onnx.json"
FORMAT = 1
STAMPS = ".verified.json"
TOKENIZER = "tokenizer.json"
PREPROCESSOR = "preprocessor_config.json"
REQUIRED_FILES = ("image.onnx", "text.onnx", TOKENIZER, PREPROCESSOR)
MAX_DIM = 65_536            # no model's vectors are longer; the manifest's values are bounded so that
MAX_LOGIT = 1000.0          # nothing overflows (CLIP clamps its logit scale at 100, SigLIP's is ~117)
MAX_TEXT_LENGTH = 8192      # tokens (CLIP: 77, SigLIP: 64)
MAX_FILE_BYTES = 1 << 40
MAX_SIDE = 4096             # pixels of the model input (the largest CLIP-like inputs are ~1000)
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
REGISTRY = "exports.json"


def tower_file(tower: str, int8: bool = False) -> str:
    """`image.onnx`, `text.int8.onnx`, ..."""
    return f"{tower}.int8.onnx" if int8 else f"{tower}.onnx"


def tower_files(tower: str, int8: bool = False) -> list[str]:
    """A tower's graph and its weights (`image.onnx`, `image.onnx.data`)."""
    return [tower_file(tower, int8), tower_file(tower, int8) + ".data"]


class CorruptExport(ModelLoadError):
    """An export folder is incomplete or a file does not match its manifest checksum."""


def is_export(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def cache_key(name: str, identity: str, local: bool) -> str:
    """The weights part of a checkpoint's fingerprint, hashed: the identity alone for a local one."""
    return hashlib.sha256((identity if local else f"{name}@{identity}").encode()).hexdigest()[:20]


def cache_folder(name: str, identity: str, local: bool) -> Path:
    """The cache folder of a checkpoint's export, keyed by the weights part of its fingerprint."""
    return default_cache_dir() / "onnx" / cache_key(name, identity, local)


def manifest_key(doc: dict) -> str | None:
    try:
        return cache_key(str(doc["source"]), str(doc["identity"]), bool(doc["local"]))
    except (KeyError, TypeError):
        return None


def _registry() -> Path:
    return default_cache_dir() / "onnx" / REGISTRY


def _read_registry() -> dict[str, list[str]]:
    try:
        doc = json.loads(_registry().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: [p for p in v if isinstance(p, str)] for k, v in doc.items() if isinstance(v, list)}


def _edit_registry(edit) -> None:
    """Apply `edit(doc)` to the registry under its lock (best effort: a read-only cache keeps none)."""
    try:
        _registry().parent.mkdir(parents=True, exist_ok=True)
        with short_lock(str(_registry()) + ".lock"):
            doc = _read_registry()
            edit(doc)
            atomic_write_json(_registry(), {k: v for k, v in doc.items() if v})
    except OSError:
        pass


def register_export(folder: str | os.PathLike, doc: dict) -> None:
    """Record an export folder (made by `clipseek export onnx`) as the export of its source's weights."""
    key, path = manifest_key(doc), str(Path(folder).expanduser().resolve())
    if key is not None:
        _edit_registry(lambda reg: reg.__setitem__(key, [path] + [p for p in reg.get(key, []) if p != path]))


def registered_exports(key: str) -> list[Path]:
    """The export folders registered for `key`, most recent first (not yet checked)."""
    return [Path(p) for p in _read_registry().get(key, [])]


def unregister_export(key: str, folder: str | os.PathLike) -> None:
    path = str(folder)
    _edit_registry(lambda reg: reg.__setitem__(key, [p for p in reg.get(key, []) if p != path]))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def checksums(folder: Path, names: list[str]) -> dict[str, dict]:
    return {n: {"sha256": sha256_file(folder / n), "size": (folder / n).stat().st_size} for n in names}


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def write_stamps(folder: Path, names) -> None:
    """Record that `names` were just hashed and matched (best effort: a read-only folder keeps none)."""
    try:
        old = json.loads((folder / STAMPS).read_text())
    except (OSError, ValueError):
        old = {}
    try:
        atomic_write_json(folder / STAMPS, {**old, **{n: _stamp(folder / n) for n in names}})
    except OSError:
        pass


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest, after checking its values (`check_manifest`) and every file it lists (see the
    module doc); CorruptExport if not."""
    folder = Path(folder)
    try:
        _plain_file(folder, MANIFEST)
        doc = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise CorruptExport(f"{folder}: unreadable ONNX export manifest ({one_line(e)})") from None
    try:
        check_manifest(doc)
    except ValueError as e:
        raise CorruptExport(f"{folder}: invalid ONNX export manifest {MANIFEST} ({e})") from None
    stamps = _read_stamps(folder)
    hashed = []
    for name, want in doc["files"].items():
        st = _plain_file(folder, name, missing_ok=True)
        path = folder / name
        if st is None or st.st_size != want["size"]:
            raise CorruptExport(f"{folder}: {name} is missing or has the wrong size (a partial export)")
        if stamps.get(name) == _stamp(path):
            continue
        if sha256_file(path) != want["sha256"]:
            raise CorruptExport(f"{folder}: {name} does not match its checksum (a corrupt export)")
        hashed.append(name)
    if hashed:
        write_stamps(folder, hashed)
    return doc


def _plain_file(folder: Path, name: str, missing_ok: bool = False) -> os.stat_result | None:
    """The lstat of `folder/name` when it is a regular file, not a link (nothing outside the folder is
    read for it); None when it is missing and `missing_ok`; CorruptExport for anything else."""
    try:
        st = os.lstat(folder / name)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    if stat.S_ISLNK(st.st_mode):
        raise CorruptExport(f"{folder}: {name} is a symbolic link; an export folder holds plain files only")
    if not stat.S_ISREG(st.st_mode):
        raise CorruptExport(f"{folder}: {name} is not a regular file")
    return st


def _read_stamps(folder: Path) -> dict:
    try:
        stamps = json.loads((folder / STAMPS).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def check_manifest(doc) -> dict:
    """`doc` if it is a manifest this version reads, every value of the type and in the range it must
    have (so nothing later overflows, divides by zero or is NaN); ValueError naming the first bad one."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("format") != FORMAT or isinstance(doc.get("format"), bool):
        raise ValueError(f"format {str(doc.get('format'))[:40]!r}, expected {FORMAT}")
    for key in ("source", "identity"):
        _text(doc, key)
    for key in ("local", "int8"):
        if not isinstance(doc.get(key, False), bool):
            raise ValueError(f"{key!r} must be true or false")
    _integer(doc, "dim", 1, MAX_DIM)
    _real(doc, "logit_scale", 0.0, MAX_LOGIT, low_open=True)
    if doc.get("logit_bias") is not None:
        _real(doc, "logit_bias", -MAX_LOGIT, MAX_LOGIT)
    if not isinstance(doc.get("model_type", "clip"), str) or len(doc.get("model_type", "")) > 64:
        raise ValueError("'model_type' must be a short text")
    text = doc.get("text")
    if not isinstance(text, dict):
        raise ValueError("'text' must be an object")
    if text.get("padding") not in ("max_length", "longest"):
        raise ValueError("'text.padding' must be \"max_length\" or \"longest\"")
    _integer(text, "max_length", 1, MAX_TEXT_LENGTH, "text.")
    _integer(text, "pad_id", 0, 2**31 - 1, "text.")
    if not isinstance(text.get("attention_mask"), bool):
        raise ValueError("'text.attention_mask' must be true or false")
    files = doc.get("files")
    if not isinstance(files, dict):
        raise ValueError("'files' must be an object")
    for name, want in files.items():
        if not _SAFE_NAME.fullmatch(name) or name in (".", "..", MANIFEST, STAMPS):
            raise ValueError(f"file name {name[:80]!r} is not a plain name inside the folder")
        if not isinstance(want, dict) or not isinstance(want.get("sha256"), str) \
                or not _SHA256.fullmatch(want["sha256"]):
            raise ValueError(f"{name}: no sha256 checksum")
        _integer(want, "size", 0, MAX_FILE_BYTES, f"{name}: ")
    missing = [n for n in REQUIRED_FILES if n not in files]
    if missing:
        raise ValueError(f"it does not list {', '.join(missing)}")
    return doc


def _text(doc: dict, key: str) -> None:
    v = doc.get(key)
    if not isinstance(v, str) or not v or len(v) > 4096 or not v.isprintable():
        raise ValueError(f"{key!r} must be a non-empty line of text")


def _integer(doc: dict, key: str, lo: int, hi: int, where: str = "") -> None:
    v = doc.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"'{where}{key}' must be a whole number from {lo} to {hi}, not {_shown(v)}")


def _real(doc: dict, key: str, lo: float, hi: float, low_open: bool = False) -> None:
    v = doc.get(key)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
        and (lo < v if low_open else lo <= v) and v <= hi
    if not ok:
        raise ValueError(f"{key!r} must be a finite number {'over' if low_open else 'from'} {lo:g} "
                         f"{'and at most' if low_open else 'to'} {hi:g}, not {_shown(v)}")


def _shown(v) -> str:
    text = json.dumps(v) if isinstance(v, (str, int, float, bool, type(None))) else type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def one_line(e: BaseException, limit: int = 400) -> str:
    """An exception's message on one line, at most `limit` characters (onnxruntime's run to pages),
    without onnxruntime's status prefix."""
    text = _ORT_PREFIX.sub("", " ".join(str(e).split())) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextmanager
def export_lock(folder: Path) -> Iterator[None]:
    """Exclusive, blocking: one process at a time exports into `folder`; others wait here."""
    import fcntl  # POSIX; the cache lock is the one place that needs it

    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read_preprocess(folder: Path, framing: str) -> PreprocessCfg:
    """The export's preprocessing (`preprocessor_config.json`), each value in its range (a side of at
    most MAX_SIDE pixels, finite means, positive standard deviations); CorruptExport if not."""
    path = folder / PREPROCESSOR
    try:
        _plain_file(folder, PREPROCESSOR)
        doc = json.loads(path.read_text())
        cfg = PreprocessCfg.from_config(doc if isinstance(doc, dict) else {"size": None}, framing)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as e:
        raise CorruptExport(f"{path}: not a usable image processor config ({one_line(e)})") from None
    sides = [cfg.size] if isinstance(cfg.size, int) else list(cfg.size)
    sides += list(cfg.crop or ())
    numbers = [*cfg.mean, *cfg.std, cfg.rescale]
    if not all(1 <= s <= MAX_SIDE for s in sides) or len(cfg.mean) != 3 or len(cfg.std) != 3 \
            or not all(math.isfinite(v) for v in numbers) or min(cfg.std) <= 0 or cfg.rescale <= 0 \
            or not 0 <= cfg.resample <= 5:
        raise CorruptExport(f"{path}: values out of range (sides 1 to {MAX_SIDE} pixels, finite mean and "
                            "positive std of 3 channels, a positive rescale factor, resample 0 to 5)")
    return cfg


def processor_config(folder: str | os.PathLike) -> dict:
    """A checkpoint's saved image processor values (`preprocessor_config.json` or the
    "image_processor" part of `processor_config.json`)."""
    folder = Path(folder)
    for name in (PREPROCESSOR, "processor_config.json"):
        if (folder / name).is_file():
            doc = json.loads((folder / name).read_text())
            return dict(doc.get("image_processor", doc))
    raise ModelLoadError(f"{folder} has no {PREPROCESSOR} or processor_config.json")
