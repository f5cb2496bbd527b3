"""Image preprocessing described by one frozen dataclass (the checkpoint's processor, re-expressed).

It reproduces what a `transformers` CLIP-style image processor does (resize, center crop, rescale,
normalize) with PIL + numpy, so it can run in worker threads on one image at a time, and adds a
`pad` framing that letterboxes to a square first so the edges of panoramas are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from clipseek.errors import UsageError

FRAMINGS = ("center", "pad")


def check_framing(framing: str) -> str:
    """`framing` if it is one of FRAMINGS (`--crop`), else UsageError."""
    if framing not in FRAMINGS:
        raise UsageError(f"--crop must be one of {', '.join(FRAMINGS)}, not {framing!r}")
    return framing


@dataclass(frozen=True)
class PreprocessCfg:
    size: int | tuple[int, int]      # int: shortest edge; (h, w): exact size
    crop: tuple[int, int] | None     # (h, w) center crop, or None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: int = Image.BICUBIC
    rescale: float = 1 / 255
    framing: str = "center"
    # where a centre crop starts when the margin is odd: "floor" ((h - ch) // 2, as transformers'
    # image processors) or "round" (round((h - ch) / 2), half to even, as torchvision's CenterCrop,
    # which open_clip checkpoints were evaluated with)
    crop_rounding: str = "floor"

    @property
    def input_size(self) -> int:
        """Smallest side the model input needs; used to pick a JPEG draft scale."""
        if self.crop:
            return max(self.crop)
        return self.size if isinstance(self.size, int) else max(self.size)

    def describe(self) -> str:
        crop = f"crop{self.crop[0]}x{self.crop[1]}" if self.crop else "nocrop"
        return f"{self.framing}-{self.size}-{crop}"

    @classmethod
    def from_processor(cls, proc, framing: str = "center") -> "PreprocessCfg":
        check_framing(framing)
        size = dict(getattr(proc, "size", None) or {})
        if size.get("shortest_edge"):
            resize: int | tuple[int, int] = int(size["shortest_edge"])
        elif size.get("height") and size.get("width"):
            resize = (int(size["height"]), int(size["width"]))
        else:
            raise ValueError(f"unsupported image processor size {size!r}")
        crop = None
        if getattr(proc, "do_center_crop", False):
            cs = dict(proc.crop_size)
            crop = (int(cs["height"]), int(cs["width"]))
        mean = tuple(float(x) for x in (proc.image_mean if proc.do_normalize else (0, 0, 0)))
        std = tuple(float(x) for x in (proc.image_std if proc.do_normalize else (1, 1, 1)))
        resample = int(getattr(proc, "resample", None) or Image.BICUBIC)
        rescale = float(proc.rescale_factor) if getattr(proc, "do_rescale", True) else 1.0
        return cls(resize, crop, mean, std, resample, rescale, framing)  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, doc: dict, framing: str = "center") -> "PreprocessCfg":
        """The same values as `from_processor`, read from a checkpoint's saved processor JSON instead
        of a `transformers` object (no transformers import): `preprocessor_config.json` (flat) or
        `processor_config.json` (under "image_processor"). Keys a processor leaves at its defaults
        when saving take that processor type's defaults (`_DEFAULTS`)."""
        doc = dict(doc.get("image_processor", doc))
        kind = str(doc.get("image_processor_type") or "CLIPImageProcessor")
        kind = kind.removesuffix("Fast").removesuffix("Pil")
        if kind not in _DEFAULTS:
            raise ValueError(f"unsupported image processor {kind!r}")
        values = {**_DEFAULTS[kind], **{k: v for k, v in doc.items() if v is not None}}
        return cls.from_processor(_Attrs(values), framing)


class _Attrs:
    """A saved processor dict seen through the attribute names `from_processor` reads."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


_CLIP_MEAN, _CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
_DEFAULTS = {  # what transformers' processors use for keys missing from their saved JSON
    "CLIPImageProcessor": dict(size={"shortest_edge": 224}, do_center_crop=True,
                               crop_size={"height": 224, "width": 224}, do_normalize=True,
                               image_mean=_CLIP_MEAN, image_std=_CLIP_STD, resample=3,
                               do_rescale=True, rescale_factor=1 / 255),
    "SiglipImageProcessor": dict(size={"height": 224, "width": 224}, do_center_crop=False,
                                 do_normalize=True, image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5),
                                 resample=2, do_rescale=True, rescale_factor=1 / 255),
}

def letterbox(img: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Pad an image to a square, centred, with `fill` colour."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


def preprocess(img: Image.Image, cfg: PreprocessCfg) -> np.ndarray:
    """RGB PIL image -> float32 array (3, H, W), ready for the vision tower."""
    if cfg.framing == "pad":
        img = letterbox(img, tuple(int(round(m * 255)) for m in cfg.mean))  # type: ignore[arg-type]
    w, h = img.size
    if isinstance(cfg.size, int):
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = cfg.size, int(cfg.size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    else:
        new_h, new_w = cfg.size
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), resample=cfg.resample)
    arr = np.asarray(img, dtype=np.float32)
    if cfg.crop:
        arr = _center_crop(arr, cfg.crop, cfg.crop_rounding)
    arr = arr * np.float32(cfg.rescale)
    arr = (arr - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _center_crop(arr: np.ndarray, crop: tuple[int, int], rounding: str = "floor") -> np.ndarray:
    ch, cw = crop
    h, w = arr.shape[:2]
    if h < ch or w < cw:  # pad with zeros like transformers does for too-small images
        ph, pw = max(ch, h), max(cw, w)
        padded = np.zeros((ph, pw, arr.shape[2]), arr.dtype)
        top, left = (ph - h) // 2, (pw - w) // 2
        padded[top:top + h, left:left + w] = arr
        arr, h, w = padded, ph, pw
    if rounding == "round":
        top, left = int(round((h - ch) / 2)), int(round((w - cw) / 2))
    else:
        top, left = (h - ch) // 2, (w - cw) // 2
    return arr[top:top + ch, left:left + cw]
