import io

import numpy as np
import pytest
from PIL import Image

from clipseek.core.images import collect_image_paths, open_image, to_rgb, walk_images
from clipseek.errors import ImageError, UsageError
from helpers import make_image


def saved(tmp_path, img, name, **kw):
    p = tmp_path / name
    img.save(p, **kw)
    return p


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "YCbCr", "I", "F", "I;16"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    base = make_image(1, (20, 10))
    if mode == "I;16":
        img = Image.fromarray((np.arange(200).reshape(10, 20) * 300).astype(np.uint16))
    else:
        img = base.convert(mode)
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (20, 10)


def test_i16_is_rescaled_not_clipped():
    arr = np.full((4, 4), 65535, np.uint16)
    arr[0, 0] = 0
    out = np.asarray(to_rgb(Image.fromarray(arr)))
    assert out[1, 1, 0] == 255 and out[0, 0, 0] == 0


def test_transparency_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    p = saved(tmp_path, rgba, "t.png")
    assert np.asarray(open_image(p))[0, 0].tolist() == [255, 255, 255]


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    img.putpixel((1, 1), 1)
    p = saved(tmp_path, img, "p.png", transparency=0)
    arr = np.asarray(open_image(p))
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[1, 1].tolist() == [10, 200, 30]


def test_cmyk_jpeg(tmp_path):
    p = saved(tmp_path, make_image(2, (16, 16)).convert("CMYK"), "c.jpg")
    assert open_image(p).mode == "RGB"


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    p = tmp_path / "a.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    r, g, b = np.asarray(open_image(p))[5, 5]
    assert r > 200 and b < 50


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (30, 10), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = saved(tmp_path, img, "o.jpg", exif=exif)
    assert open_image(p).size == (10, 30)


def test_pixel_limit(tmp_path):
    p = saved(tmp_path, Image.new("RGB", (200, 100)), "big.png")
    with pytest.raises(ImageError, match="too many pixels"):
        open_image(p, max_pixels=10_000)


def test_jpeg_draft_decodes_large_images_smaller(tmp_path):
    p = saved(tmp_path, make_image(3, (1024, 768)), "large.jpg", quality=85)
    small = open_image(p, draft_size=224)
    assert min(small.size) >= 224 and small.size[0] < 1024
    assert open_image(p).size == (1024, 768)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"this is not an image at all", "not an image"),
])
def test_bad_files(tmp_path, content, reason):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=reason) as e:
        open_image(p)
    assert e.value.path == str(p)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    make_image(4, (64, 64)).save(buf, "JPEG")
    p = tmp_path / "trunc.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated|corrupt"):
        open_image(p)


def test_missing_file():
    with pytest.raises(ImageError, match="not found"):
        open_image("/nonexistent/x.png")


def test_collect_paths(image_dir, tmp_path):
    (image_dir / "notes.txt").write_text("x")
    all_imgs = collect_image_paths([image_dir])
    assert len(all_imgs) == 6 and not any(p.endswith(".txt") for p in all_imgs)
    assert collect_image_paths([str(image_dir / "*.png")]) == sorted(
        str(p) for p in image_dir.glob("*.png"))
    assert collect_image_paths([image_dir / "notes.txt"]) == [str(image_dir / "notes.txt")]
    assert walk_images(image_dir) == all_imgs
    with pytest.raises(UsageError, match="path not found"):
        collect_image_paths([tmp_path / "missing"])
    with pytest.raises(UsageError, match="no files match"):
        collect_image_paths([str(tmp_path / "*.nothing")])


def test_full_size_survives_draft_decoding_and_follows_exif_rotation(tmp_path):
    """A large JPEG decoded at reduced size for the model still reports its own size (what a gallery
    records and filters by), turned like the picture when EXIF says it is shown rotated."""
    from PIL import Image

    from clipseek.core.images import full_size

    img = Image.new("RGB", (1000, 800), (200, 30, 30))
    img.save(tmp_path / "big.jpg", quality=90)
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees to display
    img.save(tmp_path / "turned.jpg", quality=90, exif=exif)
    small = open_image(tmp_path / "big.jpg", draft_size=224)
    assert small.size[0] < 1000 and full_size(small) == (1000, 800)
    turned = open_image(tmp_path / "turned.jpg", draft_size=224)
    assert turned.size[0] < turned.size[1] and full_size(turned) == (800, 1000)
    plain = open_image(tmp_path / "big.jpg")
    assert plain.size == full_size(plain) == (1000, 800)
