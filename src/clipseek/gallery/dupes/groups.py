"""Groups of duplicate images in a gallery, each with a suggested keeper and why it was grouped.

Three kinds of link, strongest first:
  identical  the same bytes (the store's content hash);
  phash      the same picture re-encoded, resized or lightly cropped: perceptual hashes at most
             `phash_distance` bits apart (gallery/dupes/phash.py), confirmed by a CLIP cosine >= `confirm`;
  similar    only when asked (`similar=True`): CLIP cosine >= `threshold`, semantically near-identical
             shots such as bursts.
Images linked directly or through others form one group (connected components).

Why both signals for copies, measured by benchmarks/dupes_bench.py --part quality (docs/commands/dupes.md): on 300
synthetic shape pictures + 400 copies, pHash alone (<= 12 bits) found every byte, JPEG-60 and half-size
copy and 76% of the 5% crops, but joined distinct pictures whose flat or striped backgrounds dominate
the hash (precision of the grouped pairs 0.26); CLIP cosine alone (the bundled 64-px model) joined
distinct pictures of one class at every threshold that kept the crops (0.19 at 0.9; 0.64 at 0.99, where
it keeps 44% of the crops); pHash proposing and CLIP confirming (>= 0.9: one dot product per candidate
pair) gave precision 0.78 at recall 0.89, and 1.00 / 0.93 on photo-like pictures. The keeper is the
original (gallery/dupes/keeper.py: full quality, then earliest capture, then a name without copy
markers, then pixels). Nothing here deletes or moves a file.

Before a move (`movable_groups`, for `dupes --move-extras-to`) the rows are not trusted: each file of
each group is read again and must be a regular file inside the gallery's folder (links resolved) with
the size, time and content hash of its row, and decode as an image; whatever fails is dropped with its
reason (`Skipped`), and the groups are formed again from what is left, with fresh pHashes, so a file
changed since it was indexed is neither moved nor kept in place of a copy it no longer is. After the
move the moved files' rows are removed (`forget_moved`): `dupes` and `search` no longer show them, and
`undo` puts the files back for the next `index` to add (from the keeper's row, no re-embedding).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from clipseek.core.organise import Transfer, plan_transfers
from clipseek.errors import ImageError, Skipped, UsageError
from clipseek.gallery.dupes.similar import cosine_pairs
from clipseek.gallery.dupes.keeper import choose_keeper, shown_facts
from clipseek.gallery.dupes.phash import DRAFT_SIZE, PHASH_BITS, all_phashes, hamming_pairs, phash_of

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
    return _groups(store, _links(store, similar, threshold, phash_distance, confirm, fill))


def _links(store, similar: bool, threshold: float, phash_distance: int, confirm: float | None,
           fill: bool) -> _Links:
    """The links between the store's rows, from what the rows say."""
    links = _Links()
    for ids in store.same_content_ids():
        arr = np.array(ids, dtype=np.int64)
        links.add(arr[:1].repeat(len(arr) - 1), arr[1:], "identical", np.ones(len(arr) - 1))
    ids, codes = all_phashes(store, fill)
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
    return links


