"""Evaluation metrics: pure functions over labels, probabilities and embeddings; plain dicts out.

Nothing here loads a model or reads a file. Conventions (checked against scikit-learn in the tests):
- mean per-class recall = sklearn `balanced_accuracy_score` (classes present in y_true);
- macro-F1 = sklearn `f1_score(average="macro", zero_division=0)` (classes present in y_true or y_pred);
- ECE: 15 equal-width confidence bins (lo, hi], |accuracy - confidence| weighted by bin size (Guo 2017).
  The confidence is the model's own probability for its best label: a softmax (CLIP) or the sigmoid
  of that label alone (SigLIP), so a SigLIP row need not sum to 1.
- Temperature scaling divides the logits by T and minimises the NLL of the model's own rule: the
  softmax cross-entropy (CLIP), or the binary cross-entropy of every (image, label) pair (SigLIP).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from clipseek.core.scores import RULES, binary_nll, fit_temperature, nll, softmax  # noqa: F401 (re-exported)

ECE_BINS = 15


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(C, C) counts; rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def top_k_accuracy(y_true, probs: np.ndarray, k: int) -> float:
    y = np.asarray(y_true)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == y[:, None]).any(axis=1).mean()) if len(y) else 0.0


def per_class(cm: np.ndarray, classes: Sequence[str]) -> list[dict]:
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    prec = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    rec = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    return [{"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s),
             "predicted": int(n)} for c, p, r, f, s, n in zip(classes, prec, rec, f1, support, predicted)]


def classification_metrics(y_true, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """Top-1, top-5 (None under 5 classes), mean per-class recall, macro-F1, per-class table, confusion."""
    y = np.asarray(y_true, np.int64)
    pred = probs.argmax(axis=1) if len(y) else np.zeros(0, np.int64)
    cm = confusion_matrix(y, pred, len(classes))
    rows = per_class(cm, classes)
    present = cm.sum(axis=1) > 0
    seen = present | (cm.sum(axis=0) > 0)
    return {
        "n": int(len(y)),
        "top1": float((pred == y).mean()) if len(y) else 0.0,
        "top5": top_k_accuracy(y, probs, 5) if len(classes) >= 5 else None,
        "mean_per_class_recall": float(np.mean([r["recall"] for r, p in zip(rows, present) if p]))
        if present.any() else 0.0,
        "macro_f1": float(np.mean([r["f1"] for r, s in zip(rows, seen) if s])) if seen.any() else 0.0,
        "ece": expected_calibration_error(probs, y),
        "per_class": rows,
        "confusion_matrix": cm.tolist(),
    }


# ---------------------------------------------------------------- calibration
def expected_calibration_error(probs: np.ndarray, y_true, n_bins: int = ECE_BINS) -> float:
    y = np.asarray(y_true)
    if len(y) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of range(n), for 2-fold cross-fitting when no calibration split exists."""
    idx = np.random.RandomState(seed).permutation(n)
    return np.sort(idx[: n // 2]), np.sort(idx[n // 2:])


def calibration(logits: np.ndarray, y_true, fit_logits: np.ndarray | None = None, fit_y=None,
                rule: str = "softmax") -> dict:
    """ECE before/after temperature scaling under the model's own `rule` ("softmax" or "sigmoid").

    The temperature is fitted on (fit_logits, fit_y) when given (a held-out calibration split), else by
    2-fold cross-fitting on the evaluated data: each half is scaled by a T fitted on the other half, so
    no image is scored with a T fitted on itself. `improves` says whether the scaled probabilities are
    better calibrated than the model's own (else keep T = 1)."""
    y = np.asarray(y_true)
    to_probs = RULES[rule][0]
    before = expected_calibration_error(to_probs(logits), y)
    if fit_logits is not None and len(fit_y):
        t = fit_temperature(fit_logits, fit_y, rule=rule)
        after_probs, fitted_on = to_probs(logits / t), "calibration split"
    else:
        a, b = halves(len(y))
        after_probs = np.zeros_like(logits)
        for fit_idx, apply_idx in ((a, b), (b, a)):
            t_half = fit_temperature(logits[fit_idx], y[fit_idx], rule=rule)
            after_probs[apply_idx] = to_probs(logits[apply_idx] / t_half)
        t, fitted_on = fit_temperature(logits, y, rule=rule), "2-fold cross-fit on the evaluated split"
    after = expected_calibration_error(after_probs, y)
    return {"temperature": t, "ece_before": before, "ece_after": after, "fitted_on": fitted_on,
            "scoring": rule, "improves": bool(after < before)}


# ---------------------------------------------------------------- "none of these"
def best_threshold(scores: np.ndarray, positive: np.ndarray) -> dict:
    """Threshold t maximising F1 of the decision `score < t` for detecting `positive` items."""
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    if not positive.any() or positive.all():
        return {"threshold": None, "precision": None, "recall": None, "f1": None}
    order = np.argsort(scores, kind="stable")
    s, p = scores[order], positive[order]
    tp = np.cumsum(p)                     # flagging the i+1 lowest scores
    flagged = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]   # only cut between distinct scores
    prec, rec = tp / flagged, tp / p.sum()
    f1 = np.where(last, 2 * prec * rec / np.maximum(prec + rec, 1e-12), -1)
    i = int(np.argmax(f1))
    t = float((s[i] + s[i + 1]) / 2) if i + 1 < len(s) else float(s[i] + 1e-6)
    return {"threshold": t, **decision_scores(scores, positive, t)}


def decision_scores(scores, positive, threshold: float) -> dict:
    flag = np.asarray(scores) < threshold
    positive = np.asarray(positive, bool)
    tp = int((flag & positive).sum())
    prec = tp / flag.sum() if flag.sum() else 0.0
    rec = tp / positive.sum() if positive.sum() else 0.0
    return {"precision": float(prec), "recall": float(rec),
            "f1": float(2 * prec * rec / (prec + rec)) if prec + rec else 0.0, "flagged": float(flag.mean())}


def none_of_these(sims: np.ndarray, y_true, other: int | None, fit: tuple | None = None,
                  score: str = "cosine") -> dict:
    """The threshold on the best label's score below which it is not to be trusted ("none of these").
    `sims` are cosines (`score="cosine"`, CLIP) or the model's own per-label sigmoid probabilities
    (`score="probability"`, SigLIP: the same order as the cosines, in a unit the model was trained on).

    With an "other" class (index `other`): candidates are the real classes, the decision detects `other`
    images, and `accuracy_with_abstain` counts "none" as right for them. Without one, the decision
    detects zero-shot mistakes. `fit` = (sims, y) of a calibration split; else 2-fold cross-fitting."""
    y = np.asarray(y_true)

    def target(s, yy):
        if other is None:
            return s.max(axis=1), s.argmax(axis=1) != yy
        real = np.delete(s, other, axis=1)
        return real.max(axis=1), yy == other

    best, positive = target(sims, y)
    if fit is not None and len(fit[1]):
        fs, fy = target(*fit)
        t = best_threshold(fs, fy)["threshold"]
        fitted_on = "calibration split"
    else:
        t = best_threshold(best, positive)["threshold"]
        fitted_on = "evaluated split (in-sample)"
    out = {"threshold": t, "score": score, "detects": "mistakes" if other is None else "other-class images",
           "fitted_on": fitted_on, "precision": None, "recall": None, "f1": None, "flagged": None}
    if t is not None:
        out.update(decision_scores(best, positive, t))
        if other is not None:
            real = [i for i in range(sims.shape[1]) if i != other]
            pred = np.where(best < t, other, np.asarray(real)[np.delete(sims, other, axis=1).argmax(axis=1)])
            out["accuracy_with_abstain"] = float((pred == y).mean())
        else:
            kept = best >= t
            out["accuracy_on_kept"] = float((sims.argmax(axis=1)[kept] == y[kept]).mean()) if kept.any() else None
    return out


# ---------------------------------------------------------------- linear probe
def linear_probe(train_x: np.ndarray, train_y, test_x: np.ndarray, n_classes: int,
                 l2_grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1), seed: int = 0) -> dict:
    """Multinomial logistic regression (L-BFGS, L2) on embeddings, as CLIP_benchmark's linear probe.
    The L2 strength is chosen on a 20% hold-out of the train split, then refitted on all of it. Each
    fit is SciPy's L-BFGS on the exact loss and gradient (NumPy, no torch), warm-started from the
    fit before it (strongest L2 first): ~0.1 s for a few hundred embeddings."""
    y = np.asarray(train_y, np.int64)
    x = np.asarray(train_x, np.float64)
    idx = np.random.RandomState(seed).permutation(len(y))
    n_val = max(1, len(y) // 5) if len(y) >= 10 else 0
    val, tr = idx[:n_val], idx[n_val:]
    best_l2, best_acc, start = l2_grid[len(l2_grid) // 2], -1.0, None
    if n_val:
        for l2 in sorted(l2_grid, reverse=True):
            predict, start = _fit_logreg(x[tr], y[tr], n_classes, l2, start)
            acc = float((predict(x[val]).argmax(1) == y[val]).mean())
            if acc > best_acc or (acc == best_acc and l2 < best_l2):  # ties: as the grid's order did
                best_l2, best_acc = l2, acc
    predict, _ = _fit_logreg(x, y, n_classes, best_l2)
    return {"l2": best_l2, "probs": predict(test_x), "n_train": int(len(y))}


def _fit_logreg(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float,
                start: np.ndarray | None = None) -> tuple[Callable, np.ndarray]:
    """Minimise mean cross-entropy + l2 * |W|^2 (the bias not penalised): (predict, parameters)."""
    from scipy.optimize import minimize

    n, d = x.shape
    onehot = np.eye(n_classes)[y]

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d * n_classes].reshape(d, n_classes), theta[d * n_classes:]
        logits = x @ w + b
        logits -= logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        diff = (np.exp(logp) - onehot) / n
        loss = -(onehot * logp).sum() / n + l2 * (w * w).sum()
        return loss, np.concatenate([(x.T @ diff + 2 * l2 * w).ravel(), diff.sum(0)])

    theta0 = np.zeros(d * n_classes + n_classes) if start is None else start
    theta = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B",
                     options={"maxiter": 1000, "gtol": 1e-7}).x
    wd, bd = theta[:d * n_classes].reshape(d, n_classes), theta[d * n_classes:]
    return (lambda q: softmax(np.asarray(q, np.float64) @ wd + bd).astype(np.float64)), theta


