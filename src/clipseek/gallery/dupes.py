"""Groups of duplicate images in a gallery, each with a suggested keeper and why it was grouped.

Three kinds of link, strongest first:
  identical  the same bytes (the store's content hash);
  phash      the same picture re-encoded, resized or lightly cropped: perceptual hashes at most
             `phash_distance` bits apart (gallery/phash.py), confirmed by a CLIP cosine >= `confirm`;
  similar    only when asked (`similar=True`): CLIP cosine >= `threshold`, semantically near-identical
             shots such as bursts.
Images linked directly or through others form one group (connected components).

Why both signals for copies, measured by benchmarks/dupes_bench.py --part quality (README): on 300
synthetic shape pictures + 400 copies, pHash alone (<= 12 bits) found every byte, JPEG-60 and half-size
copy and 76% of the 5% crops, but joined distinct pictures whose flat or striped backgrounds dominate
the hash (precision of the grouped pairs 0.26); CLIP cosine alone (the bundled 64-px model) joined
distinct pictures of one class at every threshold that kept the crops (0.19 at 0.9; 0.64 at 0.99, where
it keeps 44% of the crops); pHash proposing and CLIP confirming (>= 0.9: one dot product per candidate
pair) gave precision 0.78 at recall 0.89, and 1.00 / 0.93 on photo-like pictures. The keeper is the
largest image (pixels, then bytes), then the oldest file. Nothing here deletes or moves a file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from clipseek.core.organise import Transfer, plan_transfers
from clipseek.errors import UsageError
from clipseek.gallery.pairs import cosine_pairs
from clipseek.gallery.phash import PHASH_BITS, fill_phashes, hamming_pairs

DEFAULT_PHASH_DISTANCE = 12     # bits of 64
DEFAULT_CONFIRM = 0.9           # CLIP cosine a pHash pair must also reach to count as a copy
DEFAULT_SIMILAR = 0.95          # CLIP cosine for --similar
RANK = {"keep": 0, "identical": 1, "phash": 2, "similar": 3}


@dataclass(frozen=True)
class Member:
    id: int
    path: str
    size: int          # bytes
    width: int
    height: int
    mtime_ns: int
    reason: str        # "keep" (the suggested keeper), "identical", "phash" or "similar"
    score: float       # identical 1.0; phash 1 - bits/64; similar: the cosine
    link: str = ""     # the member this one is linked to by `reason` (the keeper when directly)

    def to_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "reason": self.reason, "score": round(self.score, 4),
                "link": self.link, "size": self.size, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class DupeGroup:
    keep: Member
    members: tuple[Member, ...]   # the keeper first

    @property
    def extras(self) -> tuple[Member, ...]:
        return self.members[1:]

    def to_dict(self) -> dict:
        return {"keep": self.keep.path, "members": [m.to_dict() for m in self.members]}


def _stronger(a: tuple[str, float], b: tuple[str, float]) -> bool:
    return (RANK[a[0]], -a[1]) < (RANK[b[0]], -b[1])


class _Links:
    """Edges between store row ids, each with its strongest reason and score."""

    def __init__(self):
        self.best: dict[tuple[int, int], tuple[str, float]] = {}
        self.node_best: dict[int, tuple[str, float, int]] = {}  # node -> its strongest link

    def add(self, a: np.ndarray, b: np.ndarray, reason: str, scores: np.ndarray) -> None:
        for x, y, s in zip(a.tolist(), b.tolist(), np.asarray(scores, np.float64).tolist()):
            key = (x, y) if x < y else (y, x)
            old = self.best.get(key)
            if old is None or _stronger((reason, s), old):
                self.best[key] = (reason, s)
            for node, other in ((x, y), (y, x)):
                if node not in self.node_best or _stronger((reason, s), self.node_best[node][:2]):
                    self.node_best[node] = (reason, s, other)

    def components(self) -> list[list[int]]:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        if not self.best:
            return []
        nodes = np.unique(np.array(list(self.best), dtype=np.int64).ravel())
        pos = {int(n): i for i, n in enumerate(nodes)}
        a = np.array([pos[x] for x, _ in self.best])
        b = np.array([pos[y] for _, y in self.best])
        graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(nodes), len(nodes)))
        _, label = connected_components(graph, directed=False)
        order = np.argsort(label, kind="stable")
        cuts = np.flatnonzero(np.diff(label[order])) + 1
        return [nodes[g].tolist() for g in np.split(order, cuts)]


def check_settings(threshold: float, phash_distance: int) -> None:
    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"--threshold must be a cosine in (0, 1], not {threshold}")
    if not 0 <= phash_distance < PHASH_BITS // 2:
        raise UsageError(f"--phash-distance must be 0 to {PHASH_BITS // 2 - 1} bits, not {phash_distance}")


def find_duplicates(store, similar: bool = False, threshold: float = DEFAULT_SIMILAR,
                    phash_distance: int = DEFAULT_PHASH_DISTANCE, confirm: float | None = DEFAULT_CONFIRM,
                    fill: bool = True) -> list[DupeGroup]:
    """The gallery's duplicate groups, sorted by the keeper's path.

    pHash pairs count only if their CLIP cosine is also >= `confirm` (None: pHash alone); `similar`
    adds pairs with cosine >= `threshold`. `fill` first computes missing perceptual hashes (stored)."""
    check_settings(threshold, phash_distance)
    if fill:
        fill_phashes(store)
    links = _Links()
    for ids in store.same_content_ids():
        arr = np.array(ids, dtype=np.int64)
        links.add(arr[:1].repeat(len(arr) - 1), arr[1:], "identical", np.ones(len(arr) - 1))
    ids, codes = store.phashes()
    i, j, d = hamming_pairs(codes, phash_distance)
    a, b, d = ids[i], ids[j], d
    if confirm is not None and len(a):
        keep = pair_cosines(store, a, b) >= confirm
        a, b, d = a[keep], b[keep], d[keep]
    links.add(a, b, "phash", 1.0 - d / PHASH_BITS)
    if similar:
        vids, vecs = store.all_vectors()
        i, j, s = cosine_pairs(vecs, threshold)
        links.add(vids[i], vids[j], "similar", s)
    return _groups(store, links)


def pair_cosines(store, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine of each pair (a[k], b[k]) of store row ids, from the stored vectors."""
    rows = store.get_rows_with_vectors(np.unique(np.concatenate([a, b])).tolist())
    vec = {i: v for i, (_, v) in rows.items()}  # a row whose vector is unusable pairs with nothing
    return np.array([float(vec[x] @ vec[y]) if x in vec and y in vec else -1.0
                     for x, y in zip(a.tolist(), b.tolist())], np.float32)


