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
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from clipseek._io import atomic_dir
from clipseek.core.preprocess import PreprocessCfg
from clipseek.errors import ModelLoadError
from clipseek.model import onnx_store as store
from clipseek.model.base import Encoder
from clipseek.model.onnx_write import MemoryFile, write_external

OPSET = 17
MIN_COSINE = 0.9999
IN_MEMORY_MAX_BYTES = 1536 << 20  # a tower's weights; protobuf refuses messages over 2 GB


class ExportError(ModelLoadError):
    """A checkpoint could not be exported to ONNX (an unsupported operator, a custom model)."""


def export_encoder(enc: Encoder, out: str | os.PathLike, int8: bool = False, release: bool = False) -> dict:
    """Write `enc` (a torch `HFEncoder` on the CPU, fp32) as an export folder at `out`, swapped in
    whole; returns its manifest. ExportError if a tower cannot be exported faithfully. `release`: the
    caller is done with `enc`'s torch model; it is dropped (`enc.model = None`) once both graphs are
    written, so the parity checks (onnxruntime) do not run with the torch weights still in memory."""
    fp = enc.fingerprint
    siglip = enc.model_type.startswith("siglip")
    doc = {"format": store.FORMAT, "source": fp.name, "identity": fp.identity, "local": fp.local,
           "fingerprint": str(fp), "dim": enc.dim, "logit_scale": enc.logit_scale,
           "logit_bias": enc.logit_bias, "model_type": enc.model_type, "int8": int8, "opset": OPSET,
           "text": {"padding": "max_length" if siglip else "longest",
                    "max_length": 64 if siglip else enc.max_text_len,
                    "attention_mask": not siglip, "pad_id": _pad_id(enc.tokenizer)}}
    with atomic_dir(out) as tmp:
        _write_tokenizer(enc, tmp / store.TOKENIZER)
        (tmp / store.PREPROCESSOR).write_text(json.dumps(processor_doc(enc.preprocess_cfg), indent=1))
        doc["exporter"], checks = _export_towers(enc, tmp)
        if release:
            enc.model = None
            _release_memory()
        for tower, feeds, want in checks:
            _check_parity(tmp / store.tower_file(tower), feeds, want, enc.name, tower)
        names = store.tower_files("image") + store.tower_files("text")
        if int8:
            for tower in ("image", "text"):
                quantize(tmp / store.tower_file(tower), tmp / store.tower_file(tower, int8=True))
                names += store.tower_files(tower, int8=True)
        names += [store.TOKENIZER, store.PREPROCESSOR]
        doc["files"] = store.checksums(tmp, names)
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


def _export_towers(enc: Encoder, out: Path) -> tuple[str, list]:
    """Both towers -> `image.onnx`, `text.onnx`; returns the exporter that succeeded and, per tower,
    the sample inputs and the torch model's outputs for them (the parity check)."""
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
    used, checks = set(), []
    for tower, module, args, inputs in towers:
        exporter, traced = _export_one(module, args, inputs, out / store.tower_file(tower), enc.name,
                                       _tower_bytes(model, tower))
        used.add(exporter)
        if traced is None:
            with torch.inference_mode():
                traced = module(*args)
        checks.append((tower, {n: a.numpy() for n, a in zip(inputs, args)}, traced.detach().float().numpy()))
        _release_memory(collect=False)
    return "+".join(sorted(used)), checks


def _tower_bytes(model, tower: str) -> int:
    """Bytes of one tower's weights (CLIP's vision_model + visual_projection, SigLIP's vision_model)."""
    vision = ("vision_model.", "visual_projection.")
    return sum(p.numel() * p.element_size() for n, p in model.named_parameters()
               if n.startswith(vision) == (tower == "image"))


def _release_memory(collect: bool = True) -> None:
    """Give freed buffers back to the OS (peak RSS, not only use); `collect`: run the garbage
    collector first (0.4 s with transformers loaded: once, not per tower)."""
    import ctypes
    import gc

    if collect:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


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


def _export_one(module, args, inputs: list[str], path: Path, name: str, weight_bytes: int):
    """One tower -> `path` + `path.data`; returns (the exporter used, the traced run's output or None). The
    TorchScript exporter writes into memory and each weight
    goes to the data file once (`onnx_write`); a tower near protobuf's 2 GB limit is exported through
    a file and moved to external data by `onnx` instead, as the dynamo exporter's output is."""
    import torch

    axes = {n: ({0: "batch"} if n == "pixel_values" else {0: "batch", 1: "sequence"}) for n in inputs}
    common = dict(input_names=inputs, output_names=["embeds"])
    errors = []
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.inference_mode(False):
        warnings.simplefilter("ignore")
        try:
            if weight_bytes < IN_MEMORY_MAX_BYTES:
                mem = MemoryFile()
                with _exporter_params() as cap, torch.no_grad():
                    torch.onnx.export(module, args, mem, dynamic_axes={**axes, "embeds": {0: "batch"}},
                                      opset_version=OPSET, dynamo=False, export_params=cap is None,
                                      **common)
                write_external(mem.getvalue(), path, cap.params if cap else None)
                return "torchscript", cap.output if cap else None
            torch.onnx.export(module, args, str(path), dynamic_axes={**axes, "embeds": {0: "batch"}},
                              opset_version=OPSET, dynamo=False, **common)
            externalize(path)
            return "torchscript", None
        except Exception as e:  # any tracer failure: try the other exporter
            errors.append(f"torchscript: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        try:
            shapes = tuple({0: "batch"} if n == "pixel_values" else {0: "batch", 1: "sequence"} for n in inputs)
            torch.onnx.export(module, args, str(path), dynamic_shapes=shapes, dynamo=True, external_data=False,
                              **common)
            externalize(path)
            return "dynamo", None
        except Exception as e:
            errors.append(f"dynamo: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    raise ExportError(f"cannot export {name} to ONNX ({'; '.join(errors)})")


_EXPORT_LOCK = threading.Lock()


@contextlib.contextmanager
def _exporter_params():
    """The TorchScript exporter's own name -> tensor table of the graph's weights (the model's and
    those it folded, e.g. transposed), taken from its `_model_to_graph` step, so the graph is exported
    without weights (`export_params=False`: no serialized copy of them) and `onnx_write` writes each one
    from that table; and the output of the traced run (the torch model's own, kept for the parity
    check). None (export the ordinary way) where that private step is not there."""
    try:
        from torch.onnx._internal.torchscript_exporter import utils as ts
    except ImportError:
        yield None
        return
    real = getattr(ts, "_model_to_graph", None)
    if real is None:
        yield None
        return
    seen = SimpleNamespace(params={}, output=None)

    def capture(*args, **kwargs):
        graph, params, out = real(*args, **kwargs)
        seen.params.update(params)
        seen.output = out[0] if isinstance(out, (tuple, list)) else out  # the traced run's own output
        return graph, params, out

    with _EXPORT_LOCK:
        ts._model_to_graph = capture
        try:
            yield seen
        finally:
            ts._model_to_graph = real


def _check_parity(path: Path, feeds: dict, want: np.ndarray, name: str, tower: str) -> None:
    """The graph at `path` gives the torch model's outputs `want` for `feeds` (cosine >= MIN_COSINE)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, feeds)[0]
    except Exception as e:  # an operator onnxruntime lacks, a broken graph
        raise ExportError(f"cannot run the ONNX export of {name} ({tower} tower): "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    del sess
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
