"""The ONNX Runtime backend: an export folder (`model/onnx_store.py`) behind the Encoder protocol.

It imports onnxruntime, tokenizers, numpy and PIL, never torch or transformers, so a command that runs
on it starts in about a second (see benchmarks/cold_start.py). Each tower's session is created on first
use: a text search never loads the image tower.

Its fingerprint names the *source checkpoint's* weights (name and identity, as the torch backend
records them) with backend "onnx": float32 vectors from either backend are interchangeable
(`Fingerprint.same_weights`), so a gallery indexed with one searches with the other.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from clipseek.core.preprocess import check_framing, preprocess
from clipseek.core.vectors import unit_rows
from clipseek.model import onnx_store as store
from clipseek.model.base import ImagesFromPixels, finite_output
from clipseek.model.fingerprint import Fingerprint


def session_options(threads: int | None = None):
    """CPU session options: `threads` intra-op threads (default: onnxruntime's, one per core) and no
    busy-waiting between ops. On a shared 2-core machine spinning threads doubled a text query's time
    (77-84 ms against 42-47 ms with 2 threads under load), and they steal the decode workers' cores
    while embedding."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class OnnxEncoder(ImagesFromPixels):
    """Two ONNX graphs (image and text tower) + a `tokenizers` tokenizer, on the CPU."""

    backend = "onnx"

    def __init__(self, folder: str | os.PathLike, name: str, framing: str = "center", int8: bool = False,
                 int8_text: bool = False, threads: int | None = None, manifest: dict | None = None):
        self.folder = Path(folder)
        doc = manifest if manifest is not None else store.read_manifest(self.folder)
        for tower, wanted in (("image", int8), ("text", int8_text)):
            if wanted and store.tower_file(tower, int8=True) not in doc["files"]:
                raise store.CorruptExport(f"{self.folder} has no int8 {tower} tower; export it with --int8")
        self.manifest = doc
        self.name = name
        self.device = "cpu"
        self.dtype_name = "int8" if int8 else "float32"
        self.dim = int(doc["dim"])
        self.logit_scale = float(doc["logit_scale"])
        bias = doc.get("logit_bias")  # SigLIP: sigmoid(scale * cos + bias) per label
        self.logit_bias = float(bias) if bias is not None else None
        self.model_type = doc.get("model_type", "clip")
        self.preprocess_cfg = store.read_preprocess(self.folder, check_framing(framing))
        fp_name = doc["source"] if not doc.get("local") else name
        self.fingerprint = Fingerprint(fp_name, doc["identity"], self.backend, self.dtype_name,
                                       self.preprocess_cfg.describe())
        self._files = {"image": store.tower_file("image", int8), "text": store.tower_file("text", int8_text)}
        self._threads = threads
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()
        self._tokenizer = None

    # ---- lazily created parts --------------------------------------------------------------------
    def session(self, tower: str):
        """The onnxruntime session of `tower` ("image" or "text"), created on first use; CorruptExport
        (naming the file) when onnxruntime refuses the graph (not ONNX, external data outside the
        folder) or its inputs are not the ones this encoder feeds."""
        with self._lock:
            if tower not in self._sessions:
                import onnxruntime as ort

                path = self.folder / self._files[tower]
                try:
                    sess = ort.InferenceSession(str(path), session_options(self._threads),
                                                providers=["CPUExecutionProvider"])
                except Exception as e:  # onnxruntime's own kinds, all of one meaning
                    raise store.CorruptExport(f"{path}: onnxruntime cannot load it ({store.one_line(e)})") from None
                self._check_inputs(tower, path, sess)
                self._sessions[tower] = sess
            return self._sessions[tower]

    def _check_inputs(self, tower: str, path: Path, sess) -> None:
        want = {"pixel_values": "tensor(float)"} if tower == "image" else \
            {"input_ids": "tensor(int64)", **({"attention_mask": "tensor(int64)"}
                                              if self.manifest["text"]["attention_mask"] else {})}
        have = {i.name: i.type for i in sess.get_inputs()}
        if have != want:
            raise store.CorruptExport(f"{path}: the graph takes {_io(have)}; the {tower} tower must take "
                                      f"{_io(want)}")
        if not sess.get_outputs():
            raise store.CorruptExport(f"{path}: the graph has no output")

    def _run(self, tower: str, feeds: dict) -> np.ndarray:
        """One forward of `tower`: unit (N, dim) vectors; ModelLoadError naming the graph when it fails
        or gives something else."""
        try:
            out = self.session(tower).run(None, feeds)[0]
        except store.CorruptExport:
            raise
        except Exception as e:  # a graph that loads but cannot run these inputs
            raise store.CorruptExport(f"{self.folder / self._files[tower]}: onnxruntime failed to run it "
                                      f"({store.one_line(e)})") from None
        n = len(next(iter(feeds.values())))
        if not isinstance(out, np.ndarray) or out.shape != (n, self.dim) or out.dtype.kind != "f":
            raise store.CorruptExport(f"{self.folder / self._files[tower]}: it gives "
                                      f"{getattr(out, 'shape', type(out).__name__)} for {n} inputs, not "
                                      f"({n}, {self.dim}) vectors")
        return _unit(out)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            text = self.manifest["text"]
            try:
                tok = Tokenizer.from_file(str(self.folder / store.TOKENIZER))
            except Exception as e:  # tokenizers raises a bare Exception for a bad file
                raise store.CorruptExport(f"{self.folder / store.TOKENIZER}: not a `tokenizers` tokenizer "
                                          f"({store.one_line(e)})") from None
            tok.enable_truncation(int(text["max_length"]))
            pad = {"length": int(text["max_length"])} if text["padding"] == "max_length" else {}
            tok.enable_padding(pad_id=int(text["pad_id"]), **pad)
            self._tokenizer = tok
        return self._tokenizer

    # ---- the Encoder protocol ---------------------------------------------------------------------
    def preprocess(self, image: Image.Image) -> np.ndarray:
        return preprocess(image, self.preprocess_cfg)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 pixel batch -> (N, D) unit float32 vectors."""
        x = np.ascontiguousarray(pixels, dtype=np.float32)
        if not len(x):
            return np.zeros((0, self.dim), np.float32)
        return self._run("image", {"pixel_values": x})

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Texts -> (M, D) unit vectors; each batch is padded to its longest text (CLIP)."""
        use_mask = bool(self.manifest["text"]["attention_mask"])
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer.encode_batch(list(texts[i:i + batch_size]))
            feeds = {"input_ids": np.array([e.ids for e in enc], np.int64)}
            if use_mask:
                feeds["attention_mask"] = np.array([e.attention_mask for e in enc], np.int64)
            out.append(self._run("text", feeds))
        return finite_output(self, out, "text")

    def describe(self) -> dict:
        return {"model": self.name, "device": self.device, "dtype": self.dtype_name, "dim": self.dim,
                "backend": self.backend, "folder": str(self.folder), "fingerprint": str(self.fingerprint)}


def _io(inputs: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(inputs.items())) or "no inputs"


def _unit(v: np.ndarray) -> np.ndarray:
    return unit_rows(v)
