"""Image-caption pairs for training: from a caption manifest (JSONL or CSV, read by the same record reader
as the evaluation manifests) or from a folder per class (captions made from templates).

Nothing here opens images; a manifest line whose image file is missing is skipped and counted.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from clipseek.core.images import walk_images
from clipseek.core.prompts import DEFAULT_TEMPLATE, check_templates, render
from clipseek.data.labelled import MANIFEST_SUFFIXES, check_field, manifest_records
from clipseek.errors import UsageError

DEFAULT_TEMPLATES = (DEFAULT_TEMPLATE,)


@dataclass
class Pairs:
    """Image paths with one caption each; `skipped` counts manifest lines whose image is missing."""

    paths: list[str]
    captions: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    groups: list[str] | None = None   # per pair, a manifest field's value (for hard-negative batches)
    attrs: dict[str, list[str]] | None = None  # field -> per-pair value (for --positives)


def _caption(row: dict) -> str | None:
    text = row.get("caption") or row.get("text")
    if not text and row.get("label") not in (None, ""):
        text = DEFAULT_TEMPLATE.format(row["label"])
    return text


def _in_split(row: dict, split: str | None) -> bool:
    """A line without a split belongs to every split."""
    s = row.get("split")
    return not split or s in (None, "") or str(s) == split


def read_caption_manifest(path: str | os.PathLike, split: str | None = None,
                          group_by: str | None = None, positives: tuple[str, ...] = ()) -> Pairs:
    """Lines (JSONL objects or CSV rows) with an image path (`image`/`path`/`file`) and a `caption`/`text`
    (or `label`); relative paths are relative to the manifest. `group_by` and `positives` name fields every
    line must have (see training's GroupedBatchSampler and PositiveMatcher)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"manifest not found: {path}")
    pairs = Pairs([], [], groups=[] if group_by else None, attrs={k: [] for k in positives} or None)
    for n, row in manifest_records(path):
        if not _in_split(row, split):
            continue
        img, text = row.get("image") or row.get("path") or row.get("file"), _caption(row)
        if not img or not text:
            raise UsageError(f"{path}:{n}: needs an image path ('image') and a 'caption'")
        text = check_field(text, path, n, "caption")
        full = str(path.parent / str(img))
        if not os.path.isfile(full):
            pairs.skipped.append((full, "missing image file"))
            continue
        if group_by:
            if group_by not in row:
                raise UsageError(f"{path}:{n}: no field {group_by!r} (--group-by)")
            pairs.groups.append(str(row[group_by]))
        for k in positives:
            if k not in row:
                raise UsageError(f"{path}:{n}: no field {k!r} (--positives)")
            pairs.attrs[k].append(str(row[k]))
        pairs.paths.append(full)
        pairs.captions.append(str(text))
    if not pairs.paths:
        raise UsageError(f"{path}: no usable image-caption pairs" + (f" in split {split!r}" if split else ""))
    return pairs


def read_labelled_folder(root: str | os.PathLike, templates=DEFAULT_TEMPLATES, seed: int = 0) -> Pairs:
    """Folder per class; each image gets a caption from a (seeded) random template of its class."""
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UsageError(f"{root}: no class folders")
    templates = check_templates(templates)
    rng = random.Random(seed)
    pairs = Pairs([], [], attrs={"label": []})
    for c in classes:
        for p in walk_images(root / c):
            pairs.paths.append(p)
            pairs.captions.append(render(rng.choice(templates), c))
            pairs.attrs["label"].append(c)
    if not pairs.paths:
        raise UsageError(f"{root}: no images in the class folders")
    return pairs


def load_pairs(data: str, split: str | None = None, templates=DEFAULT_TEMPLATES, seed: int = 0,
               group_by: str | None = None, positives: tuple[str, ...] = ()) -> Pairs:
    """A manifest (or a folder with a `manifest.jsonl`) or a labelled folder. A folder's pairs carry their
    class as the field `label`."""
    p = Path(data)
    if p.is_dir():
        if (p / "manifest.jsonl").is_file():
            return read_caption_manifest(p / "manifest.jsonl", split, group_by, positives)
        pairs = read_labelled_folder(p / split if split and (p / split).is_dir() else p, templates, seed)
        if set(positives) - {"label"}:
            raise UsageError(f"--positives: a labelled folder has only the field 'label', not "
                             f"{', '.join(sorted(set(positives) - {'label'}))}")
        return pairs
    if p.suffix.lower() in MANIFEST_SUFFIXES:
        return read_caption_manifest(p, split, group_by, positives)
    raise UsageError(f"training data must be a JSONL or CSV manifest or a folder, not {data!r}")
