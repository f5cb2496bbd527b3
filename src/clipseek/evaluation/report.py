"""Evaluation documents and report directories: report.json, report.md, report.html, PNGs, thumbnails.

The schema of report.json ("clipseek.eval/1") is documented in one place: docs/eval-report.md;
tests/cli/test_eval_cli.py checks that every key written here is named there.
The directory is written to a temporary sibling and renamed into place at the end, so a crash never
leaves a partial report that looks complete.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path

from clipseek._io import atomic_dir
from clipseek.core.paths import json_text, quote_path
from clipseek.evaluation.fewshot_report import curve_table, curves_png

SCHEMA = "clipseek.eval/1"
THUMB = 128


def build_document(task: str, dataset: dict, rows: list[dict], skipped) -> dict:
    from clipseek._version import __version__

    seen, skips = set(), []
    for s in skipped:
        if s.path not in seen:
            seen.add(s.path)
            skips.append({"path": s.path, "reason": s.reason})
    return {"schema": SCHEMA, "clipseek_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "task": task, "dataset": dataset, "rows": rows, "skipped": skips}


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def calibration_text(row: dict) -> str:
    """One plain-text sentence on the fitted temperature and the "none of these" threshold."""
    c, n = row["calibration"], row["none_of_these"]
    text = (f"Temperature {c['temperature']:.3f} ({c.get('scoring', 'softmax')}; fitted: {c['fitted_on']}): "
            f"ECE {c['ece_before']:.3f} → {c['ece_after']:.3f}.")
    if c.get("improves") is False:
        text += " The fitted temperature does not improve calibration here: keep T = 1."
    if n.get("threshold") is not None:
        text += (f" None of these below {n.get('score', 'cosine')} {n['threshold']:.3f} "
                 f"(detects {n['detects']}, fitted: {n['fitted_on']}): "
                 f"precision {_pct(n['precision'])}, recall {_pct(n['recall'])}.")
    return text


def _train_skips(row: dict) -> str:
    n = (row.get("linear_probe") or {}).get("n_train_skipped", 0)
    return f" (train: {n} skipped)" if n else ""


def summary_table(doc: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the one-line-per-(model, prompt set) summary (CLI table, Markdown, HTML)."""
    if doc["task"] == "retrieval":
        header = ["model", "images", "T→I R@1", "R@5", "R@10", "I→T R@1", "R@5", "R@10"]
        rows = []
        for r in doc["rows"]:
            m = r["metrics"]
            rows.append([r["model"], f"{m.get('n_images', 0)} ({m['n_skipped']} skipped)"] +
                        [_pct(m.get(f"{d}_recall@{k}")) for d in ("text_to_image", "image_to_text")
                         for k in (1, 5, 10)])
        return header, rows
    k = next((r["metrics"]["top_k"]["k"] for r in doc["rows"] if "top_k" in r["metrics"]), 5)
    header = ["model", "prompts", "top-1 (n, skipped)", f"top-{k}", "mean recall", "macro-F1",
              "ECE → after T", "none-of-these <"]
    sets = any("coverage" in r["metrics"] or "false_alarm" in r["metrics"] for r in doc["rows"])
    if sets:
        header.append("coverage · set size | false alarm · detection")
    rows = []
    for r in doc["rows"]:
        m = r["metrics"]
        cal, none = r.get("calibration"), r.get("none_of_these")
        if r["kind"] == "one-class":
            rows.append([r["model"], r["prompt_set"], f"– (n={m['n']}, {m['n_skipped']} skipped)"] + ["–"] * 5
                        + [_flags(m)])
            continue
        rows.append([
            r["model"], r["prompt_set"] + (f" ({r['n_templates']})" if r.get("n_templates", 1) > 1 else "")
            + _train_skips(r),
            f"{_pct(m['top1'])} (n={m['n']}, {m['n_skipped']} skipped)", _pct(m["top_k"]["accuracy"]),
            _pct(m["mean_per_class_recall"]), _pct(m["macro_f1"]),
            f"{m['ece']:.3f} → {cal['ece_after']:.3f}" if cal else f"{m['ece']:.3f}",
            _threshold(none)] + ([_flags(m)] if sets else []))
    return header, rows


