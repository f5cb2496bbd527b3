"""Photo-like test pictures and the four kinds of copy that `clipseek dupes` must find."""

import shutil

import numpy as np
from PIL import Image, ImageDraw


def photo(seed: int, size=(320, 240)) -> Image.Image:
    """A photo-like picture: a smooth colour field and six discs (distinct seeds: distinct pictures)."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y, r = rng.integers(0, size[0]), rng.integers(0, size[1]), rng.integers(10, 60)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img


def copies_of(src, out_dir, stem):
    """The four kinds of copy: same bytes, JPEG quality 60, half size, 5% cut off the top-left."""
    img = Image.open(src).convert("RGB")
    w, h = img.size
    shutil.copyfile(src, out_dir / f"{stem}-bytes.png")
    img.save(out_dir / f"{stem}-q60.jpg", quality=60)
    img.resize((w // 2, h // 2), Image.LANCZOS).save(out_dir / f"{stem}-half.png")
    img.crop((round(w * 0.05), round(h * 0.05), w, h)).save(out_dir / f"{stem}-crop.png")
