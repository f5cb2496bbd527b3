"""The few-shot parts of an eval report: the curves' table (also the CLI's) and their plot."""

from __future__ import annotations

from pathlib import Path


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def curve_table(doc: dict) -> tuple[list[str], list[list[str]]] | None:
    """Few-shot curves: one line per (model, method), one column per number of shots."""
    fc = doc.get("fewshot_curves")
    if not fc:
        return None
    cov = fc.get("coverage_target") is not None
    header = ["model", "method"] + [f"{k} shot{'s' * (k > 1)}" for k in fc["shots"]]
    by = {}
    for r in fc["rows"]:
        by.setdefault((r["model"], r["method"]), {})[r["shots"]] = r
    rows = []
    for (model, method), cells in by.items():
        if method == "zero-shot":
            rows.append([model, "zero-shot"] + [_pct(cells[0]["top1"])] * len(fc["shots"]))
            continue
        row = [model, method]
        for k in fc["shots"]:
            c = cells.get(k, {})
            text = _pct(c.get("top1"))
            if cov and c.get("coverage") is not None:
                text += f" ({_pct(c['coverage'])} · {c['mean_set_size']:.2f})"
            row.append(text)
        rows.append(row)
    return header, rows


def curves_png(doc: dict, path: Path) -> None:
    """Top-1 against examples per class, one line per method, the zero-shot level dashed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fc = doc["fewshot_curves"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    models = sorted({r["model"] for r in fc["rows"]})
    for model in models:
        rows = [r for r in fc["rows"] if r["model"] == model]
        tag = f"{model} · " if len(models) > 1 else ""
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["shots"], r["top1"]) for r in rows if r["method"] == method and r["top1"] is not None]
            if method == "zero-shot" and pts:
                ax.axhline(pts[0][1], ls="--", color="grey", label=f"{tag}zero-shot")
            elif pts:
                ax.plot(*zip(*pts), marker="o", label=f"{tag}{method}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(fc["shots"], labels=[str(k) for k in fc["shots"]])
    ax.set_xlabel("examples per class")
    ax.set_ylabel("top-1 on the evaluated split")
    ax.set_title(f"few-shot curves (mean of {fc['seeds']} draws)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
