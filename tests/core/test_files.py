"""Only regular files are read: FIFOs, devices, sockets, folders, dangling links and loops are refused
with their reason before anything could block; the size cap holds before and while reading."""

import os
import signal
import socket

import pytest
from PIL import Image

from clipseek.core.files import open_regular, read_regular, stat_regular
from clipseek.core.images import (
    ImageLimits,
    collect_image_paths,
    open_image,
    walk_images,
)
from clipseek.errors import ImageError, UsageError
from helpers import make_image


@pytest.fixture(autouse=True)
def no_hang():
    """A FIFO opened for reading blocks forever: fail the test after 10 s instead."""
    def boom(*_):
        raise TimeoutError("hung")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def odd(tmp_path):
    d = tmp_path / "odd"
    d.mkdir()
    os.mkfifo(d / "fifo.png")
    os.symlink("/dev/zero", d / "zero.png")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "sock.png"))
    s.close()
    (d / "folder").mkdir()
    os.symlink(d / "folder", d / "dirlink.jpg")
    os.symlink(d / "missing.png", d / "dangling.png")
    os.symlink(d / "loop.png", d / "loop.png")
    (d / "empty.png").write_bytes(b"")
    make_image(0).save(d / "good.png")
    os.symlink(d / "good.png", d / "link.png")
    return d


REASONS = {"fifo.png": "not a regular file (a FIFO)", "zero.png": "not a regular file (a character device)",
           "sock.png": "not a regular file (a socket)", "dirlink.jpg": "not a regular file (a directory)",
           "dangling.png": "broken symbolic link", "loop.png": "symbolic link loop",
           "empty.png": "empty file (0 bytes)", "nothing.png": "file not found"}


@pytest.mark.parametrize("name", sorted(REASONS))
def test_every_kind_of_non_file_has_its_reason(odd, name):
    for fn in (stat_regular, open_regular, read_regular, open_image):
        with pytest.raises(ImageError) as e:
            fn(str(odd / name))
        assert e.value.reason.startswith(REASONS[name]) and e.value.path == str(odd / name)


def test_a_link_to_a_regular_file_is_read(odd):
    data, st = read_regular(str(odd / "link.png"))
    assert data == (odd / "good.png").read_bytes() and st.st_size == len(data)
    assert open_image(odd / "link.png").size == (48, 40)


def test_size_cap_is_checked_before_reading(tmp_path):
    p = tmp_path / "sparse.jpg"
    with open(p, "wb") as f:
        f.truncate(300 << 20)  # sparse: reading it would cost 300 MB
    with pytest.raises(ImageError, match=r"file too large: 300.0 MB \(the limit is 256 MB, --max-file-mb\)"):
        read_regular(str(p))
    small = tmp_path / "small.png"
    make_image(1).save(small)
    with pytest.raises(ImageError, match="file too large"):
        open_image(small, max_bytes=100)
    assert read_regular(str(small), max_bytes=small.stat().st_size)[0] == small.read_bytes()


def test_walk_lists_image_named_links_to_folders_and_collect_keeps_explicit_odd_files(odd):
    names = sorted(os.path.basename(p) for p in walk_images(odd))
    assert names == sorted({*REASONS, "good.png", "link.png"} - {"nothing.png"})
    explicit = [str(odd / "fifo.png"), str(odd / "dangling.png")]
    assert collect_image_paths(explicit) == explicit
    with pytest.raises(UsageError, match="path not found"):
        collect_image_paths([str(odd / "nothing.png")])


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(p)
    loads = []
    real = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(self.size) or real(self))
    with pytest.raises(ImageError, match=r"too many pixels: 3000x3000 exceeds the limit of 8,000,000 \(--max-pixels\)"):
        open_image(p, max_pixels=8_000_000)
    assert loads == []  # refused on the header alone
    assert open_image(p, max_pixels=9_000_000).size == (3000, 3000) and loads


def test_limits_from_options():
    assert ImageLimits.from_options() == ImageLimits(64_000_000, 256 << 20)
    assert ImageLimits.from_options(100, 0.5) == ImageLimits(100, 1 << 19)
    with pytest.raises(UsageError, match="--max-pixels"):
        ImageLimits.from_options(0)
    with pytest.raises(UsageError, match="--max-file-mb"):
        ImageLimits.from_options(None, 0)


def test_capture_time_never_decodes_a_bomb(tmp_path, monkeypatch):
    """Pillow's getexif() loads a PNG whose EXIF is not in its header: a 100 MP bomb would be decoded."""
    import sys

    from clipseek.core.images import capture_time_ns

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hardening"))
    from corpus import write_bomb_png

    p = tmp_path / "bomb.png"
    write_bomb_png(os.fsencode(p))
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    assert capture_time_ns(str(p)) is None and capture_time_ns(p.read_bytes()) is None
    assert capture_time_ns(str(tmp_path / "plain.png")) is None  # no EXIF in the header: not looked for