# ---------------------------------------------------------------- retrieval
def retrieval_recall(image_vecs: np.ndarray, text_vecs: np.ndarray, text_image,
                     ks: Sequence[int] = (1, 5, 10), texts: Sequence[str] | None = None) -> dict:
    """Recall@k both ways. text_image[j] = index of caption j's image; texts[j] = caption j's text.

    Text->image: the caption's image is among the k best images. Image->text: any of the image's
    captions is among the k best captions. Rank = the number of items scoring strictly higher, so an
    exact tie counts for the right answer. Ties between identical captions do not depend on float
    rounding: all captions with the same text are scored with one vector (the first caption's), so
    their scores are bit-identical; an image's own caption therefore never ranks below another image's
    caption with the same text, and which of them comes first in the list changes nothing."""
    owner = np.asarray(text_image, np.int64)
    text_vecs = np.asarray(text_vecs, np.float32)
    group = np.arange(len(owner))
    if texts is not None and len(owner):
        _, first, group = np.unique(np.asarray(list(texts), dtype=str), return_index=True,
                                    return_inverse=True)
        text_vecs = text_vecs[first]
    sims = (text_vecs @ image_vecs.astype(np.float32).T)[group.reshape(-1)]      # (T, I)
    own = sims[np.arange(len(owner)), owner]
    t2i_rank = (sims > own[:, None]).sum(axis=1)                                  # 0 = best
    best_own = np.full(len(image_vecs), -np.inf, np.float32)
    np.maximum.at(best_own, owner, own)
    i2t_rank = (sims.T > best_own[:, None]).sum(axis=1)
    has_caption = np.isfinite(best_own)
    out = {"n_images": int(has_caption.sum()), "n_captions": int(len(owner))}
    for k in ks:
        out[f"text_to_image_recall@{k}"] = float((t2i_rank < k).mean()) if len(owner) else 0.0
        out[f"image_to_text_recall@{k}"] = float((i2t_rank[has_caption] < k).mean()) if has_caption.any() else 0.0
    return out
