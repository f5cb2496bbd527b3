"""An ONNX export folder: what it holds, how it is checked, and where the cache keeps them.

A folder (written by `model/export.py`, read by `model/onnx.py`) is self-contained:
`image.onnx`, `text.onnx` (fp32; `image.int8.onnx`, `text.int8.onnx` when exported with int8), each
graph's weights beside it as ONNX external data (`image.onnx.data`, ...: onnxruntime maps that file
instead of copying it, which halves the time to open a session),
`tokenizer.json` (Hugging Face `tokenizers`), `preprocessor_config.json` (the image processor's saved
values) and `clipseek-onnx.json`, the manifest: the source checkpoint and its weights identity, the
torch fingerprint of the source, the model's dim, logit scale and text settings, and the sha256 and
size of every file. Other tools can run the two graphs with those files alone.

Checking. A file whose size differs from the manifest is corrupt. Hashing 500 MB costs about a second,
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
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from clipseek._io import atomic_write_json, default_cache_dir, short_lock
from clipseek.errors import ModelLoadError

MANIFEST = "clipseek-onnx.json"
FORMAT = 1
STAMPS = ".verified.json"
TOKENIZER = "tokenizer.json"
PREPROCESSOR = "preprocessor_config.json"
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
    """The manifest, after checking every file it lists (see the module doc); CorruptExport if not."""
    folder = Path(folder)
    try:
        doc = json.loads((folder / MANIFEST).read_text())
        files = dict(doc["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorruptExport(f"{folder}: unreadable ONNX export manifest ({e})") from None
    if doc.get("format") != FORMAT:
        raise CorruptExport(f"{folder}: ONNX export format {doc.get('format')!r}, expected {FORMAT}")
    try:
        stamps = json.loads((folder / STAMPS).read_text())
    except (OSError, ValueError):
        stamps = {}
    hashed = []
    for name, want in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != want["size"]:
            raise CorruptExport(f"{folder}: {name} is missing or has the wrong size (a partial export)")
        if stamps.get(name) == _stamp(path):
            continue
        if sha256_file(path) != want["sha256"]:
            raise CorruptExport(f"{folder}: {name} does not match its checksum (a corrupt export)")
        hashed.append(name)
    if hashed:
        write_stamps(folder, hashed)
    return doc


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


def processor_config(folder: str | os.PathLike) -> dict:
    """A checkpoint's saved image processor values (`preprocessor_config.json` or the
    "image_processor" part of `processor_config.json`)."""
    folder = Path(folder)
    for name in (PREPROCESSOR, "processor_config.json"):
        if (folder / name).is_file():
            doc = json.loads((folder / name).read_text())
            return dict(doc.get("image_processor", doc))
    raise ModelLoadError(f"{folder} has no {PREPROCESSOR} or processor_config.json")
