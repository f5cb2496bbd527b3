"""`clipseek synth`: the synthetic shapes dataset (data.synthetic)."""

from __future__ import annotations

import typer

from clipseek.cli.app import app
from clipseek.cli.options import SEED_MAX
from clipseek.cli.output import progress


@app.command("synth")
def synth_cmd(
    out: str = typer.Argument(..., help="Output folder for images and manifests."),
    n: int = typer.Option(2000, "--n", min=1, help="Number of images."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX),
    image_size: int = typer.Option(64, "--image-size", min=16),
    workers: int = typer.Option(0, "--workers", min=0,
                                help="Drawing processes (0: one per CPU core); the images do not depend on it."),
) -> None:
    """Generate the synthetic coloured-shapes dataset (folder per class, JSONL manifests, splits)."""
    import os

    from clipseek.data.synthetic import generate

    with progress(n, "drawing") as advance:
        samples = generate(out, n=n, seed=seed, image_size=image_size, on_progress=advance,
                           workers=workers or os.cpu_count() or 1)
    counts = {s: sum(1 for x in samples if x.split == s) for s in ("train", "val", "test")}
    print(f"wrote {len(samples)} images to {out} ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
          f"manifest: {out}/manifest.jsonl")
