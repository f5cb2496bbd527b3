"""The gallery's folders (its roots): the folders `index` was given, recorded in the database.

The server serves only files that lie inside one of them once links are resolved (`server.files`).
`index DIR` records DIR before it writes a row of it; `index --from-parquet` records the deepest
folder holding the rows it loaded. A database that recorded none (made before roots were recorded,
or written by other means) has one: the deepest folder holding all its files (`Store.common_root`),
which is also what the first recording starts from, so its existing rows stay inside.

They are kept in the meta table under `roots`, a JSON list of absolute paths (names that are not
UTF-8 as `\\udcXX` escapes), and only ever grow: a folder indexed once stays the gallery's.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

from clipseek.gallery.store import Store

KEY = "roots"


def _parse(text: str | None) -> list[str] | None:
    """The recorded list, or None when nothing usable is recorded (absent, or not a list of paths)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    roots = [r for r in value if isinstance(r, str) and os.path.isabs(r) and "\0" not in r]
    return roots or None


def gallery_roots(store: Store) -> list[str]:
    """The folders whose files the gallery holds: the recorded ones, else its files' common folder."""
    recorded = _parse(store.meta(KEY))
    if recorded is not None:
        return recorded
    common = store.common_root()
    return [common] if common else []


def record_roots(store: Store, dirs: Iterable[str]) -> None:
    """Add absolute folders `dirs` to the gallery's roots (one transaction)."""
    with store.transaction():
        roots = gallery_roots(store)
        new = [d for d in dict.fromkeys(os.path.abspath(d) for d in dirs) if d not in roots]
        if roots + new and (new or _parse(store.meta(KEY)) is None):
            store.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                               "SET value = excluded.value", (KEY, json.dumps(roots + new)))


def unrooted_folder(store: Store) -> str | None:
    """The deepest folder holding every file that lies outside all the gallery's roots (None: none
    does). `index --from-parquet` records it after loading rows from anywhere."""
    from clipseek.core.paths import from_db

    sep = os.fsencode(os.sep)
    inside = tuple(os.fsencode(r.rstrip(os.sep)) + sep for r in gallery_roots(store))
    prefix: bytes | None = None
    for (value,) in store.conn.execute("SELECT path FROM files"):
        name = os.fsencode(from_db(value))
        if not name.startswith(inside):
            prefix = name if prefix is None else os.path.commonprefix([prefix, name])
    if prefix is None:
        return None
    return os.fsdecode(prefix[:prefix.rfind(sep) + 1].rstrip(sep) or sep)
