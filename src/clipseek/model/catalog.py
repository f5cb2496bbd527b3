"""The recommended checkpoints (`clipseek models`), read from `catalog.json` without loading any model.

Each entry names a checkpoint as `--model` takes it, its architecture (`archs`: the network's shape),
its published zero-shot ImageNet-1k top-1 with the source it was read from (None where no figure could
be verified), and the CPU speed of its architecture measured by `benchmarks/models_bench.py` on random
weights (the machine and method are stored with the numbers). Whether a checkpoint is already in the
local Hugging Face cache is read from the cache folder, without network access.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

CPU_FLOOR = 0.25  # "best on CPU": the most accurate of those at least this fast relative to ViT-B/32


@dataclass(frozen=True)
class Entry:
    hub_id: str                      # what --model takes ("hf-hub:" for open_clip-format checkpoints)
    family: str
    arch: str                        # key of the architecture in catalog.json
    format: str                      # "transformers" or "open_clip"
    params_m: float | None           # millions of parameters of the architecture (both towers)
    embed_dim: int
    input_size: int
    imagenet_top1: float | None      # published zero-shot ImageNet-1k top-1, in %
    top1_source: str
    multilingual: bool
    scoring: str                     # "softmax" (CLIP) or "sigmoid" (SigLIP)
    relative_speed: float | None     # images per CPU-second relative to openai/clip-vit-base-patch32
    images_per_cpu_s: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Catalog:
    entries: tuple[Entry, ...]
    source_url: str
    speed: dict                      # machine, measured (date), method, baseline; {} before a measurement

    def picks(self) -> dict[str, Entry | None]:
        """How to pick: the fastest, the best on CPU, the best overall, the best multilingual one."""
        timed = [e for e in self.entries if e.relative_speed is not None]

        def best(items):
            items = list(items)
            return max(items, key=lambda e: (e.imagenet_top1 or -1.0, e.relative_speed or 0.0)) if items else None

        return {
            "fastest": max(timed, key=lambda e: (e.relative_speed, e.imagenet_top1 or -1.0)) if timed else None,
            "best_on_cpu": best(e for e in timed if e.relative_speed >= CPU_FLOOR),
            "best_overall": best(e for e in self.entries if e.imagenet_top1 is not None),
            "multilingual": best(e for e in self.entries if e.multilingual),
        }


def load_catalog() -> Catalog:
    doc = json.loads(resources.files("clipseek").joinpath("model/catalog.json").read_text("utf-8"))
    speed = doc.get("speed") or {}
    measured = speed.get("archs", {})
    entries = []
    for m in doc["models"]:
        arch = doc["archs"][m["arch"]]
        timing = measured.get(m["arch"], {})
        entries.append(Entry(
            hub_id=m["hub_id"], family=m["family"], arch=m["arch"], format=m["format"],
            params_m=timing.get("params_m"), embed_dim=arch["embed_dim"], input_size=arch["image_size"],
            imagenet_top1=m["imagenet_top1"], top1_source=m["top1_source"], multilingual=m["multilingual"],
            scoring="sigmoid" if arch["kind"] == "siglip" else "softmax",
            relative_speed=timing.get("relative"), images_per_cpu_s=timing.get("images_per_cpu_s")))
    info = {k: v for k, v in speed.items() if k != "archs"}
    return Catalog(tuple(entries), doc["source_url"], info)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, found as huggingface_hub finds it (no import, no network)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def is_cached(hub_id: str, cache_dir: str | Path | None = None) -> bool:
    """Some snapshot of the repo in the local cache holds weights (a .safetensors or .bin file)."""
    repo = hub_id.removeprefix("hf-hub:")
    snapshots = Path(cache_dir or hub_cache_dir()) / ("models--" + repo.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return False
    return any(f.suffix in (".safetensors", ".bin") for snap in snapshots.iterdir() for f in snap.iterdir())


def fmt_params(m: float | None) -> str:
    if m is None:
        return "–"
    return f"{m / 1000:.2f} B" if m >= 1000 else f"{m:.0f} M" if m >= 10 else f"{m:.1f} M"


def fmt_speed(rel: float | None) -> str:
    if rel is None:
        return "–"
    return f"{rel:.2f}×" if rel >= 0.1 else f"{rel:.3f}×"


def fmt_rate(ips: float | None) -> str:
    if ips is None:
        return "–"
    return f"{ips:.1f}" if ips >= 1 else f"{ips:.2f}"


def fmt_top1(top1: float | None) -> str:
    return "–" if top1 is None else f"{top1:.1f}%"


TABLE_HEADER = ["model (--model)", "family", "params", "dim", "input", "ImageNet top-1", "CPU speed",
                "images/s/core", "multilingual"]


def table_rows(catalog: Catalog) -> list[list[str]]:
    return [[e.hub_id, e.family, fmt_params(e.params_m), str(e.embed_dim), str(e.input_size),
             fmt_top1(e.imagenet_top1), fmt_speed(e.relative_speed), fmt_rate(e.images_per_cpu_s),
             "yes" if e.multilingual else ""]
            for e in catalog.entries]


DEMO = "clipseek-demo"


def demo_entry() -> Entry:
    """The bundled demo model (`--model clipseek-demo`): always there, works offline; trained on
    synthetic shapes, so no ImageNet figure. Read from its files without loading it."""
    folder = Path(__file__).parent / "bundled" / DEMO
    cfg = json.loads((folder / "config.json").read_text("utf-8"))
    size = cfg.get("vision_config", {}).get("image_size", 64)
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return Entry(hub_id=DEMO, family="bundled demo", arch="clipseek-demo", format="transformers",
                 params_m=round(weights / 4e6, 1), embed_dim=int(cfg.get("projection_dim", 64)), input_size=size,
                 imagenet_top1=None, top1_source="", multilingual=False, scoring="softmax",
                 relative_speed=None, images_per_cpu_s=None)


def demo_row() -> list[str]:
    """The demo model's row of `clipseek models` (cached: it ships with clipseek)."""
    e = demo_entry()
    return [e.hub_id, e.family, fmt_params(e.params_m), str(e.embed_dim), str(e.input_size), "–", "–", "–", "",
            "yes"]


def markdown_table(catalog: Catalog) -> str:
    """The copy of the table in docs/commands/models.md (kept equal to this by a test)."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    for row in table_rows(catalog):
        row[0] = f"`{row[0]}`"
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