def pair_cosines(store, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine of each pair (a[k], b[k]) of store row ids, from the stored vectors."""
    rows = store.get_rows_with_vectors(np.unique(np.concatenate([a, b])).tolist())
    vec = {i: v for i, (_, v) in rows.items()}  # a row whose vector is unusable pairs with nothing
    return np.array([float(vec[x] @ vec[y]) if x in vec and y in vec else -1.0
                     for x, y in zip(a.tolist(), b.tolist())], np.float32)


def _groups(store, links: _Links, sizes: dict[int, tuple[int, int]] | None = None) -> list[DupeGroup]:
    """Groups from links; `sizes`: each row's pixel size as read now (else read from the headers)."""
    comps = links.components()
    rows = store.get_rows([i for c in comps for i in c])
    facts = {i: shown_facts(r) for i, r in rows.items()}
    rows = {i: dataclasses.replace(r, width=sizes[i][0], height=sizes[i][1]) if sizes and i in sizes
            else dataclasses.replace(r, width=facts[i].width or r.width, height=facts[i].height or r.height)
            for i, r in rows.items()}
    groups = []
    for comp in comps:
        members = [rows[i] for i in comp if i in rows]
        if len(members) < 2:
            continue
        keep = choose_keeper(members, facts)
        out = [_member(keep, "keep", 1.0, "")]
        for r in members:
            if r.id != keep.id:
                reason, score, other = _why(links, keep, r)
                out.append(_member(r, reason, score, rows[other].path))
        out[1:] = sorted(out[1:], key=lambda m: (RANK[m.reason], -m.score, m.path))
        groups.append(DupeGroup(out[0], tuple(out)))
    return sorted(groups, key=lambda g: g.keep.path)


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


# ---- before moving: every file read again ---------------------------------------------------------
@dataclass(frozen=True)
class Fresh:
    """A group member's file as read now: its content hash, pHash and pixel size."""

    hash: str
    phash: int | None   # None: nearly uniform, not comparable
    width: int
    height: int


def recheck(row, root: str) -> Fresh | str:
    """The file of store row `row` as it is now, or why it must not be moved (nor kept as a keeper):
    not a regular file inside `root` (links resolved), another size, time or content than its row's,
    or not an image."""
    from clipseek.core.files import read_regular, stat_regular
    from clipseek.core.images import full_size, open_image

    real, base = os.path.realpath(row.path), os.path.realpath(root)
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        return f"it lies outside the gallery's folder {root} (a link to {real})"
    try:
        st = stat_regular(row.path, max_bytes=1 << 62)
        if (st.st_size, st.st_mtime_ns) != (row.size, row.mtime_ns):
            return "changed since it was indexed (its size or time differ); run clipseek index first"
        data, _ = read_regular(row.path, max(row.size, 1))
        if hashlib.blake2b(data, digest_size=16).hexdigest() != row.hash:
            return "its content is not what was indexed (other bytes); run clipseek index first"
        img = open_image(row.path, data=data, draft_size=DRAFT_SIZE)
    except ImageError as e:
        return e.reason
    code = phash_of(img)
    return Fresh(row.hash, int(code, 16) if code else None, *full_size(img))


def movable_groups(store, similar: bool = False, threshold: float = DEFAULT_SIMILAR,
                   phash_distance: int = DEFAULT_PHASH_DISTANCE, confirm: float | None = DEFAULT_CONFIRM,
                   workers: int | None = None) -> tuple[list[DupeGroup], list[Skipped]]:
    """`find_duplicates`, with every file of every group read again (`recheck`): (the groups formed
    from the files that passed, the files dropped and why)."""
    check_settings(threshold, phash_distance)
    old = _links(store, similar, threshold, phash_distance, confirm, fill=True)
    comps = old.components()
    rows = store.get_rows([i for c in comps for i in c])
    root = store.common_root() or os.sep
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        fresh = dict(zip(rows, pool.map(lambda r: recheck(r, root), rows.values())))
    ok = {i: f for i, f in fresh.items() if isinstance(f, Fresh)}
    links = _Links()
    for comp in comps:
        _relink(links, store, [i for i in comp if i in ok], ok, phash_distance, confirm)
    sim = [(x, y, s) for (x, y), (why, s) in old.best.items() if why == "similar" and x in ok and y in ok]
    if sim:  # cosines of vectors whose content was just verified
        x, y, s = (np.array(col) for col in zip(*sim))
        links.add(x, y, "similar", s)
    dropped = [Skipped(rows[i].path, f) for i, f in fresh.items() if isinstance(f, str)]
    return _groups(store, links, {i: (f.width, f.height) for i, f in ok.items()}), \
        sorted(dropped, key=lambda s: s.path)


def _relink(links: _Links, store, ids: list[int], fresh: dict[int, Fresh], phash_distance: int,
            confirm: float | None) -> None:
    """The links among the files of one group that passed `recheck`, from what was read now: the
    same content hash, and fresh pHashes a few bits apart (confirmed by cosine)."""
    if len(ids) < 2:
        return
    by_hash: dict[str, list[int]] = {}
    for i in ids:
        by_hash.setdefault(fresh[i].hash, []).append(i)
    for same in by_hash.values():
        arr = np.array(same, np.int64)
        links.add(arr[:1].repeat(len(arr) - 1), arr[1:], "identical", np.ones(len(arr) - 1))
    arr = np.array([x for x in ids if fresh[x].phash is not None], np.int64)
    i, j, d = hamming_pairs(np.array([fresh[x].phash for x in arr.tolist()], np.uint64), phash_distance)
    a, b = arr[i], arr[j]
    if confirm is not None and len(a):
        keep = pair_cosines(store, a, b) >= confirm
        a, b, d = a[keep], b[keep], d[keep]
    links.add(a, b, "phash", 1.0 - d / PHASH_BITS)


def forget_moved(store, paths: Sequence[str]) -> None:
    """Remove the rows of files moved out of the gallery, in one transaction."""
    if paths:
        with store.transaction():
            store.remove_paths(paths)
