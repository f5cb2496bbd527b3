"""The bodies the server answers with, shaped from the library's results.

No absolute path of the server's disk leaves through them: image paths, the database and a local
model are named relative to the gallery's root folder (the common root of its images).
"""

from __future__ import annotations

import os
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
           first=None) -> dict:
    """On the model thread: the query's vector, the search within the filter, the response."""
    results = g.search_vector(g.query_vector(terms, known, first), k, where=opts.where,
                              relevant=opts.relevant)
    doc = {**doc, "k": k, "add": [t.describe() for t in opts.add],
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


def dupes_doc(groups: list, root: str | None, similar: bool, threshold: float, limit: int) -> dict:
    """Duplicate groups with paths relative to `root`; at most `limit` groups, the largest first."""
    root = root or os.sep
    rel = (lambda p: os.path.relpath(p, root) if p else p)
    shown = sorted(groups, key=lambda g: -len(g.members))[:limit]
    return {"similar": similar, "threshold": threshold, "total_groups": len(groups),
            "extras": sum(len(g.extras) for g in groups),
            "groups": [{"keep": rel(g.keep.path), "members": [
                {**m.to_dict(), "path": rel(m.path), "link": rel(m.link)} for m in g.members]}
                for g in shown]}


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
