"""Export a `transformers` encoder's two towers to ONNX (fp32, and int8 on request): the only module of
the ONNX backend that needs torch. The folder it writes is described in `model/onnx_store.py`.

The exporter is `torch.onnx.export` with the TorchScript tracer (`dynamo=False`), falling back to the
dynamo exporter (needs onnxscript) when tracing fails. Measured on the 2-core CI machine (AMD EPYC,
AVX2): both give the same graph speed and vectors (cosine >= 0.9999999 to torch), but tracing exports a
ViT-B/32 in 9.6 s against 27.6 s (the bundled model: 3.3 s against 21 s). `optimum`'s CLIP export was
not an option: optimum-onnx requires transformers < 4.58, clipseek runs on transformers 5.
int8 is onnxruntime's dynamic quantization of the MatMul/Gemm weights (as `--dtype int8` quantizes the
Linear layers on torch); activations are quantized on the fly.

Every export is checked before it is kept: the graphs must give the torch model's vectors (cosine
>= 0.9999) on the sample inputs, or the export fails (`ExportError`) instead of giving wrong vectors.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from clipseek._io import atomic_dir
from clipseek.core.preprocess import PreprocessCfg
from clipseek.errors import ModelLoadError
from clipseek.model import onnx_store as store
from clipseek.model.base import Encoder

OPSET = 17
MIN_COSINE = 0.9999


class ExportError(ModelLoadError):
    """A checkpoint could not be exported to ONNX (an unsupported operator, a custom model)."""


def export_encoder(enc: Encoder, out: str | os.PathLike, int8: bool = False) -> dict:
    """Write `enc` (a torch `HFEncoder` on the CPU, fp32) as an export folder at `out`, swapped in
    whole; returns its manifest. ExportError if a tower cannot be exported faithfully."""
    fp = enc.fingerprint
    with atomic_dir(out) as tmp:
        exporter = _export_towers(enc, tmp)
        names = store.tower_files("image") + store.tower_files("text")
        if int8:
            for tower in ("image", "text"):
                quantize(tmp / store.tower_file(tower), tmp / store.tower_file(tower, int8=True))
                names += store.tower_files(tower, int8=True)
        _write_tokenizer(enc, tmp / store.TOKENIZER)
        (tmp / store.PREPROCESSOR).write_text(json.dumps(processor_doc(enc.preprocess_cfg), indent=1))
        names += [store.TOKENIZER, store.PREPROCESSOR]
        siglip = enc.model_type.startswith("siglip")
        doc = {"format": store.FORMAT, "source": fp.name, "identity": fp.identity, "local": fp.local,
               "fingerprint": str(fp), "dim": enc.dim, "logit_scale": enc.logit_scale,
               "logit_bias": enc.logit_bias,
               "model_type": enc.model_type, "int8": int8, "exporter": exporter, "opset": OPSET,
               "text": {"padding": "max_length" if siglip else "longest",
                        "max_length": 64 if siglip else enc.max_text_len,
                        "attention_mask": not siglip, "pad_id": _pad_id(enc.tokenizer)},
               "files": store.checksums(tmp, names)}
        (tmp / store.MANIFEST).write_text(json.dumps(doc, indent=1))
        store.write_stamps(tmp, names)
    return doc


def add_int8(folder: str | os.PathLike) -> dict:
    """Quantize an fp32 export folder's towers into a new version of it that also holds the int8 ones
    (onnxruntime only: no torch); the fp32 files are hard-linked (copied where links fail)."""
    folder = Path(folder)
    doc = store.read_manifest(folder)
    with atomic_dir(folder) as tmp:
        for tower in ("image", "text"):  # before linking: `onnx` refuses external data with several links
            quantize(folder / store.tower_file(tower), tmp / store.tower_file(tower, int8=True))
        for name in doc["files"]:
            _link_or_copy(folder / name, tmp / name)
        int8_names = store.tower_files("image", int8=True) + store.tower_files("text", int8=True)
        doc = {**doc, "int8": True, "files": {**doc["files"], **store.checksums(tmp, int8_names)}}
        (tmp / store.MANIFEST).write_text(json.dumps(doc, indent=1))
        store.write_stamps(tmp, list(doc["files"]))
    return doc


def quantize(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of one graph's MatMul/Gemm weights (onnxruntime.quantization)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    disabled = logging.root.manager.disable  # it logs every tensor on the root logger
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"],
                             weight_type=QuantType.QInt8)
    finally:
        logging.disable(disabled)
    externalize(dst)


def externalize(path: Path) -> None:
    """Move a graph's weights into `<graph>.data` beside it (ONNX external data, one file)."""
    import onnx

    model = onnx.load(str(path))  # with any external data it already has
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=0)


