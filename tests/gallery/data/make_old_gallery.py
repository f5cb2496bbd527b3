"""Make tests/gallery/data/vN/: a gallery database as a release with schema N wrote it, and its three
photos. Run with that release's code first on the path (v1: main at bb6cd71; v2: main at dc3e951):

    PYTHONPATH=/path/to/old/src:tests python tests/gallery/data/make_old_gallery.py

The database names its files under ROOT; test_migration.py copies the photos elsewhere and moves the
rows' paths there (plain data, not schema) before opening it with the current code.
"""

import os
import shutil
import sqlite3
import sys

from PIL import Image

ROOT = "/tmp/clipseek-v1/photos"
MTIME_NS = 1_577_880_000 * 10 ** 9  # 2020-01-01 12:00 UTC: every photo's mtime


def photos(root: str) -> None:
    os.makedirs(os.path.join(root, "trip"), exist_ok=True)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2019:07:14 09:30:00"  # DateTimeOriginal
    Image.new("RGB", (64, 48), (200, 40, 40)).save(os.path.join(root, "trip", "beach.jpg"), exif=exif)
    Image.new("RGB", (40, 60), (40, 40, 200)).save(os.path.join(root, "tower.jpg"))  # no EXIF
    Image.new("RGB", (50, 50), (40, 200, 40)).save(os.path.join(root, "tile.png"))
    for dirpath, _, names in os.walk(root):
        for n in names:
            os.utime(os.path.join(dirpath, n), ns=(MTIME_NS, MTIME_NS))


def main() -> None:
    import clipseek
    from clipseek.gallery.store import SCHEMA_VERSION
    from helpers import FakeEncoder

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"v{SCHEMA_VERSION}")
    shutil.rmtree(os.path.dirname(ROOT), ignore_errors=True)
    photos(ROOT)
    db = os.path.join(os.path.dirname(ROOT), "gallery.db")
    with clipseek.Gallery(db, FakeEncoder()) as g:
        g.index([ROOT])
    sqlite3.connect(db).execute("PRAGMA journal_mode=DELETE").close()  # one file, no -wal beside it
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(ROOT, os.path.join(out, "photos"))
    shutil.copy(db, os.path.join(out, "gallery.db"))
    print("wrote", out, file=sys.stderr)


if __name__ == "__main__":
    main()
