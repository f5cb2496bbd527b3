"""Read a Hugging Face `datasets` dataset into a LabelledDataset (optional: `pip install clipseek[datasets]`).

Sources: `hf:DIR` (a local imagefolder, parquet files, or a `save_to_disk` directory) or `hf:NAME` (hub id,
needs network or a warm cache). Images stored as bytes are written once to `materialize_dir` under a
content-hash name, so the embedding cache keys stay stable across runs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from clipseek._io import atomic_write_bytes
from clipseek.errors import UsageError

IMAGE_COLUMNS = ("image", "img", "jpg", "png", "picture")
LABEL_COLUMNS = ("label", "labels", "class", "fine_label", "category")


def _import_datasets():
    try:
        import datasets
    except Exception as e:  # missing, or installed without its own dependencies
        raise UsageError("reading `datasets` datasets needs the optional extra: "
                         f"pip install 'clipseek[datasets]' ({type(e).__name__}: {e})") from None
    return datasets


def _load(name: str):
    ds_mod = _import_datasets()
    p = Path(name)
    try:
        if p.is_dir():
            if (p / "dataset_dict.json").is_file() or (p / "state.json").is_file():
                return ds_mod.load_from_disk(str(p))
            if any(p.glob("*.parquet")) or any(p.glob("*/*.parquet")):
                return ds_mod.load_dataset("parquet", data_dir=str(p))
            return ds_mod.load_dataset("imagefolder", data_dir=str(p))
        return ds_mod.load_dataset(name)
    except UsageError:
        raise
    except Exception as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise UsageError(f"cannot load dataset {name!r}: {first}") from None


def _pick(columns, wanted: str | None, candidates, what: str, name: str) -> str:
    if wanted:
        if wanted not in columns:
            raise UsageError(f"{name}: missing column {wanted!r}; columns: {', '.join(columns)}")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    raise UsageError(f"{name}: no {what} column found; pass --{what}-column (columns: {', '.join(columns)})")


def default_materialize_dir(base: str | os.PathLike | None = None) -> Path:
    """Where image bytes are written: `dataset-images/` in `base` (default: the clipseek cache folder)."""
    from clipseek._io import default_cache_dir

    return Path(base if base is not None else default_cache_dir()) / "dataset-images"


def _materialize(value, out_dir: Path) -> str:
    """An image cell ({"path", "bytes"} with decoding off) -> a file path on disk."""
    path, data = value.get("path"), value.get("bytes")
    if path and os.path.isfile(path) and not data:
        return path
    if data is None:
        return path or "<missing image>"
    suffix = Path(path).suffix if path else ".img"
    target = out_dir / (hashlib.sha256(data).hexdigest()[:24] + (suffix or ".img"))
    if not target.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
    return str(target)


def read_hf(name: str, split: str | None = None, image_column: str | None = None,
            label_column: str | None = None, materialize_dir: str | None = None):
    from clipseek.data.labelled import (  # shared assembly and checks
        _assemble,
        choose_split,
    )

    dd = _load(name)
    ds_mod = _import_datasets()
    splits = dict(dd) if isinstance(dd, ds_mod.DatasetDict) else {None: dd}
    first = next(iter(splits.values()))
    img_col = _pick(first.column_names, image_column, IMAGE_COLUMNS, "image", name)
    lab_col = _pick(first.column_names, label_column, LABEL_COLUMNS, "label", name)
    feature = first.features[lab_col]
    names = list(feature.names) if hasattr(feature, "names") else None
    out_dir = Path(materialize_dir) if materialize_dir else default_materialize_dir()
    rows = []
    chosen = choose_split([s for s in splits if s], split, name) if any(splits) else None
    for s, d in splits.items():
        if s != chosen:
            continue
        d = d.cast_column(img_col, ds_mod.Image(decode=False))
        for img, lab in zip(d[img_col], d[lab_col]):
            label = names[lab] if names is not None and isinstance(lab, int) else str(lab)
            rows.append((_materialize(img, out_dir), label, s))
    class_map = {c: c.replace("_", " ") for c in names} if names else None
    ds = _assemble(rows, name, chosen, class_map, names)
    ds.splits = sorted(s for s in splits if s)
    return ds
