"""`clipseek demo`: the whole product, offline, on a freshly generated gallery."""

from __future__ import annotations

from typing import Optional

import typer

from . import app
from .output import print_table


@app.command("demo")
def demo_cmd(
    model: str = typer.Option("clipseek-demo", "--model", "-m", help="Model to demo (default: bundled)."),
    out: Optional[str] = typer.Option(None, "--out", help="Keep the generated gallery here."),
    n: int = typer.Option(480, "--n", min=48, help="Images to generate."),
    seed: int = typer.Option(123, "--seed"),
) -> None:
    """Generate a small gallery, then classify, evaluate and search it with the bundled model."""
    import tempfile
    from pathlib import Path

    from ..classify import classify
    from ..models import load_model
    from ..synthetic import COLOURS, SHAPES, generate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out or tmp)
        samples = generate(root, n=n, seed=seed)
        test = [s for s in samples if s.split == "test"]
        print(f"1. generated {len(samples)} synthetic images in {root} ({len(test)} in the test split)\n")
        encoder = load_model(model)
        print(f"   model: {model} ({encoder.describe()['dim']}-d, {encoder.device})\n")

        few = test[:6]
        labels = [f"{c} {s}" for c in COLOURS for s in SHAPES]
        res = classify(encoder, [str(root / s.path) for s in few], labels, ["a photo of a {}."], top=3)
        rows = [[Path(p.path).name, truth.caption, f"{p.label} ({p.ranked[0][1]:.0%})",
                 "yes" if p.label == truth.label else "no"] for p, truth in zip(res.predictions, few)]
        print(f"2. zero-shot classification over {len(labels)} 'colour shape' labels")
        print_table(None, ["image", "caption (ground truth)", "predicted", "correct"], rows)
        res = classify(encoder, [str(root / s.path) for s in test], labels, ["a photo of a {}."], top=1)
        acc = sum(p.label == s.label for p, s in zip(res.predictions, test)) / max(1, len(test))
        print(f"   top-1 on all {len(test)} test images: {acc:.1%}\n")

        from ..eval_run import run_eval
        from ..report import summary_table

        doc = run_eval(str(root), [model], lambda m: encoder,
                       {"a photo of a {}.": ["a photo of a {}."], "a {}": ["a {}"]}, split="test",
                       probe=True, on_warning=lambda w: None)
        print("3. evaluation on the test split (zero-shot per prompt set, and a linear probe on train)")
        print_table(None, *summary_table(doc))
        print()
