"""The first step of an index run: which folders (`check_roots`), which image and video files are in
them (`scan`: size and mtime from one lstat each, links followed inside the folders), and the rule for
links that lead out of them (`links_rule`, recorded in the database)."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Sequence

from clipseek.core.images import one_or_many
from clipseek.core.video.names import walk_media
from clipseek.errors import UsageError

if TYPE_CHECKING:
    from clipseek.gallery.store import Store

FOLLOW_LINKS = "follow_links"  # meta key: "1" when links to outside the folders are followed


def check_roots(dirs) -> list[str]:
    dirs = one_or_many(dirs)
    if not dirs:
        raise UsageError("give at least one folder to index")
    roots = []
    for d in dirs:
        p = os.path.abspath(os.path.expanduser(os.fsdecode(d)))
        if not os.path.exists(p):
            raise UsageError(f"folder not found: {d}")
        if not os.path.isdir(p):
            raise UsageError(f"not a folder: {d}")
        if not os.access(p, os.R_OK | os.X_OK):
            raise UsageError(f"cannot read folder: {d}")
        roots.append(p)
    return roots


def _inside(real: str, real_roots: Sequence[str]) -> bool:
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in real_roots)


def scan(roots: Sequence[str], follow_links: bool = True
         ) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Every image- or video-named entry under the roots -> (size, mtime_ns), links followed: (found, outside).
    A dangling link or a link loop is kept with the link's own size and mtime, so the read stage
    reports it (and a re-run skips it until it changes); a path too long to stat (PATH_MAX) is kept
    with (0, 0), likewise. Unless `follow_links`, a link to a regular file outside every root goes to
    `outside` instead (never read). A non-link costs one lstat."""
    real_roots = [os.path.realpath(r) for r in roots]
    found: dict[str, tuple[int, int]] = {}
    outside: dict[str, tuple[int, int]] = {}
    for root in roots:
        for path in walk_media(root):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue  # vanished between listing and stat
            except OSError:  # a path too long to stat (PATH_MAX): the read stage says so
                found[path] = (0, 0)
                continue
            into = found
            if stat.S_ISLNK(st.st_mode):
                try:
                    st = os.stat(path)
                except OSError:
                    pass  # dangling or a loop: the read stage says which
                else:
                    if not follow_links and stat.S_ISREG(st.st_mode) and \
                            not _inside(os.path.realpath(path), real_roots):
                        into = outside
            into[path] = (st.st_size, st.st_mtime_ns)
    return found, outside


def links_rule(store: Store, follow_links: bool | None) -> bool:
    """Whether links to outside the folders are followed: `follow_links` when given (and recorded in
    the store when it changes the rule), else the rule recorded (off when none is)."""
    recorded = store.meta(FOLLOW_LINKS) == "1"
    if follow_links is None or bool(follow_links) == recorded:
        return recorded
    store.set_meta({FOLLOW_LINKS: "1" if follow_links else "0"})
    return bool(follow_links)
