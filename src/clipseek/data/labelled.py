"""Labelled image datasets for evaluation: folder-per-class, CSV/JSONL manifests, `datasets` datasets,
and caption data for retrieval. Every reader produces the same `LabelledDataset`; nothing here computes
metrics or opens images (unreadable images are the pipeline's business and become `Skipped` records).

Splits: a folder dataset may have split folders on top (`DATA/train/<class>/...`, `DATA/test/...`), a
manifest a `split` column, a `datasets` dataset its own splits. Class indices are shared by all splits.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from clipseek.core.images import walk_images
from clipseek.core.prompts import MAX_TEXT_CHARS, check_text
from clipseek.errors import UsageError

SPLIT_NAMES = ("train", "validation", "val", "valid", "dev", "test")
DEFAULT_EVAL_SPLITS = ("test", "validation", "val", "valid", "dev")
# Held-out splits a temperature, threshold or conformal set may be calibrated on. Never "train": a
# checkpoint fine-tuned on it is over-confident there, and a temperature fitted there makes the
# evaluated split worse.
CALIBRATION_SPLITS = ("validation", "val", "valid", "dev")
OTHER_CLASS_NAMES = ("other", "none", "none of these", "background", "unknown", "negative")


@dataclass
class LabelledDataset:
    paths: list[str]                 # image files
    labels: list[int]                # index into `classes`, aligned with `paths`
    classes: list[str]               # class names (as in folders / manifest)
    prompts: dict[str, str]          # class name -> label text used in prompts
    split: str | None = None         # the split these items come from (None: no splits)
    splits: list[str] = field(default_factory=list)   # all splits the source has
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def label_texts(self) -> list[str]:
        return [self.prompts.get(c, c) for c in self.classes]

    def other_class(self) -> int | None:
        """Index of an "other"/"none" class (images that belong to none of the real classes), if any."""
        for i, c in enumerate(self.classes):
            if c.strip().lower().replace("_", " ") in OTHER_CLASS_NAMES:
                return i
        return None

    def describe(self) -> dict:
        return {"source": self.source, "split": self.split, "splits": self.splits, "n_images": len(self),
                "classes": self.classes, "label_texts": self.label_texts}


@dataclass
class CaptionDataset:
    images: list[str]                # unique image files
    captions: list[str]
    caption_image: list[int]         # index into `images` for each caption
    source: str = ""


def _label_text(name: str) -> str:
    return name.replace("_", " ").strip()


# ---------------------------------------------------------------- class lists (classes.json / .txt)
def read_class_map(path: str | os.PathLike) -> dict[str, str]:
    """classes.json: {"name": "label text"} or ["name", ...]; classes.txt: `name` or `name: label text`."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text("utf-8"))
        except json.JSONDecodeError as e:
            raise UsageError(f"{p}: line {e.lineno}: not valid JSON ({e.msg})") from None
        if isinstance(data, list):
            return {str(c): check_text(_label_text(str(c)), f"{p}: a class") for c in data}
        if isinstance(data, dict):
            return {str(k): check_text(str(v), f"{p}: the label of {str(k)[:40]!r}") for k, v in data.items()}
        raise UsageError(f"{p}: expected a JSON object (class -> label text) or a list of class names")
    out: dict[str, str] = {}
    for n, line in enumerate(p.read_text("utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, text = line.partition(":")
        if not name.strip():
            raise UsageError(f"{p}:{n}: empty class name")
        words = text.strip() if sep and text.strip() else _label_text(name)
        out[name.strip()] = check_text(words, f"{p}:{n}: the label")
    return out


def _find_class_map(folder: Path) -> dict[str, str] | None:
    for name in ("classes.json", "classes.txt"):
        if (folder / name).is_file():
            return read_class_map(folder / name)
    return None


# ---------------------------------------------------------------- assembling a split
def _assemble(rows: list[tuple[str, str, str | None]], source: str, split: str | None,
              class_map: dict[str, str] | None, class_order: list[str] | None = None) -> LabelledDataset:
    """rows: (path, class name, split or None) for the whole source -> the chosen split's dataset."""
    splits = sorted({s for _, _, s in rows if s})
    chosen = choose_split(splits, split, source)
    if class_map is not None:
        classes = list(class_map)
        known = set(classes)
        for path, label, _ in rows:
            if label not in known:
                raise UsageError(f"{source}: label {label!r} (for {path}) is not a known class; "
                                 f"known: {', '.join(classes[:20])}{' ...' if len(classes) > 20 else ''}")
        prompts = dict(class_map)
    else:
        classes = class_order or sorted({label for _, label, _ in rows})
        prompts = {c: _label_text(c) for c in classes}
    index = {c: i for i, c in enumerate(classes)}
    picked = [(p, index[l]) for p, l, s in rows if chosen is None or s == chosen]
    ds = LabelledDataset([p for p, _ in picked], [i for _, i in picked], classes, prompts,
                         split=chosen, splits=splits, source=source)
    counts = [0] * len(classes)
    for _, i in picked:
        counts[i] += 1
    for c, n in zip(classes, counts):
        if n == 0:
            msg = f"class {c!r} has no images{f' in split {chosen!r}' if chosen else ''}"
            ds.warnings.append(msg)   # the caller shows these (the CLI prints "warning: ..." lines)
    if not picked:
        raise UsageError(f"{source}: no images{f' in split {chosen!r}' if chosen else ''}")
    return ds


def choose_split(splits: list[str], split: str | None, source: str) -> str | None:
    """The requested split (which must exist), or a default evaluation split (test, validation, ...)."""
    if split:
        if not splits:
            raise UsageError(f"split {split!r} not found: {source} has no splits")
        if split not in splits:
            raise UsageError(f"split {split!r} not found in {source}; available: {', '.join(splits)}")
        return split
    if not splits:
        return None
    for s in DEFAULT_EVAL_SPLITS:
        if s in splits:
            return s
    if len(splits) == 1:
        return splits[0]
    raise UsageError(f"{source} has several splits ({', '.join(splits)}); choose one with --split")


# ---------------------------------------------------------------- folder per class
def _class_folders(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def read_folder(root: str | os.PathLike, split: str | None = None) -> LabelledDataset:
    """DATA/<class>/*.jpg, or DATA/<split>/<class>/*.jpg when the top folders are all split names."""
    root = Path(root)
    top = _class_folders(root)
    if not top:
        raise UsageError(f"{root}: no class folders (expected DATA/<class>/<image files>)")
    class_map = _find_class_map(root)
    rows: list[tuple[str, str, str | None]] = []
    if all(t.lower() in SPLIT_NAMES for t in top):
        names: set[str] = set()
        for s in top:
            for c in _class_folders(root / s):
                names.add(c)
                rows += [(p, c, s) for p in walk_images(root / s / c)]
        order = sorted(names)
    else:
        order = top
        for c in top:
            rows += [(p, c, None) for p in walk_images(root / c)]
    if class_map is not None:  # classes listed but without a folder are kept (and warned about)
        order = list(class_map)
    return _assemble(rows, str(root), split, class_map, order)


# ---------------------------------------------------------------- CSV / JSONL manifests
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
MANIFEST_SUFFIXES = JSONL_SUFFIXES + (".csv",)
# The longest JSONL line read: a path, a few labels or captions of at most MAX_TEXT_CHARS and other
# short fields fit many times over; a longer line is refused while it is read (never held whole).
MAX_LINE_CHARS = 1 << 20


def _lines(f, path: Path):
    """(line number, line) of a text file, each read with a bound of MAX_LINE_CHARS."""
    n = 0
    while True:
        line = f.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_LINE_CHARS:
            raise UsageError(f"{path}:{n}: line longer than {MAX_LINE_CHARS:,} characters (a label or "
                             f"caption may have at most {MAX_TEXT_CHARS:,})")
        yield n, line


def check_field(value, path, n: int, what: str) -> str:
    """A manifest's label or caption as text, at most MAX_TEXT_CHARS long (UsageError naming the line)."""
    return check_text(str(value), f"{path}:{n}: the {what}")


def manifest_records(path: str | os.PathLike, required: tuple[str, ...] = ()):
    """Yield (line number, record dict) from a CSV (header row) or JSONL manifest: the one record reader
    for evaluation, retrieval and training manifests. `required`: columns a CSV header must have (a
    JSONL line is checked by the caller, field by field)."""
    path = Path(path)
    # utf-8-sig: a file a spreadsheet or an editor saved with a byte order mark reads as one without;
    # surrogateescape: a name in it may hold any bytes
    if path.suffix.lower() in JSONL_SUFFIXES:
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as f:  # a name may hold any bytes
            for n, line in _lines(f, path):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UsageError(f"{path}:{n}: malformed JSON line ({e.msg})") from None
                if not isinstance(rec, dict):
                    raise UsageError(f"{path}:{n}: expected a JSON object per line")
                yield n, rec
        return
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames or []
            for col in required:
                if col not in header:
                    raise UsageError(f"{path}: missing column {col!r}; columns: {', '.join(header) or '(none)'}")
            for rec in reader:
                if None in rec or any(v is None for v in rec.values()):
                    raise UsageError(f"{path}:{reader.line_num}: malformed row (expected {len(header)} fields)")
                yield reader.line_num, rec
        except csv.Error as e:  # a field over csv's limit (131,072 bytes), a NUL byte, a stray quote
            raise UsageError(f"{path}:{reader.line_num + 1}: unreadable CSV row ({e})") from None


def read_manifest(path: str | os.PathLike, split: str | None = None, image_column: str | None = None,
                  label_column: str | None = None, classes_file: str | None = None) -> LabelledDataset:
    """A CSV or JSONL manifest of `path,label[,split]`; relative paths are relative to the manifest."""
    path = Path(path)
    image_column, label_column = image_column or "path", label_column or "label"
    base = path.parent
    rows: list[tuple[str, str, str | None]] = []
    for n, rec in manifest_records(path, (image_column, label_column)):
        for col in (image_column, label_column):
            if col not in rec or rec[col] in (None, ""):
                raise UsageError(f"{path}:{n}: missing {col!r}")
        img = str(rec[image_column])
        s = rec.get("split")
        label = check_field(rec[label_column], path, n, "label").strip()
        rows.append((img if os.path.isabs(img) else str(base / img), label,
                     str(s).strip() if s not in (None, "") else None))
    if not rows:
        raise UsageError(f"{path}: manifest has no rows")
    class_map = read_class_map(classes_file) if classes_file else _find_class_map(base)
    return _assemble(rows, str(path), split, class_map)


# ---------------------------------------------------------------- captions (retrieval)
def read_captions(path: str | os.PathLike) -> CaptionDataset:
    """JSONL: {"image": PATH, "caption": TEXT} or {"image": PATH, "captions": [TEXT, ...]} per line
    (CSV: `image,caption` rows, one caption per row). Relative paths are relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"caption file not found: {path}")
    images: list[str] = []
    index: dict[str, int] = {}
    captions: list[str] = []
    owner: list[int] = []
    for n, rec in manifest_records(path, ("image", "caption")):
        if "image" not in rec:
            raise UsageError(f"{path}:{n}: missing 'image'")
        caps = rec.get("captions", rec.get("caption"))
        caps = [caps] if isinstance(caps, str) else caps
        if not caps or not all(isinstance(c, str) and c.strip() for c in caps):
            raise UsageError(f"{path}:{n}: needs 'caption' (text) or 'captions' (list of texts)")
        img = str(rec["image"])
        img = img if os.path.isabs(img) else str(path.parent / img)
        if img not in index:
            index[img] = len(images)
            images.append(img)
        captions += [check_field(c, path, n, "caption").strip() for c in caps]
        owner += [index[img]] * len(caps)
    if not images:
        raise UsageError(f"{path}: no captions")
    return CaptionDataset(images, captions, owner, str(path))
