"""Phone photos (HEIC/HEIF through pillow-heif, AVIF through Pillow) and camera RAW (DNG built here;
the embedded preview through rawpy) read wherever an image is read, with EXIF orientation, capture
time and the same limits (pixels checked on the header, before decoding)."""

import io
import struct
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest
from PIL import Image
from raw_images import minimal_dng

from clipseek.core.images import (
    capture_time_ns,
    collect_image_paths,
    full_size,
    image_size,
    open_image,
    open_image_bytes,
)
from clipseek.errors import ImageError

TAKEN = "2021:05:06 07:08:09"
TAKEN_NS = round(datetime(2021, 5, 6, 7, 8, 9).timestamp() * 1e6) * 1000  # local time, as EXIF has it
RED, BLUE = (220, 20, 20), (20, 20, 220)


def _left_red_right_blue(w=40, h=20) -> Image.Image:
    img = Image.new("RGB", (w, h), BLUE)
    img.paste(RED, (0, 0, w // 2, h))
    return img


def _exif(orientation: int, taken: str | None = TAKEN, offset: str | None = None) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    if taken:
        ex.get_ifd(0x8769)[36867] = taken
    if offset:
        ex.get_ifd(0x8769)[36881] = offset
    return ex.tobytes()


def _heif(img: Image.Image, **kw) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    img.save(buf, "HEIF", quality=95, **kw)
    return buf.getvalue()


def _avif(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "AVIF", quality=95, **kw)
    return buf.getvalue()


MAKERS = {".heic": _heif, ".avif": _avif}


def _write(tmp_path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("ext", sorted(MAKERS))
def test_phone_formats_read_turned_upright_with_their_capture_time(tmp_path, ext):
    p = _write(tmp_path, "phone" + ext, MAKERS[ext](_left_red_right_blue(), exif=_exif(6)))
    img = open_image(p)
    assert img.size == (20, 40) and full_size(img) == (20, 40) and image_size(p) == (20, 40)
    top, bottom = np.asarray(img)[2, 10], np.asarray(img)[37, 10]  # orientation 6: the left is on top
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    assert capture_time_ns(p) == capture_time_ns(p.read_bytes()) == TAKEN_NS
    assert open_image_bytes(p.read_bytes(), name="upload").size == (20, 40)  # sniffed, no name


@pytest.mark.parametrize("ext", sorted(MAKERS))
def test_phone_capture_time_with_its_offset(tmp_path, ext):
    p = _write(tmp_path, "o" + ext, MAKERS[ext](Image.new("RGB", (16, 16)), exif=_exif(1, offset="+02:00")))
    assert capture_time_ns(p) == round(datetime.fromisoformat("2021-05-06T07:08:09+02:00").timestamp()) * 10**9


def _claim_size(data: bytes, w: int, h: int) -> bytes:
    """The same file with its `ispe` box (the size HEIF/AVIF headers declare) saying w x h: a header
    whose pixels would be a bomb, over pixel data that cannot even decode to that size."""
    b = bytearray(data)
    i = b.find(b"ispe")
    struct.pack_into(">II", b, i + 8, w, h)
    return bytes(b)


@pytest.mark.parametrize("ext", sorted(MAKERS))
def test_pixel_limit_is_checked_on_the_header_before_decoding(tmp_path, ext, monkeypatch):
    from PIL import ImageFile

    p = _write(tmp_path, "bomb" + ext, _claim_size(MAKERS[ext](Image.new("RGB", (64, 64))), 9000, 9000))
    loads = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1) or real(self))
    with pytest.raises(ImageError, match=r"too many pixels: 9000x9000 exceeds the limit of 64,000,000"):
        open_image(p)
    assert not loads
    if ext == ".heic":  # past Pillow's own ceiling too: still the one reason, with the count
        big = _write(tmp_path, "huge.heic", _claim_size(_heif(Image.new("RGB", (64, 64))), 30000, 30000))
        with pytest.raises(ImageError, match=r"too many pixels: 900,000,000 exceeds"):
            open_image(big)
    assert capture_time_ns(p) is None  # nothing over the limit is looked into


def test_heif_opener_is_registered_lazily_and_named_when_missing(tmp_path):
    p = _write(tmp_path, "phone.heic", _heif(Image.new("RGB", (16, 16))))
    lazy = ("import sys, clipseek.core.images as ci; assert 'pillow_heif' not in sys.modules; "
            f"print(ci.open_image({str(p)!r}).size, 'pillow_heif' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True)
    assert out.stdout.strip() == "(16, 16) True", out.stderr
    missing = ("import sys; sys.modules['pillow_heif'] = None; from clipseek.core.images import open_image\n"
               f"try:\n    open_image({str(p)!r})\nexcept Exception as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", missing], capture_output=True, text=True)
    assert "install pillow-heif" in out.stdout, out.stdout + out.stderr


# ---------------------------------------------------------------- camera RAW
@pytest.mark.parametrize("jpeg", [True, False], ids=["jpeg-preview", "rgb-preview"])
def test_raw_is_read_through_its_preview_turned_by_the_raw_tag(tmp_path, jpeg):
    pytest.importorskip("rawpy")
    p = _write(tmp_path, "camera.dng", minimal_dng(_left_red_right_blue(), orientation=6, taken=TAKEN, jpeg=jpeg))
    img = open_image(p)
    assert img.size == (20, 40) and image_size(p) == (20, 40)
    top, bottom = np.asarray(img)[2, 10], np.asarray(img)[37, 10]
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    assert capture_time_ns(p) == capture_time_ns(p.read_bytes()) == TAKEN_NS


def test_raw_limits_and_unreadable_raw_files(tmp_path):
    pytest.importorskip("rawpy")
    p = _write(tmp_path, "big.dng", minimal_dng(Image.new("RGB", (300, 200))))
    with pytest.raises(ImageError, match=r"too many pixels: 300x200 exceeds the limit of 1,000"):
        open_image(p, max_pixels=1000)
    fake = _write(tmp_path, "not-really.nef", b"II*\x00" + b"\x00" * 64)
    with pytest.raises(ImageError, match=r"cannot read RAW"):
        open_image(fake)
    cr3 = b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + b"\x00" * 32  # a CR3 header, no data
    with pytest.raises(ImageError, match=r"cannot read RAW"):
        open_image_bytes(cr3, name="upload")  # recognised by its bytes, not its name


def test_without_rawpy_a_raw_file_is_skipped_with_how_to_read_it(tmp_path):
    p = _write(tmp_path, "camera.dng", minimal_dng(Image.new("RGB", (40, 20))))
    code = ("import sys; sys.modules['rawpy'] = None; from clipseek.core.images import open_image\n"
            f"try:\n    open_image({str(p)!r})\nexcept Exception as e:\n    print(type(e).__name__, e.reason)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ImageError RAW: install clipseek[raw]", out.stdout + out.stderr


def test_folders_list_phone_and_raw_files(tmp_path):
    names = ["a.HEIC", "b.heif", "c.avif", "d.dng", "e.CR2", "f.cr3", "g.nef", "h.arw", "i.txt"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    assert [p.rsplit("/", 1)[1] for p in collect_image_paths([tmp_path])] == names[:-1]


def test_classify_reads_heic_avif_and_raw(tmp_path, encoder):
    from clipseek.zero_shot import classify

    pytest.importorskip("rawpy")
    _write(tmp_path, "phone.heic", _heif(_left_red_right_blue(), exif=_exif(6)))
    _write(tmp_path, "phone.avif", _avif(_left_red_right_blue(), exif=_exif(8)))
    _write(tmp_path, "camera.dng", minimal_dng(_left_red_right_blue(), orientation=3))
    res = classify(encoder, collect_image_paths([tmp_path]), ["red", "blue"])
    assert not res.skipped and sorted(p.path.rsplit("/", 1)[1] for p in res.predictions) == \
        ["camera.dng", "phone.avif", "phone.heic"]


def test_thumbnails_and_browser_copies_of_heic_and_raw_are_jpegs(tmp_path):
    from clipseek.core.images import open_image
    from clipseek.gallery.thumbs import as_jpeg, media_type, save_thumbnail, thumbnail_places

    pytest.importorskip("rawpy")
    heic = _write(tmp_path, "phone.heic", _heif(_left_red_right_blue(), exif=_exif(6)))
    dng = _write(tmp_path, "camera.dng", minimal_dng(_left_red_right_blue(), orientation=6))
    for i, p in enumerate((heic, dng)):
        img = open_image(str(p))
        assert media_type(img.format) is None  # browsers cannot show it: the page gets a JPEG
        full = Image.open(io.BytesIO(as_jpeg(img)))
        thumb = Image.open(io.BytesIO(save_thumbnail(img, thumbnail_places(str(tmp_path / "thumbs"), f"{i:02d}" * 8))))
        assert (full.format, full.size, thumb.format, thumb.size) == ("JPEG", (20, 40), "JPEG", (20, 40))
