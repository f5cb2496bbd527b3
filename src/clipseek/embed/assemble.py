"""Collect encoded rows from any worker, in any order, and write each shard once it is complete."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from clipseek.embed import shards
from clipseek.embed.shards import ROW_FIELDS
from clipseek.errors import Skipped
from clipseek.model.fingerprint import Fingerprint


class ShardAssembler:
    """Collects encoded rows (in any order, from any worker) and writes each shard once it is complete."""

    def __init__(self, out_dir: str, manifest: dict, shard_paths: dict[int, list[str]],
                 vector_dtype: str = "float32", on_shard: Callable[[shards.Shard], None] | None = None):
        self.out_dir, self.manifest, self.vector_dtype = out_dir, manifest, vector_dtype
        self.expected = {i: len(p) for i, p in shard_paths.items()}
        self.rows: dict[int, dict[str, dict]] = {i: {} for i in shard_paths}
        self.on_shard = on_shard

    def add(self, cols: dict[str, np.ndarray], shard: int | None = None) -> None:
        idx = cols["shard"] if shard is None else np.full(len(cols["path"]), shard)
        for j in range(len(idx)):
            i = int(idx[j])
            if i not in self.rows:  # already written (a row delivered twice): nothing to do
                continue
            path = cols["path"][j]  # bytes when it came through Ray
            key = os.fsdecode(path) if isinstance(path, bytes) else str(path)
            self.rows[i][key] = {k: cols[k][j] for k in (*ROW_FIELDS, "error", "vector", "fingerprint")}
            if len(self.rows[i]) == self.expected[i]:
                self._write(i, self.rows.pop(i))

    def _write(self, i: int, rows: dict[str, dict]) -> None:
        ordered = [{**rows[p], "path": p} for p in sorted(rows)]
        good = [r for r in ordered if not r["error"]]
        fps = [Fingerprint.parse(s) for s in sorted({str(r["fingerprint"]) for r in ordered})]
        fp = fps[0]
        if not all(fp.same_weights(other) for other in fps):
            raise shards.ShardError(f"shard {i} was encoded by different models: {[str(f) for f in fps]}")
        if self.manifest.get("fingerprint") is None:
            shards.bind_model(self.out_dir, self.manifest, fp, len(ordered[0]["vector"]))
        shards.check_model(self.manifest, fp, self.out_dir)
        vectors = np.stack([r["vector"] for r in good]) if good else \
            np.zeros((0, int(self.manifest["dim"])), np.float32)
        shard = shards.Shard(i, fp, [tuple(r[k].item() if hasattr(r[k], "item") else r[k] for k in ROW_FIELDS)
                                     for r in good], vectors,
                             [Skipped(str(r["path"]), str(r["error"])) for r in ordered if r["error"]])
        shards.write_shard(self.out_dir, shard, self.vector_dtype)
        if self.on_shard:
            self.on_shard(shard)

    @property
    def pending(self) -> list[int]:
        return sorted(self.rows)
