"""The server's one model thread, and the queue that batches text queries for it.

SQLite connections belong to the thread that opened them, the fast tokenizer must not be used by two
threads at once, and two forward passes on a 2-core CPU only slow each other down. So all model and
index work of a `GalleryService` runs on one `ModelThread`; callers (any thread) block on it, or
await its futures. Text queries that arrive while the model is busy are encoded together in one
forward when it is free (one forward for 16 queries costs far less than 16 forwards).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import numpy as np

from clipseek.errors import ClipseekError

T = TypeVar("T")
TEXT_BATCH = 64  # text queries encoded together at most


class ModelThread:
    """One worker thread. `run(fn, *args)` runs a task on it and waits; `submit_texts` queues a task
    that needs some texts encoded, to be batched with the others waiting."""

    def __init__(self, encode_texts: Callable[[list[str]], np.ndarray]):
        self._encode = encode_texts  # called on the thread, at each batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="clipseek-model")
        self.pending: list[tuple[Sequence[str], Callable[[dict], object], Future]] = []
        self._pending_lock, self._draining = threading.Lock(), False

    def run(self, fn: Callable[..., T], *args) -> T:
        return self._executor.submit(fn, *args).result()

    def shutdown(self) -> None:
        self._executor.shutdown()

    def submit_texts(self, texts: Sequence[str], task: Callable[[dict], T]) -> Future:
        """A Future of `task(known)`, where `known` maps each of `texts` (and of the other tasks of
        its batch) to its vector. Raises ClipseekError if the thread is shut down."""
        fut: Future = Future()
        entry = (texts, task, fut)
        with self._pending_lock:
            self.pending.append(entry)
            idle = not self._draining
            self._draining = True
        if idle:
            try:
                self._executor.submit(self._drain)
            except RuntimeError:  # shut down
                with self._pending_lock:
                    self.pending.remove(entry)
                    self._draining = False
                raise ClipseekError("the gallery service is closed") from None
        return fut

    def _drain(self) -> None:
        with self._pending_lock:
            batch, self.pending = self.pending[:TEXT_BATCH], self.pending[TEXT_BATCH:]
        try:  # a request given up meanwhile (client gone) has a cancelled future: skip it
            batch = [b for b in batch if b[2].set_running_or_notify_cancel()]
            texts = sorted({t for b in batch for t in b[0]})
            known = dict(zip(texts, self._encode(texts))) if texts else {}
            for _, task, fut in batch:
                try:
                    fut.set_result(task(known))
                except Exception as e:
                    fut.set_exception(e)
        except Exception as e:  # the batch's forward failed: every query in it gets the error
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
        finally:
            with self._pending_lock:
                self._draining = bool(self.pending)
                if self._draining:
                    self._executor.submit(self._drain)
