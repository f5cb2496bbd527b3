"""Helpers for the training tests: a small labelled folder of coloured shapes (not a test module)."""

import numpy as np
from PIL import Image, ImageDraw

CLASSES = {"red circle": ((220, 30, 30), "circle"), "blue square": ((30, 60, 220), "square"),
           "green circle": ((30, 170, 50), "circle"), "red square": ((220, 30, 30), "square")}


def labelled_folder(root, per_class=12):
    rng = np.random.RandomState(0)
    for name, (colour, shape) in CLASSES.items():
        d = root / name
        d.mkdir(parents=True)
        for i in range(per_class):
            img = Image.new("RGB", (32, 32), tuple(int(x) for x in rng.randint(90, 160, 3)))
            x, y, r = rng.randint(9, 23), rng.randint(9, 23), rng.randint(6, 9)
            draw = ImageDraw.Draw(img)
            (draw.ellipse if shape == "circle" else draw.rectangle)((x - r, y - r, x + r, y + r), fill=colour)
            img.save(d / f"{i}.png")
    return root


def weights(ckpt):
    """The checkpoint's tensors by name."""
    from safetensors.torch import load_file

    return load_file(str(ckpt / "model.safetensors"))
