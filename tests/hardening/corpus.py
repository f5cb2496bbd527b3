"""The hostile corpus of issue 16, generated on the fly (no committed binaries).

`build_corpus(root)` writes good images under names no tool expects (bytes that are not UTF-8, a
newline, a tab, a leading quote, Rich markup, non-ASCII) next to every kind of bad file (FIFO, device,
socket, directory named like an image, dangling symlink, symlink loop, empty, truncated, not an image,
a decompression bomb, a file over the size cap) and returns what each command must say about them.
"""

from __future__ import annotations

import os
import socket
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

# name (bytes) -> expected reason fragment, for the bad files
BAD = {
    b"fifo.png": "not a regular file (a FIFO)",
    b"zero.png": "not a regular file (a character device)",
    b"sock.png": "not a regular file (a socket)",
    b"dirlink.jpg": "not a regular file (a directory)",
    b"dangling.png": "broken symbolic link",
    b"loop.png": "symbolic link loop",
    b"empty.png": "empty file",
    b"trunc.png": "corrupt or truncated",
    b"garbage.jpg": "not an image",
    b"bomb.png": "too many pixels",
    b"huge.jpg": "file too large",
}
# good images under awkward names (bytes); each one must be processed and round-trip exactly
GOOD = [b"plain0.png", b"plain1.jpg", b"bad\xff\xfename.png", b"new\nline.png", b"tab\there.png",
        b'"quoted.png', b"[bold]markup.png", "café ☕.png".encode(), b"sub/deep.png",
        b"back\\slash.png", b"link-good.png"]
BOMB_SIDE = 10_000          # 100 MP: over the 64 MP default, under Pillow's own bomb limit
HUGE_BYTES = 300 << 20      # sparse: over the 256 MB default cap, no disk used


@dataclass
class Corpus:
    root: bytes
    good: list[bytes] = field(default_factory=list)      # absolute paths (bytes)
    bad: dict[bytes, str] = field(default_factory=dict)   # absolute path (bytes) -> reason fragment

    @property
    def root_str(self) -> str:
        return os.fsdecode(self.root)


def image(seed: int, size=(40, 32)) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def write_bomb_png(path: bytes, side: int = BOMB_SIDE) -> None:
    """A 1-bit PNG of side x side pixels, all zero: a few KB on disk, ~4 bytes/pixel once decoded to
    RGB. Written chunk by chunk, so making it costs no memory either."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", idat))
        f.write(chunk(b"IEND", b""))


def _save(img: Image.Image, path: bytes) -> None:
    fmt = "JPEG" if path.lower().endswith((b".jpg", b".jpeg")) else "PNG"
    with open(path, "wb") as f:
        img.save(f, fmt)


def build_corpus(root: str | bytes, bombs: int = 1) -> Corpus:
    """Write the corpus into `root` (created). Returns its good and bad files as absolute bytes paths."""
    root = os.path.abspath(os.fsencode(root))
    os.makedirs(os.path.join(root, b"sub"), exist_ok=True)
    c = Corpus(root)
    j = lambda name: os.path.join(root, name)  # noqa: E731
    for i, name in enumerate(GOOD):
        if name == b"link-good.png":
            os.symlink(j(b"plain0.png"), j(name))
        else:
            _save(image(i, (40 + 4 * i, 32)), j(name))
        c.good.append(j(name))
    os.mkfifo(j(b"fifo.png"))
    os.symlink(b"/dev/zero", j(b"zero.png"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(j(b"sock.png"))
    sock.close()  # the socket file stays
    os.makedirs(j(b"a-folder"), exist_ok=True)
    os.symlink(j(b"a-folder"), j(b"dirlink.jpg"))
    os.symlink(j(b"missing.png"), j(b"dangling.png"))
    os.symlink(j(b"loop.png"), j(b"loop.png"))
    open(j(b"empty.png"), "wb").close()
    _save(image(99, (64, 64)), j(b"trunc.png"))
    with open(j(b"trunc.png"), "r+b") as f:
        f.truncate(os.path.getsize(j(b"trunc.png")) // 2)
    with open(j(b"garbage.jpg"), "wb") as f:
        f.write(b"this is not a JPEG at all\n" * 10)
    with open(j(b"huge.jpg"), "wb") as f:
        f.truncate(HUGE_BYTES)
    for name, reason in BAD.items():
        c.bad[j(name)] = reason
    write_bomb_png(j(b"bomb.png"))
    for k in range(1, bombs):
        os.link(j(b"bomb.png"), j(b"bomb%d.png" % k))
        c.bad[j(b"bomb%d.png" % k)] = BAD[b"bomb.png"]
    return c