def _groups(store, links: _Links) -> list[DupeGroup]:
    comps = links.components()
    rows = {i: _true_size(r) for i, r in store.get_rows([i for c in comps for i in c]).items()}
    groups = []
    for comp in comps:
        members = [rows[i] for i in comp if i in rows]
        if len(members) < 2:
            continue
        keep = max(members, key=lambda r: (r.width * r.height, r.size, -r.mtime_ns, _neg(r.path)))
        out = [_member(keep, "keep", 1.0, "")]
        for r in members:
            if r.id != keep.id:
                reason, score, other = _why(links, keep, r)
                out.append(_member(r, reason, score, rows[other].path))
        out[1:] = sorted(out[1:], key=lambda m: (RANK[m.reason], -m.score, m.path))
        groups.append(DupeGroup(out[0], tuple(out)))
    return sorted(groups, key=lambda g: g.keep.path)


def _true_size(row):
    """The row with the file's own pixel size, read from its header (the store may hold the size a
    JPEG was draft-decoded at for the model); the stored size if the file cannot be opened."""
    from PIL import Image

    from clipseek.core.files import open_regular

    try:  # a regular file only: a FIFO now where an image was indexed must not block
        f, _ = open_regular(row.path)
        with f, Image.open(f) as img:
            w, h = img.size
    except Exception:
        return row
    return dataclasses.replace(row, width=w, height=h)


def _neg(path: str) -> tuple:
    return tuple(-ord(c) for c in path)  # ties: the path that sorts first wins


def _member(r, reason: str, score: float, link: str) -> Member:
    return Member(r.id, r.path, r.size, r.width, r.height, r.mtime_ns, reason, float(score), link)


def _why(links: _Links, keep, r) -> tuple[str, float, int]:
    """Why `r` is in the group: its strongest link (the same bytes, a close pHash, a high cosine), to
    the keeper when that link is as strong as any: (reason, score, linked id)."""
    if r.hash == keep.hash:
        return "identical", 1.0, keep.id
    direct = links.best.get((min(r.id, keep.id), max(r.id, keep.id)))
    best = links.node_best[r.id]
    return (*direct, keep.id) if direct and not _stronger(best[:2], direct) else best


def extras_plan(groups: list[DupeGroup], out_dir: str, root: str | None) -> list[Transfer]:
    """Every non-keeper to OUT/<its path relative to the gallery's root folder>."""
    base = root or os.sep
    rows = [(m.path, os.path.relpath(m.path, base), f"duplicate of {g.keep.path} ({m.reason})", m.score)
            for g in groups for m in g.extras]
    return plan_transfers(rows, out_dir)
