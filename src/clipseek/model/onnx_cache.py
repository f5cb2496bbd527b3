"""Find or make the ONNX export of a checkpoint: an export folder given by the user, or the cache.

On first use a checkpoint is exported into the cache (`onnx_store.cache_folder`), once, under the
cache lock; later runs find it, check it (`onnx_store.read_manifest`) and load only onnxruntime and
tokenizers. A folder made by `clipseek export onnx` for the same weights is found too (it is
registered in the cache: `onnx_store.register_export`) and used instead of exporting. A cached or
registered export that fails its check is never used. The torch encoder that an export needs is made
by the caller's `load_torch` (the loader), only when no export is found.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable

from clipseek._io import remove_stale_dirs
from clipseek.errors import ModelLoadError
from clipseek.model import onnx_store as store
from clipseek.model.base import Encoder
from clipseek.model.onnx import OnnxEncoder

log = logging.getLogger("clipseek.model")


def open_folder(folder: str | os.PathLike, name: str, framing: str, int8: bool, int8_text: bool,
                threads: int | None = None) -> OnnxEncoder:
    """An export folder the user gave (`--model OUT`): used as it is, or an error if it fails its check."""
    try:
        doc = store.read_manifest(folder)
    except store.CorruptExport as e:
        raise ModelLoadError(f"{e}; export it again with `clipseek export onnx`") from None
    return OnnxEncoder(folder, name, framing, int8, int8_text, threads, manifest=doc)


def hub_identity(name: str, revision: str | None) -> str | None:
    """The commit of a hub checkpoint already in the local Hugging Face cache (what the torch backend
    records as its identity), found without transformers; None when it is not cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    path = try_to_load_from_cache(name, "config.json", revision=revision)
    return Path(path).parent.name if isinstance(path, str) else None


def cached_encoder(name: str, identity: str | None, local: bool, framing: str, int8: bool, int8_text: bool,
                   load_torch: Callable[[], Encoder], threads: int | None = None) -> OnnxEncoder:
    """The encoder of `name`'s export (a registered export folder, or the cache's), exporting it into
    the cache first if there is none. `identity`: the checkpoint's weights identity (None: not known
    before loading it)."""
    need_int8 = int8 or int8_text
    found = _find(name, identity, local, need_int8) if identity else None
    if found is None:
        torch_enc = load_torch() if identity is None else None
        identity = identity or torch_enc.fingerprint.identity
        found = _find(name, identity, local, need_int8) if torch_enc is not None else None
    if found is None:
        folder = store.cache_folder(name, identity, local)
        with store.export_lock(folder):
            doc = _usable(folder, need_int8, quiet=True)  # another process may have just made it
            if doc is None:
                doc = _make(folder, name, need_int8, (lambda: torch_enc) if torch_enc else load_torch)
        found = folder, doc
    return OnnxEncoder(found[0], name, framing, int8, int8_text, threads, manifest=found[1])


def _find(name: str, identity: str, local: bool, need_int8: bool) -> tuple[Path, dict] | None:
    """(folder, manifest) of a usable export of these weights: the cache's, else a registered one."""
    folder = store.cache_folder(name, identity, local)
    remove_stale_dirs(folder)  # what an export killed earlier left beside it
    doc = _usable(folder, need_int8)
    if doc is not None:
        return folder, doc
    key = store.cache_key(name, identity, local)
    for path in store.registered_exports(key):
        doc = _usable(path, False, quiet=True)
        if doc is None or store.manifest_key(doc) != key:
            store.unregister_export(key, path)  # gone, changed, or now the export of something else
        elif doc.get("int8") or not need_int8:
            return path, doc
    return None


def _usable(folder: Path, need_int8: bool, quiet: bool = False) -> dict | None:
    """The manifest of a complete, checked export at `folder` (with int8 towers if needed), else None."""
    if not store.is_export(folder):
        return None
    try:
        doc = store.read_manifest(folder)
    except store.CorruptExport as e:
        if not quiet:
            log.warning("%s: exporting it again", e)
        return None
    return doc if doc.get("int8") or not need_int8 else None


def _make(folder: Path, name: str, int8: bool, load_torch: Callable[[], Encoder]) -> dict:
    """Export (or add the int8 towers to) `folder`; the caller holds the lock."""
    from clipseek.model.export import add_int8, export_encoder

    if store.is_export(folder) and int8:
        try:
            store.read_manifest(folder)
            log.info("quantizing the ONNX export of %s to int8 (once)", name)
            return add_int8(folder)
        except store.CorruptExport:
            pass
    start = time.perf_counter()
    enc = load_torch()  # a model that does not load fails here, before any note
    log.info("exporting %s to ONNX once, into %s (later runs reuse it); to skip this step elsewhere, "
             "`clipseek export onnx %s DIR` makes a folder that runs with this model find and use",
             name, folder, name, extra={"always": True})  # shown also when stderr is not a terminal
    doc = export_encoder(enc, folder, int8=int8, release=True)
    size = sum(f["size"] for f in doc["files"].values()) / 1e6
    log.info("exported to ONNX in %.1f s (%.0f MB in %s)", time.perf_counter() - start, size, folder)
    return doc