def processor_doc(cfg: PreprocessCfg) -> dict:
    """`cfg` as a saved CLIP image processor (`PreprocessCfg.from_config` reads it back equal)."""
    size = {"shortest_edge": cfg.size} if isinstance(cfg.size, int) else \
        {"height": cfg.size[0], "width": cfg.size[1]}
    doc = {"image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": size,
           "do_center_crop": cfg.crop is not None, "resample": cfg.resample, "do_rescale": True,
           "rescale_factor": cfg.rescale, "do_normalize": True, "image_mean": list(cfg.mean),
           "image_std": list(cfg.std), "do_convert_rgb": True}
    if cfg.crop:
        doc["crop_size"] = {"height": cfg.crop[0], "width": cfg.crop[1]}
    return doc


def _export_towers(enc: Encoder, out: Path) -> str:
    """Both towers -> `image.onnx`, `text.onnx`; returns the exporter that succeeded."""
    import torch

    model, siglip = enc.model, enc.model_type.startswith("siglip")
    side = enc.preprocess_cfg.crop or (enc.preprocess_cfg.size if isinstance(enc.preprocess_cfg.size, tuple)
                                       else (enc.preprocess_cfg.size,) * 2)
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, *side)
    ids = torch.randint(0, max(int(_pad_id(enc.tokenizer)), 2), (2, 7))
    ids[:, -1] = _pad_id(enc.tokenizer)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    towers = [("image", _tower_module(model, "image"), (pixels,), ["pixel_values"]),
              ("text", _tower_module(model, "text", siglip), (ids,) if siglip else (ids, mask),
               ["input_ids"] if siglip else ["input_ids", "attention_mask"])]
    used = set()
    for tower, module, args, inputs in towers:
        path = out / store.tower_file(tower)
        used.add(_export_one(module, args, inputs, path, enc.name))
        externalize(path)
        _check_parity(module, args, inputs, path, enc.name, tower)
    return "+".join(sorted(used))


def _tower_module(model, tower: str, siglip: bool = False):
    """A module whose forward is one tower's features (unnormalized; the encoder normalizes)."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            if tower == "image":
                out = self.model.get_image_features(pixel_values=args[0])
            elif siglip:
                out = self.model.get_text_features(input_ids=args[0])
            else:
                out = self.model.get_text_features(input_ids=args[0], attention_mask=args[1])
            return out if hasattr(out, "shape") else out.pooler_output

    return Tower().eval()


def _export_one(module, args, inputs: list[str], path: Path, name: str) -> str:
    import torch

    axes = {n: ({0: "batch"} if n == "pixel_values" else {0: "batch", 1: "sequence"}) for n in inputs}
    errors = []
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.inference_mode(False):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, args, str(path), input_names=inputs, output_names=["embeds"],
                              dynamic_axes={**axes, "embeds": {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)
            return "torchscript"
        except Exception as e:  # any tracer failure: try the other exporter
            errors.append(f"torchscript: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        try:
            shapes = tuple({0: "batch"} if n == "pixel_values" else {0: "batch", 1: "sequence"} for n in inputs)
            torch.onnx.export(module, args, str(path), input_names=inputs, output_names=["embeds"],
                              dynamic_shapes=shapes, dynamo=True, external_data=False)
            return "dynamo"
        except Exception as e:
            errors.append(f"dynamo: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    raise ExportError(f"cannot export {name} to ONNX ({'; '.join(errors)})")


def _check_parity(module, args, inputs: list[str], path: Path, name: str, tower: str) -> None:
    import onnxruntime as ort
    import torch

    with torch.inference_mode():
        want = module(*args).float().numpy()
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {n: a.numpy() for n, a in zip(inputs, args)})[0]
    except Exception as e:  # an operator onnxruntime lacks, a broken graph
        raise ExportError(f"cannot run the ONNX export of {name} ({tower} tower): "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    cos = np.sum(_unit(want) * _unit(got), axis=1)
    if got.shape != want.shape or not np.all(cos >= MIN_COSINE):
        raise ExportError(f"the ONNX export of {name} ({tower} tower) does not reproduce the torch model "
                          f"(cosine {float(np.min(cos)) if got.shape == want.shape else 'n/a'})")


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _pad_id(tokenizer) -> int:
    pid = tokenizer.pad_token_id
    return int(pid if pid is not None else tokenizer.eos_token_id)


def _write_tokenizer(enc: Encoder, path: Path) -> None:
    backend = getattr(enc.tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ExportError(f"{enc.name}: its tokenizer has no `tokenizers` form (tokenizer.json); "
                          "cannot run it without transformers")
    backend.save(str(path))


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
