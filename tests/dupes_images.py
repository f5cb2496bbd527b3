"""Photo-like test pictures and the four kinds of copy that `clipseek dupes` must find."""

import shutil

from PIL import Image

from clipseek.data.synthetic import photo_like as photo  # noqa: F401  (the tests import it from here)


def copies_of(src, out_dir, stem):
    """The four kinds of copy: same bytes, JPEG quality 60, half size, 5% cut off the top-left."""
    img = Image.open(src).convert("RGB")
    w, h = img.size
    shutil.copyfile(src, out_dir / f"{stem}-bytes.png")
    img.save(out_dir / f"{stem}-q60.jpg", quality=60)
    img.resize((w // 2, h // 2), Image.LANCZOS).save(out_dir / f"{stem}-half.png")
    img.crop((round(w * 0.05), round(h * 0.05), w, h)).save(out_dir / f"{stem}-crop.png")
