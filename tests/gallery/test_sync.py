"""The indexer reads each file once: the hash and the pixels come from the same bytes."""

import builtins
import os
from collections import Counter

import numpy as np
import pytest

from clipseek.core import images
from clipseek.core.images import open_image
from clipseek.gallery.store import Store, file_hash
from clipseek.gallery.sync import index_folders
from helpers import make_image


@pytest.fixture
def opens(monkeypatch, tmp_path):
    """Counts every open() and os.open() of a file under tmp_path/imgs (Pillow opens files through
    open(); clipseek's reader through os.open(), non-blocking)."""
    counts: Counter = Counter()
    folder = str(tmp_path / "imgs")

    def counting(real):
        def counting_open(file, *a, **k):
            if isinstance(file, (str, os.PathLike)) and os.fspath(file).startswith(folder):
                counts[os.fspath(file)] += 1
            return real(file, *a, **k)
        return counting_open
    monkeypatch.setattr(builtins, "open", counting(builtins.open))
    monkeypatch.setattr(os, "open", counting(os.open))
    return counts


@pytest.fixture
def decodes(monkeypatch):
    """The path of every image decoded (every decode goes through `core.images._decode`)."""
    seen: list[str] = []
    real = images._decode
    monkeypatch.setattr(images, "_decode", lambda src, p, *a: seen.append(p) or real(src, p, *a))
    return seen


def make_folder(d, n=12):
    (d / "sub").mkdir(parents=True)
    for i in range(n):
        make_image(i, (40 + i, 36)).save(d / ("sub" if i % 2 else ".") / f"i{i}.png")


def test_fresh_folder_reads_every_image_once(tmp_path, encoder, opens, decodes):
    d = tmp_path / "imgs"
    make_folder(d)
    (d / "bad.png").write_text("not a png")
    opens.clear()
    with Store.open(str(tmp_path / "g.db")) as s:
        r = index_folders(s, encoder, [str(d)], batch_size=5, workers=2)
        assert (r.added, r.total, len(r.skipped)) == (12, 12, 1)
        files = {os.path.join(root, f) for root, _, fs in os.walk(d) for f in fs}
        assert dict(opens) == {f: 1 for f in files}  # one read per image, the bad one included
        assert sorted(decodes) == sorted(files)
        row = s.rows_under([str(d)])[str(d / "i0.png")]  # the hash is that of the bytes decoded
        assert row.hash == file_hash(str(d / "i0.png"))
        assert np.allclose(s.vector(row.id), encoder.encode_images([open_image(d / "i0.png")])[0], atol=1e-5)


def test_moves_copies_and_touches_are_read_once_and_not_decoded(tmp_path, encoder, opens, decodes):
    d = tmp_path / "imgs"
    make_folder(d)
    with Store.open(str(tmp_path / "g.db")) as s:
        index_folders(s, encoder, [str(d)], batch_size=4)
        os.rename(d / "i0.png", d / "sub" / "moved.png")
        make_image(2, (42, 36)).save(d / "copy_of_i2.png")
        os.utime(d / "i4.png", (1, 1))
        make_image(100).save(d / "new.png")
        opens.clear()
        decodes.clear()
        r = index_folders(s, encoder, [str(d)], batch_size=4)
        assert (r.moved, r.added, r.removed, r.unchanged) == (1, 2, 0, 11)
        read = {str(d / "sub" / "moved.png"), str(d / "copy_of_i2.png"), str(d / "i4.png"), str(d / "new.png")}
        assert dict(opens) == {p: 1 for p in read}  # unchanged files are not read at all
        assert decodes == [str(d / "new.png")]  # the rest matched rows of the folder by content


def test_swapped_contents_keep_the_right_vectors(tmp_path, encoder):
    d = tmp_path / "imgs"
    make_folder(d, n=4)
    a, b = d / "i0.png", d / "i2.png"
    with Store.open(str(tmp_path / "g.db")) as s:
        index_folders(s, encoder, [str(d)])
        os.rename(a, d / "tmp.png")
        os.rename(b, a)
        os.rename(d / "tmp.png", b)
        os.utime(a, (5, 5))
        os.utime(b, (6, 6))
        r = index_folders(s, encoder, [str(d)])
        assert r.total == 4 and r.removed == 0
        rows = s.rows_under([str(d)])
        for p in (a, b):
            want = encoder.encode_images([open_image(p)])[0]
            assert np.allclose(s.vector(rows[str(p)].id), want, atol=1e-5), p


def test_skips_caused_by_the_limits_are_retried_so_a_higher_limit_takes_effect(tmp_path, fake_encoder):
    from clipseek.core.images import ImageLimits

    d = tmp_path / "imgs"
    d.mkdir()
    make_image(0, (40, 30)).save(d / "small.png")
    make_image(1, (200, 100)).save(d / "big.png")
    (d / "bad.png").write_text("not a png")
    with Store.open(str(tmp_path / "g.db")) as s:
        r = index_folders(s, fake_encoder, [str(d)], limits=ImageLimits(max_pixels=10_000))
        assert (r.added, sorted(os.path.basename(k.path) for k in r.skipped)) == (1, ["bad.png", "big.png"])
        r = index_folders(s, fake_encoder, [str(d)], limits=ImageLimits(max_pixels=10_000))
        assert (r.added, r.still_skipped, [os.path.basename(k.path) for k in r.skipped]) == (0, 1, ["big.png"])
        r = index_folders(s, fake_encoder, [str(d)])  # the default limit: big.png is now indexed
        assert (r.added, r.still_skipped, r.skipped, r.total) == (1, 1, [], 2)


def test_a_gone_skip_record_is_not_counted_as_a_removed_image(tmp_path, fake_encoder):
    from conftest import image_folder

    d = image_folder(tmp_path / "p", 2, broken=True)
    with Store.open(str(tmp_path / "g.db")) as s:
        assert len(index_folders(s, fake_encoder, [str(d)]).skipped) == 1
        os.remove(d / "broken.jpg")
        os.remove(d / "p0.png")
        again = index_folders(s, fake_encoder, [str(d)])
    assert again.removed == 1 and again.total == 1  # p0.png; broken.jpg never was an image
