"""The keeper is the original, flat pictures are no copies, and sizes are the displayed ones."""

import os
import shutil

from conftest import FakeEncoder
from dupes_images import photo
from PIL import Image, ImageDraw, ImageOps

from clipseek.gallery.dupes.groups import find_duplicates
from clipseek.gallery.dupes.keeper import has_copy_marker
from clipseek.gallery.dupes.phash import phash_hex
from clipseek.gallery.store import Store
from clipseek.gallery.sync import index_folders


def _groups(tmp_path, folder):
    with Store.open(str(tmp_path / "g.db")) as s:
        index_folders(s, FakeEncoder(), [str(folder)])
        return find_duplicates(s)


def test_translucent_pngs_are_not_copies_of_each_other(tmp_path):
    d = tmp_path / "logos"
    d.mkdir()
    for i in range(6):  # six different shapes: white or faint on a transparent canvas, blank on white
        img = Image.new("RGBA", (256, 160), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        x = 20 + 30 * i
        fill = (255, 255, 255, 255) if i < 4 else (40 * i, 20, 200, 3)
        (draw.ellipse if i % 2 else draw.rectangle)((x, 20 + 10 * i, x + 60, 120), fill=fill)
        img.save(d / f"logo{i}.png")
    assert {phash_hex(str(p)) for p in d.iterdir()} == {""}  # not comparable
    assert _groups(tmp_path, d) == []


def _exif(orientation=1, make="Camera", taken="2021:05:01 10:00:00"):
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    if make:
        exif[0x010F] = make
    if taken:
        exif.get_ifd(0x8769)[36867] = taken
    return exif


def test_the_original_is_kept_over_an_exif_rotated_resave(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    photo(3).resize((320, 200)).save(d / "IMG_0001.jpg", quality=85, exif=_exif(orientation=6))
    with Image.open(d / "IMG_0001.jpg") as im:
        ImageOps.exif_transpose(im).save(d / "IMG_0001-edit.jpg", quality=98)  # larger, no EXIF
    assert os.path.getsize(d / "IMG_0001-edit.jpg") > os.path.getsize(d / "IMG_0001.jpg")
    (g,) = _groups(tmp_path, d)
    assert os.path.basename(g.keep.path) == "IMG_0001.jpg"
    assert [(m.width, m.height) for m in g.members] == [(200, 320), (200, 320)]  # as displayed


def test_the_name_without_a_copy_marker_is_kept(tmp_path):
    d = tmp_path / "inbox"
    d.mkdir()
    photo(1).save(d / "china.jpg", quality=90)
    shutil.copy(d / "china.jpg", d / "china (1).jpg")
    os.utime(d / "china (1).jpg", ns=(10**18, 10**18))
    os.utime(d / "china.jpg", ns=(2 * 10**18, 2 * 10**18))  # the copy is even the older file
    (g,) = _groups(tmp_path, d)
    assert os.path.basename(g.keep.path) == "china.jpg"


def test_copy_markers():
    assert all(map(has_copy_marker, ["a (1).jpg", "a copy.png", "a - Copy.jpg", "a_1.jpg", "a copy 2.jpg"]))
    assert not any(map(has_copy_marker, ["china.jpg", "IMG_1234.jpg", "copyright.png"]))
