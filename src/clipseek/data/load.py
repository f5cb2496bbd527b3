"""One entry point for labelled data: a class-folder tree, a manifest, or a `datasets` dataset."""

from __future__ import annotations

from pathlib import Path

from clipseek.data.labelled import LabelledDataset, read_folder, read_manifest
from clipseek.errors import UsageError


def load_labelled(spec: str, split: str | None = None, image_column: str | None = None,
                  label_column: str | None = None, materialize_dir: str | None = None) -> LabelledDataset:
    """DATA is a class-folder directory, a .csv/.jsonl manifest, a parquet/`save_to_disk` directory or
    `hf:NAME` (a `datasets` dataset; needs `pip install clipseek[datasets]`)."""
    p = Path(spec)
    if spec.startswith("hf:") or (p.is_dir() and _is_hf_dir(p)):
        from clipseek.data.hf import read_hf

        name = spec[3:] if spec.startswith("hf:") else spec
        return read_hf(name, split, image_column, label_column, materialize_dir)
    if p.is_dir():
        return read_folder(p, split)
    if p.is_file():
        return read_manifest(p, split, image_column, label_column)
    raise UsageError(f"dataset not found: {spec} (a class-folder directory, a .csv/.jsonl manifest, "
                     "or hf:NAME for a `datasets` dataset)")


def _is_hf_dir(p: Path) -> bool:
    return ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file()
            or any(p.glob("*.parquet")) or any(p.glob("*/*.parquet")))