def _flags(m: dict) -> str:
    """A few-shot row's conformal sets ("91.2% ⊇ · 1.35 labels") or one-class flags."""
    if "false_alarm" in m:
        return (f"false alarm {_pct(m['false_alarm'])} (≤ {m['false_alarm_target']:g}) · "
                f"detected {_pct(m['detection_rate'])}")
    if m.get("coverage") is not None:
        return f"{_pct(m['coverage'])} (≥ {m['coverage_target']:g}) · {m['mean_set_size']:.2f} labels"
    return "–"


def _threshold(none: dict | None) -> str:
    """The "none of these" threshold with its unit: "cos 0.227" or "p 0.031" (a SigLIP probability)."""
    if not none or none.get("threshold") is None:
        return "–"
    unit = "p" if none.get("score") == "probability" else "cos"
    return f"{unit} {none['threshold']:.3f}"


# ---------------------------------------------------------------- images
def confusion_png(cm: list[list[int]], classes: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    a = np.asarray(cm, float)
    norm = a / np.maximum(a.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = min(4 + 0.45 * n, 20)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=100)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if a[i, j]:
                    ax.text(j, i, int(a[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def thumbnail(src: str, dst: Path) -> bool:
    from clipseek.core.images import open_image

    try:
        img = open_image(src)
        img.thumbnail((THUMB, THUMB))
        img.save(dst, "JPEG", quality=85)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------- writing
def write_report(doc: dict, out_dir: str | os.PathLike) -> Path:
    """Write report.json/.md/.html (+ PNGs, thumbnails) into `out_dir`, atomically replacing it."""
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        assets = _write_assets(doc, tmp)
        (tmp / "report.json").write_text(json_text(doc, indent=2) + "\n", "utf-8")
        (tmp / "report.md").write_text(render_markdown(doc, assets), "utf-8")
        (tmp / "report.html").write_text(render_html(doc, assets), "utf-8")
    return out


def _write_assets(doc: dict, d: Path) -> dict:
    """Confusion PNG per classification row; thumbnails of the most confident mistakes."""
    assets: dict = {"confusion": {}, "thumbs": {}}
    if doc["task"] != "classification":
        return assets
    (d / "thumbs").mkdir()
    classes = doc["dataset"]["classes"]
    if doc.get("fewshot_curves"):
        curves_png(doc, d / "fewshot_curves.png")
        assets["curves"] = "fewshot_curves.png"
    for i, r in enumerate(doc["rows"]):
        if r["kind"] == "one-class":
            continue
        name = f"confusion_{i}.png"
        confusion_png(r["confusion_matrix"], classes, f"{r['model']} · {r['prompt_set']}", d / name)
        assets["confusion"][i] = name
        for m in r["mistakes"]:
            if m["path"] not in assets["thumbs"]:
                t = f"thumbs/{len(assets['thumbs']):04d}.jpg"
                assets["thumbs"][m["path"]] = t if thumbnail(m["path"], d / t) else None
    return assets


def render_markdown(doc: dict, assets: dict) -> str:
    header, rows = summary_table(doc)
    ds = doc["dataset"]
    out = [f"# clipseek eval: {ds.get('source', '')}", "",
           f"Task: {doc['task']} · split: {ds.get('split') or '(none)'} · images: {ds.get('n_images')} · "
           f"skipped: {len(doc['skipped'])} · created {doc['created']} · clipseek {doc['clipseek_version']}", ""]
    out += _md_table(header, rows)
    for w in ds.get("warnings", []):
        out.append(f"\n> warning: {w}")
    curves = curve_table(doc)
    if curves:
        out += ["", "## Few-shot curves", "", f"![few-shot curves]({assets.get('curves', '')})", ""]
        out += _md_table(*curves)
    for i, r in enumerate(doc["rows"]):
        if r["kind"] in ("retrieval", "one-class"):
            continue
        out += ["", f"## {r['model']} · {r['prompt_set']}", ""]
        if r.get("calibration"):
            out.append(calibration_text(r))
        out += ["", f"![confusion matrix]({assets['confusion'].get(i, '')})", ""]
        out += _md_table(["class", "precision", "recall", "F1", "support"],
                         [[p["class"], _pct(p["precision"]), _pct(p["recall"]), _pct(p["f1"]), p["support"]]
                          for p in r["per_class"]])
        if r["mistakes"]:
            out += ["", "Most confident mistakes:", ""]
            out += _md_table(["image", "true", "predicted", "confidence"],
                             [[quote_path(m["path"]), m["true"], m["predicted"], _pct(m["confidence"])]
                              for m in r["mistakes"]])
    if doc["skipped"]:
        out += ["", f"## Skipped files ({len(doc['skipped'])})", ""]
        out += [f"- `{quote_path(s['path'])}`: {s['reason']}" for s in doc["skipped"]]
    return "\n".join(out) + "\n"


def _md_table(header, rows) -> list[str]:
    esc = lambda x: str(x).replace("|", "\\|")  # noqa: E731
    return (["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)] +
            ["| " + " | ".join(map(esc, r)) + " |" for r in rows])


CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f3f7}.mist{display:inline-block;width:140px;margin:4px;font-size:12px;vertical-align:top}
.mist img{max-width:128px;max-height:128px;display:block}
.mist{overflow-wrap:anywhere}.mist
.name{display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.warn{color:#a60}img.cm{max-width:600px}"""


def _html_table(header, rows) -> str:
    e = html.escape
    return ("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr>" +
            "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def mistake_card(m: dict, thumb: str | None) -> str:
    """One confident mistake: its thumbnail, true and predicted labels, and its file name on one line
    (ellipsized to the card, whole in the tooltip: a long name never runs into the next card)."""
    e = html.escape
    img = f"<img src='{e(thumb)}' alt=''>" if thumb else "<i>(no thumbnail)</i>"
    name = e(quote_path(os.path.basename(m["path"])))
    return (f"<div class='mist'>{img}true: <b>{e(m['true'])}</b><br>predicted: <b>{e(m['predicted'])}</b> "
            f"({_pct(m['confidence'])})<br><small class='name' title='{name}'>{name}</small></div>")


def render_html(doc: dict, assets: dict) -> str:
    e = html.escape
    ds = doc["dataset"]
    header, rows = summary_table(doc)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>clipseek eval</title><style>{CSS}"
             f"</style></head><body><h1>clipseek eval: {e(str(ds.get('source', '')))}</h1>",
             f"<p>Task {e(doc['task'])} · split {e(str(ds.get('split') or '(none)'))} · "
             f"{ds.get('n_images')} images · <b>{len(doc['skipped'])} skipped</b> · {e(doc['created'])}</p>",
             _html_table(header, rows)]
    parts += [f"<p class='warn'>warning: {e(w)}</p>" for w in ds.get("warnings", [])]
    curves = curve_table(doc)
    if curves:
        parts.append(f"<h2>Few-shot curves</h2><img class='cm' src='{e(assets.get('curves', ''))}' "
                     f"alt='few-shot curves'>" + _html_table(*curves))
    for i, r in enumerate(doc["rows"]):
        if r["kind"] in ("retrieval", "one-class"):
            continue
        parts.append(f"<h2>{e(r['model'])} · {e(r['prompt_set'])}</h2>")
        if r.get("calibration"):
            parts.append(f"<p>{e(calibration_text(r))}</p>")
        parts.append(f"<img class='cm' src='{e(assets['confusion'].get(i, ''))}' alt='confusion matrix'>")
        parts.append(_html_table(["class", "precision", "recall", "F1", "support"],
                                 [[p["class"], _pct(p["precision"]), _pct(p["recall"]), _pct(p["f1"]),
                                   p["support"]] for p in r["per_class"]]))
        if r["mistakes"]:
            parts.append("<h3>Most confident mistakes</h3><div>")
            parts += [mistake_card(m, assets["thumbs"].get(m["path"])) for m in r["mistakes"]]
            parts.append("</div>")
    if doc["skipped"]:
        parts.append(f"<h2>Skipped files ({len(doc['skipped'])})</h2><ul>" +
                     "".join(f"<li><code>{e(quote_path(s['path']))}</code>: {e(s['reason'])}</li>"
                             for s in doc["skipped"])
                     + "</ul>")
    return "\n".join(parts) + "</body></html>\n"
