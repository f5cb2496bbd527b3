"""Model identity: which weights and preprocessing made a vector."""

from __future__ import annotations

import os


def model_source(name: str) -> str:
    """A local checkpoint directory as an absolute path (so the DB records it unambiguously)."""
    p = os.path.expanduser(name)
    return os.path.abspath(p) if os.path.isdir(p) else name


def same_model(a: str, b: str) -> bool:
    """Fingerprints are equal, or name the same local checkpoint content by different paths."""
    if a == b:
        return True
    ia, ib = a.partition("@")[2], b.partition("@")[2]
    ident = ia.split(" ", 1)[0]
    return bool(ia) and ia == ib and len(ident) == 16 and all(c in "0123456789abcdef" for c in ident)
