"""Synthetic few-shot tasks (for tests/fewshot and tests/evaluation): unit vectors around class centres (Gaussian
clusters on the sphere), text
vectors near the centres. Fast, seeded, no model."""

from __future__ import annotations

import numpy as np

FP = "fake-clip@v1 backend=fake dtype=float32 pre=center-32-crop32x32"
OTHER_FP = "other-clip@v2 backend=fake dtype=float32 pre=center-32-crop32x32"


def unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


class Task:
    """`n_classes` centres in `dim` dimensions; `separation` scales the centres against unit noise."""

    def __init__(self, n_classes=5, dim=32, separation=1.0, text_noise=0.5, seed=0):
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.centres = unit(rng.standard_normal((n_classes, dim)))
        self.text = unit(self.centres + text_noise * unit(rng.standard_normal((n_classes, dim))))
        self.separation, self.dim, self.n_classes = separation, dim, n_classes

    def sample(self, n=None, per_class=None, classes=None):
        classes = np.arange(self.n_classes) if classes is None else np.asarray(classes)
        y = np.repeat(classes, per_class) if per_class else self.rng.choice(classes, n)
        x = self.separation * self.centres[y] + self.rng.standard_normal((len(y), self.dim)) / np.sqrt(self.dim)
        return unit(x), y

    def examples(self, per_class=8, texts=None, calibration=None, **kw):
        from clipseek.fewshot.examples import ExampleSet

        x, y = self.sample(per_class=per_class)
        names = [f"class{i}" for i in range(self.n_classes)]
        texts = names if texts is None else texts
        tv = np.where(np.array([t is not None for t in texts])[:, None], self.text, 0).astype(np.float32)
        return ExampleSet(names, list(texts), tv, x, y, 25.0, FP, calibration, **kw)


S = 25.0


def task(per_class=6, texts_present=None, seed=0, text_noise=0.5, classes=None, **kw):
    """A 4-class few-shot task (fewshot.methods.Task) drawn from `Task` above, and that generator."""
    from clipseek.fewshot.methods import Task as MethodTask

    syn = Task(n_classes=4, dim=16, seed=seed, text_noise=text_noise, **kw)
    x, y = syn.sample(per_class=per_class, classes=classes)
    has = np.ones(4, bool) if texts_present is None else np.asarray(texts_present)
    return MethodTask(np.where(has[:, None], syn.text, 0.0), has, S, x, y), syn
