"""`clipseek demo`: the whole product, offline, on a freshly generated gallery."""

from __future__ import annotations

from typing import Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.options import SEED_MAX, backend_option, model_option
from clipseek.cli.output import print_table


@app.command("demo")
def demo_cmd(
    model: str = model_option("Model to demo (default: the bundled one).", default="clipseek-demo"),
    out: Optional[str] = typer.Option(None, "--out", help="Keep the generated gallery here."),
    n: int = typer.Option(480, "--n", min=48, help="Images to generate."),
    seed: int = typer.Option(123, "--seed", min=0, max=SEED_MAX),
    backend: str = backend_option(),
) -> None:
    """Generate a small gallery, then classify, evaluate and search it with the bundled model."""
    import tempfile
    from pathlib import Path

    from clipseek.core.prompts import DEFAULT_TEMPLATE
    from clipseek.data.synthetic import COLOURS, SHAPES, generate
    from clipseek.model.loader import load_model
    from clipseek.zero_shot import classify

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out or tmp)
        samples = generate(root, n=n, seed=seed)
        test = [s for s in samples if s.split == "test"]
        print(f"1. generated {len(samples)} synthetic images in {root} ({len(test)} in the test split)\n")
        encoder = load_model(model, backend=backend)
        print(f"   model: {model} ({encoder.dim}-d, {encoder.device})\n")

        few = test[:6]
        labels = [f"{c} {s}" for c in COLOURS for s in SHAPES]
        res = classify(encoder, [str(root / s.path) for s in few], labels, [DEFAULT_TEMPLATE], top=3)
        rows = [[Path(p.path).name, truth.caption, f"{p.label} ({p.ranked[0][1]:.0%})",
                 "yes" if p.label == truth.label else "no"] for p, truth in zip(res.predictions, few)]
        print(f"2. zero-shot classification over {len(labels)} 'colour shape' labels")
        print_table(None, ["image", "caption (ground truth)", "predicted", "correct"], rows)
        res = classify(encoder, [str(root / s.path) for s in test], labels, [DEFAULT_TEMPLATE], top=1)
        acc = sum(p.label == s.label for p, s in zip(res.predictions, test)) / max(1, len(test))
        print(f"   top-1 on all {len(test)} test images: {acc:.1%}\n")

        from clipseek.evaluation.report import summary_table
        from clipseek.evaluation.run import run_eval

        doc = run_eval(str(root), [model], lambda m: encoder,
                       {DEFAULT_TEMPLATE: [DEFAULT_TEMPLATE], "a {}": ["a {}"]}, split="test",
                       probe=True, on_warning=lambda w: None)
        print("3. evaluation on the test split (zero-shot per prompt set, and a linear probe on train)")
        print_table(None, *summary_table(doc))
        print()

        from clipseek.gallery.gallery import Gallery

        by_path = {str((root / s.path).resolve()): s for s in samples}
        with Gallery(str(root / "gallery.db"), encoder) as gallery:
            summary = gallery.index([str(root)])
            print(f"4. indexed {summary.total} images into {root / 'gallery.db'}; text searches (top 3):")
            rows = []
            for query in ("a red circle", "a small blue star", "a yellow ring on a striped background",
                          "a black cross", "a photo of a green triangle"):
                hits = gallery.search(text=query, k=3)
                found = [by_path.get(str(Path(h.path).resolve())) for h in hits]
                rows.append([query] + [f"{f.size} {f.label}, {f.background} ({h.score:.2f})" if f else h.path
                                       for f, h in zip(found, hits)])
            print_table(None, ["query", "1st (truth, cosine)", "2nd", "3rd"], rows)
    print(NEXT_STEPS)


# The demo model knows synthetic shapes only: on photos, the default model (downloaded once, ~600 MB)
NEXT_STEPS = """
Next, on your own photos (the default model is downloaded once, about 600 MB; offline, add
--model clipseek-demo):
  clipseek index ~/Pictures --db photos.db
  clipseek search "a dog on the beach" --db photos.db
  clipseek serve --db photos.db"""
