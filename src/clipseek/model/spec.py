"""`ModelSpec`: which model to load and how, as one frozen value.

The choice `name, device, dtype, backend, framing, revision, int8_text` travels from the CLI (or a
notebook) to whoever loads the weights: `Gallery`, the server, `embed_job` and its Ray actors, eval.
One value instead of five keyword arguments repeated at every hop, as `PreprocessCfg` does for the
preprocessing. `None` means "not chosen": a gallery then uses the model and dtype its database records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clipseek.model.base import Encoder


@dataclass(frozen=True)
class ModelSpec:
    name: str | None = None        # hub id, hf-hub:ORG/NAME, a directory, "clipseek-demo"; None: the default
    device: str = "auto"           # auto, cpu, cuda, cuda:1, mps
    dtype: str | None = None       # auto, fp32, fp16, bf16, int8; None: auto (or the gallery's own)
    backend: str = "torch"         # torch, onnx, auto
    framing: str = "center"        # center (crop) or pad
    revision: str | None = None    # a hub revision
    int8_text: bool = False        # quantize the text tower too (CPU)

    def load(self) -> Encoder:
        """The Encoder this spec names (`model.loader.load_model`)."""
        from clipseek.model.loader import DEFAULT_MODEL, load_model

        return load_model(self.name or DEFAULT_MODEL, device=self.device, dtype=self.dtype or "auto",
                          framing=self.framing, revision=self.revision, backend=self.backend,
                          int8_text=self.int8_text)

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes)
