"""The bodies the server answers with, shaped from the library's results.

No absolute path of the server's disk leaves through them: image paths, the database and a local
model are named relative to the gallery's root folder (the common root of its images).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from clipseek.core.prompts import DEFAULT_TEMPLATE
from clipseek.core.scores import scoring, top_k
from clipseek.model.fingerprint import Fingerprint
from clipseek.server.checks import Limits, SearchOptions

if TYPE_CHECKING:
    import numpy as np

    from clipseek.gallery.gallery import Gallery, SearchResult
    from clipseek.gallery.query import Term


def search_doc(g: Gallery, terms: list[Term], k: int, opts: SearchOptions, known: dict, doc: dict,
           first=None, offset: int = 0, max_k: int = 0) -> dict:
    """On the model thread: the query's vector, the search within the filter, the response: results
    `offset` to `offset + k` of the ranking, the `cursor` of the next page (None when the ranking ends
    or the next page would pass `max_k`) and `matched`, the images the filter lets the search rank."""
    results = g.search_vector(g.query_vector(terms, known, first), offset + k, where=opts.where,
                              relevant=opts.relevant)
    more = len(results) == offset + k and offset + k < max_k
    results = results[offset:]
    doc = {**doc, "k": k, "cursor": str(offset + k) if more else None,
           "matched": g.count(opts.where), "add": [t.describe() for t in opts.add],
           "subtract": [t.describe() for t in opts.subtract],
           "filter": opts.where.describe() if opts.where else None, "relevant": opts.relevant,
           "results": relative_results(results, g.store.common_root(), g.store)}
    if not results and opts.where and g.count(opts.where) == 0:
        doc["message"] = f"no image passes the filter ({opts.where.describe()})"
    return doc


def relative_results(results: list[SearchResult], root: str | None, store=None) -> list[dict]:
    """Result dicts with paths relative to `root`, and each image's content hash when `store` is given
    (the page puts it in its thumbnail URLs, `?h=`, so they change when the content does)."""
    root = root or os.sep
    rows = store.get_rows([r.id for r in results]) if store is not None and results else {}
    return [{**r.to_dict(), "path": os.path.relpath(r.path, root),
             **({"hash": rows[r.id].hash} if r.id in rows else {})} for r in results]


def classification_doc(labels: list[str], templates: Sequence[str], probs: np.ndarray,
                   logit_bias: float | None) -> dict:
    ranked = top_k(probs[None, :], labels, len(labels))[0]
    return {"labels": labels, "templates": len(templates), "scoring": scoring(logit_bias),
            "predictions": [{"label": l, "score": round(p, 6)} for l, p in ranked]}


def dupes_doc(groups: list, root: str | None, similar: bool, threshold: float, limit: int,
              taken=lambda rid: None, db: str = "clipseek.db") -> dict:
    """Duplicate groups with paths relative to `root`; at most `limit` groups, the largest first. Each
    member gets its capture time (`taken(id)`: ns or None), each group the reason its keeper was
    chosen; `command`: the `clipseek dupes` line that moves the extras (run in the gallery's root)."""
    root = root or os.sep
    def rel(p):
        return os.path.relpath(p, root) if p else p
    shown = sorted(groups, key=lambda g: -len(g.members))[:limit]

    def member(m) -> dict:
        when = taken(m.id)
        return {**m.to_dict(), "path": rel(m.path), "link": rel(m.link),
                "taken": iso_time(when) if when is not None else None}

    words = ["clipseek", "dupes", "--db", shlex.quote(db)] + (
        ["--similar", "--threshold", f"{threshold:g}"] if similar else [])
    return {"similar": similar, "threshold": threshold, "total_groups": len(groups),
            "extras": sum(len(g.extras) for g in groups),
            "command": " ".join(words + ["--move-extras-to", "DIR"]),
            "groups": [{"keep": rel(g.keep.path), "keep_reason": keep_reason(g),
                        "members": [member(m) for m in g.members]} for g in shown]}


def keep_reason(g) -> str:
    """Why the keeper was chosen (gallery.dupes.groups: most pixels, then the largest file, then the
    oldest modification, then the first path)."""
    k, others = g.keep, [m for m in g.members if m.id != g.keep.id]
    if all(k.width * k.height > m.width * m.height for m in others):
        return "most pixels"
    if all(k.width * k.height >= m.width * m.height and k.size > m.size for m in others):
        return "largest file"
    if all(k.mtime_ns < m.mtime_ns for m in others):
        return "oldest file"
    return "same pixels, size and age: first by name"


def stats_doc(s: dict, root: str | None, limits: Limits) -> dict:
    """The gallery's counts, model and limits, with the database and model relative to `root`."""
    s = {**s, "db": relative_to(s["db"], root)}
    if "model" in s:
        s["model"] = relative_to(s["model"], root)
    if s.get("fingerprint"):
        fp = Fingerprint.parse(s["fingerprint"])
        s["fingerprint"] = str(replace(fp, name=relative_to(fp.name, root)))
    return {**s, "default_template": DEFAULT_TEMPLATE, "limits": limits.to_dict()}


def relative_to(path: str, root: str | None) -> str:
    """An absolute `path` relative to the gallery root (just its name when the gallery is empty)."""
    if not os.path.isabs(path):
        return path  # a hub id
    return os.path.relpath(path, root) if root else os.path.basename(path)


def iso_time(ns: int) -> str:
    """A capture time (ns since the epoch) as ISO 8601, UTC, to the second."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def browse_doc(page, rows: dict, root: str | None) -> dict:
    """One page of the gallery in browse order (gallery.search.browse.Page) with each row's details."""
    root = root or os.sep
    items = []
    for rid, when in zip(page.ids.tolist(), page.when_ns.tolist()):
        r = rows.get(rid)
        if r is not None:  # deleted since the filter columns were read
            rel = os.path.relpath(r.path, root)
            items.append({"id": rid, "path": rel, "folder": os.path.dirname(rel), "width": r.width,
                          "height": r.height, "size": r.size, "taken": iso_time(when)})
    return {"total": page.total, "cursor": page.cursor, "results": items}


def folders_doc(folders: list, months: list, root: str | None) -> dict:
    """Every folder with images (relative to the gallery's root; '' is the root) and its count of
    images directly in it, and the images per month of capture, newest first."""
    from clipseek.gallery.search.browse import folder_text

    root = root or os.sep
    out = []
    for folder, n in folders:
        rel = os.path.relpath(folder_text(folder), root)
        out.append({"path": "" if rel == "." else rel, "count": n})
    return {"folders": out, "months": [{"month": m, "count": n} for m, n in months]}
