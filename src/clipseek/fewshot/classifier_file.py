"""A fitted classifier as one small self-describing file: a NumPy .npz archive, no pickle.

Members: `meta.npy` (uint8: UTF-8 JSON: format, version, classes and their label texts, the model's
fingerprint, method and settings, logit scale, temperature, conformal and anomaly thresholds, how the
method was chosen, what it was fitted on) and one float32/int64/uint8 array per weight (`head.NAME`,
`references`). Written atomically (`_io.atomic_write_bytes`).

A file is untrusted input: it is read as plain bytes (a regular file of bounded size), the archive's
members are checked (names, sizes) before anything is decoded, arrays load with `allow_pickle=False`,
and every field is checked for type, range, finiteness and shape. Anything wrong is one UsageError line.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile

import numpy as np

from clipseek._io import atomic_write_bytes
from clipseek.errors import ClipseekError, UsageError
from clipseek.fewshot.anomaly import Anomaly
from clipseek.fewshot.classifier import FewShotClassifier
from clipseek.fewshot.conformal import Conformal
from clipseek.fewshot.methods import METHODS, Head
from clipseek.model.fingerprint import Fingerprint, FingerprintError

FORMAT = "clipseek.fewshot"
VERSION = 1
MAX_FILE_BYTES = 1 << 30
MAX_META_BYTES = 4 << 20
HEAD_ARRAYS = {"text": ("class_vecs",), "prototype": ("class_vecs",), "logistic": ("weights", "bias"),
               "tip": ("class_vecs", "has_text", "cache_vecs", "cache_labels"), "knn": ()}
DTYPES = {"class_vecs": "float32", "weights": "float32", "bias": "float32", "has_text": "uint8",
          "cache_vecs": "float32", "cache_labels": "int64", "references": "float32"}
SETTINGS = {"tip": ("alpha", "beta"), "logistic": ("l2",)}


class BadFile(UsageError):
    pass


def save_classifier(clf: FewShotClassifier, path: str | os.PathLike) -> None:
    arrays = {f"head.{k}": np.ascontiguousarray(v, DTYPES[k]) for k, v in (clf.head.arrays if clf.head else {}).items()}
    if clf.references is not None:
        arrays["references"] = np.ascontiguousarray(clf.references, np.float32)
    meta = {"format": FORMAT, "version": VERSION, "kind": clf.kind, "classes": list(clf.classes),
            "texts": list(clf.texts), "fingerprint": clf.fingerprint, "method": clf.method,
            "settings": dict(clf.head.settings) if clf.head else {},
            "scale": float(clf.head.scale) if clf.head else 1.0, "temperature": float(clf.temperature),
            "conformal": clf.conformal.to_dict() if clf.conformal else None,
            "anomaly": clf.anomaly.to_dict() if clf.anomaly else None,
            "selection": clf.selection, "info": clf.info}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _members(data: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise BadFile(f"{where}: not a clipseek classifier file (not an .npz archive: {e})") from None
    allowed = {"meta"} | {f"head.{k}" for k in DTYPES if k != "references"} | {"references"}
    total = 0
    for info in infos:
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if name not in allowed:
            raise BadFile(f"{where}: unexpected member {info.filename!r}")
        total += info.file_size
        if total > MAX_FILE_BYTES or (name == "meta" and info.file_size > MAX_META_BYTES):
            raise BadFile(f"{where}: member {info.filename!r} too large")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise BadFile(f"{where}: an array cannot be read ({e})") from None


def _num(meta: dict, key: str, where: str, lo: float = -math.inf, hi: float = math.inf,
         integer: bool = False, open_lo: bool = False, open_hi: bool = False):
    v = meta.get(key)
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if not ok or isinstance(v, bool) or not math.isfinite(v) or v < lo or v > hi or \
            (open_lo and v == lo) or (open_hi and v == hi):
        raise BadFile(f"{where}: {key} must be a finite {'integer' if integer else 'number'} in "
                      f"{'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}, not {v!r}")
    return int(v) if integer else float(v)


def _array(arrays: dict, name: str, shape: tuple, where: str) -> np.ndarray:
    a = arrays.get(name)
    if a is None:
        raise BadFile(f"{where}: missing array {name!r}")
    want = DTYPES[name.removeprefix("head.")]
    if a.dtype != np.dtype(want) or a.ndim != len(shape) or \
            any(s is not None and s != n for s, n in zip(shape, a.shape)):
        raise BadFile(f"{where}: array {name!r} is {a.dtype}{list(a.shape)}, expected {want}{list(shape)}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise BadFile(f"{where}: array {name!r} holds a non-finite number")
    return a


def _meta(arrays: dict, where: str) -> dict:
    raw = arrays.get("meta")
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise BadFile(f"{where}: not a clipseek classifier file (no metadata)")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadFile(f"{where}: its metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BadFile(f"{where}: not a clipseek classifier file")
    if meta.get("version") != VERSION:
        raise BadFile(f"{where}: classifier file version {meta.get('version')!r}; this clipseek reads "
                      f"version {VERSION} (fit it again)")
    return meta


def _classes(meta: dict, where: str) -> tuple[list[str], list]:
    classes, texts = meta.get("classes"), meta.get("texts")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c.strip() for c in classes) \
            or len(set(classes)) != len(classes):
        raise BadFile(f"{where}: classes must be a non-empty list of distinct names")
    if not isinstance(texts, list) or len(texts) != len(classes) or \
            not all(t is None or isinstance(t, str) for t in texts):
        raise BadFile(f"{where}: texts must be a label text (or null) per class")
    return classes, texts


def _head(meta: dict, arrays: dict, n: int, where: str) -> tuple[Head | None, int | None]:
    method = meta.get("method")
    if method not in (*METHODS, "knn") or (method == "knn") != (meta.get("kind") == "one-class"):
        raise BadFile(f"{where}: unknown method {method!r}")
    if method == "knn":
        return None, None
    settings = meta.get("settings")
    if not isinstance(settings, dict):
        raise BadFile(f"{where}: settings must be an object")
    clean = {k: _num(settings, k, where, 0.0, 1e12, open_lo=True) for k in SETTINGS.get(method, ())}
    if "iterations" in settings:
        clean["iterations"] = _num(settings, "iterations", where, 0, 10 ** 9, integer=True)
    if method == "tip":
        bridge = settings.get("bridge")
        if bridge is not None and (not isinstance(bridge, list) or len(bridge) != 4):
            raise BadFile(f"{where}: settings.bridge must be 4 numbers or null")
        clean["bridge"] = None if bridge is None else [_num({"bridge": v}, "bridge", where) for v in bridge]
    first = arrays.get("head." + HEAD_ARRAYS[method][0])
    dim = first.shape[-1] if first is not None and first.ndim == 2 else -1
    shapes = {"class_vecs": (n, dim), "weights": (n, dim), "bias": (n,), "has_text": (n,),
              "cache_vecs": (None, dim), "cache_labels": (None,)}
    got = {k: _array(arrays, f"head.{k}", shapes[k], where) for k in HEAD_ARRAYS[method]}
    if method == "tip":
        if len(got["cache_labels"]) != len(got["cache_vecs"]) or not len(got["cache_labels"]) or \
                got["cache_labels"].min() < 0 or got["cache_labels"].max() >= n or got["has_text"].max() > 1:
            raise BadFile(f"{where}: the example cache does not match its classes")
    scale = _num(meta, "scale", where, 0.0, 1e6, open_lo=True)
    return Head(method, clean, got, scale), dim


def _conformal(meta: dict, where: str) -> Conformal | None:
    c = meta.get("conformal")
    if c is None:
        return None
    if not isinstance(c, dict):
        raise BadFile(f"{where}: conformal must be an object")
    return Conformal(_num(c, "coverage", where, 0, 1, open_lo=True, open_hi=True), _num(c, "threshold", where),
                     _num(c, "lam", where, 0.0, 1e6), _num(c, "k_reg", where, 0, 10 ** 9, integer=True),
                     _num(c, "n_calibration", where, 1, 10 ** 12, integer=True))


def _anomaly(meta: dict, arrays: dict, dim: int | None, where: str) -> tuple[Anomaly | None, np.ndarray | None]:
    a = meta.get("anomaly")
    if a is None:
        return None, None
    if not isinstance(a, dict):
        raise BadFile(f"{where}: anomaly must be an object")
    refs = _array(arrays, "references", (None, dim), where)
    an = Anomaly(_num(a, "false_alarm", where, 0, 1, open_lo=True, open_hi=True), _num(a, "threshold", where),
                 _num(a, "neighbours", where, 1, max(1, len(refs)), integer=True),
                 _num(a, "n_reference", where, len(refs), len(refs), integer=True))
    return an, refs


def load_classifier(path: str | os.PathLike) -> FewShotClassifier:
    """Read and check a classifier file (UsageError, one line, for anything wrong with it)."""
    from clipseek.core.files import read_regular

    where = os.fspath(path)
    try:
        data, _ = read_regular(where, MAX_FILE_BYTES)
    except ClipseekError as e:
        raise BadFile(f"cannot read the classifier {where}: {getattr(e, 'reason', e)}") from None
    arrays = _members(data, where)
    meta = _meta(arrays, where)
    classes, texts = _classes(meta, where)
    try:
        Fingerprint.parse(meta.get("fingerprint") if isinstance(meta.get("fingerprint"), str) else "")
    except FingerprintError:
        raise BadFile(f"{where}: no readable model fingerprint") from None
    head, dim = _head(meta, arrays, len(classes), where)
    if head is None and len(classes) != 1:
        raise BadFile(f"{where}: a one-class classifier has exactly one class")
    anomaly, refs = _anomaly(meta, arrays, dim, where)
    if head is None and anomaly is None:
        raise BadFile(f"{where}: a one-class classifier needs its anomaly threshold")
    temperature = _num(meta, "temperature", where, 1e-6, 1e6)
    for key in ("selection", "info"):
        if not isinstance(meta.get(key, {}), dict):
            raise BadFile(f"{where}: {key} must be an object")
    return FewShotClassifier(classes, texts, meta["fingerprint"], head, temperature, _conformal(meta, where),
                             anomaly, refs, meta.get("selection", {}), meta.get("info", {}))
