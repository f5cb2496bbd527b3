"""Model identity: which weights, runtime, precision and preprocessing made a vector."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from clipseek.errors import ClipseekError

# "<name>@<identity> backend=<backend> dtype=<dtype> pre=<preprocess>": the name may hold "@" and
# spaces (a local path), the identity holds neither; the preprocessing description may hold spaces
# ("pad-(224, 224)-nocrop"), so it is the rest of the string.
_SPELLING = re.compile(r"(?P<name>.+)@(?P<identity>[^@\s]+) backend=(?P<backend>\S+) "
                       r"dtype=(?P<dtype>\S+) pre=(?P<preprocess>.+)", re.DOTALL)
_LOCAL_IDENTITY = re.compile(r"[0-9a-f]{16}")
PORTABLE_DTYPES = ("float32",)  # vectors of these dtypes do not depend on the runtime that made them


class FingerprintError(ClipseekError, ValueError):
    """A stored model fingerprint cannot be read (a damaged or foreign database or shard folder)."""


@dataclass(frozen=True)
class Fingerprint:
    """What made a vector: the checkpoint, the runtime, the precision and the image preprocessing.

    `name`: the checkpoint as given (hub id, or a local directory as an absolute path); `identity`:
    the content hash of a local checkpoint (16 hex digits) or the hub commit (else the revision);
    `backend`: the runtime ("torch"); `dtype`: the weights' precision as the backend ran them
    ("float32", "float16", "bfloat16", "int8"); `preprocess`: `PreprocessCfg.describe()`.

    On disk (databases, shard manifests, Parquet shards) it is `str(fp)`, the spelling clipseek has
    always written, and `Fingerprint.parse` reads it back.

    The rule of `same_weights` (may vectors of one be compared with vectors of the other?):
    - the same identity, and the same name unless the identity is a local content hash (the same
      checkpoint files reached by another path are the same weights);
    - the same preprocessing (other pixels in, other vectors out);
    - the same dtype: precision is part of the identity, because float16 and int8 vectors differ
      from float32 ones by more than search can ignore (an int8 image tower moves vectors visibly);
    - the same backend, except for the float32 dtype, where every runtime computes the same
      function to rounding: float32 vectors from torch and from a future ONNX export are
      interchangeable. Reduced precisions are runtime-specific (quantization schemes differ).
    With a single backend (torch) this is exactly the rule clipseek has always applied.
    """

    name: str
    identity: str
    backend: str
    dtype: str
    preprocess: str

    def __str__(self) -> str:
        return (f"{self.name}@{self.identity} backend={self.backend} dtype={self.dtype} "
                f"pre={self.preprocess}")

    @classmethod
    def parse(cls, text: str) -> "Fingerprint":
        """Read the spelling `str(fp)` writes (and has always written); FingerprintError if it is not."""
        m = _SPELLING.fullmatch(text or "")
        if m is None:
            raise FingerprintError(f"not a clipseek model fingerprint: [{text}]")
        return cls(**m.groupdict())

    @property
    def local(self) -> bool:
        """The identity is the content hash of a local checkpoint directory (not a hub revision)."""
        return _LOCAL_IDENTITY.fullmatch(self.identity) is not None

    @property
    def framing(self) -> str:
        """The framing of the preprocessing ("center" or "pad")."""
        return self.preprocess.split("-", 1)[0]

    def same_weights(self, other: "Fingerprint") -> bool:
        """Vectors made under `self` and under `other` are interchangeable (the rule is in the class doc)."""
        if self == other:
            return True
        if (self.identity, self.preprocess, self.dtype) != (other.identity, other.preprocess, other.dtype):
            return False
        if self.name != other.name and not self.local:
            return False
        return self.backend == other.backend or self.dtype in PORTABLE_DTYPES


def model_source(name: str) -> str:
    """A local checkpoint directory as an absolute path (so the DB records it unambiguously)."""
    p = os.path.expanduser(name)
    return os.path.abspath(p) if os.path.isdir(p) else name
