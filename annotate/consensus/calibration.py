"""How accurate the labels probably are: a calibrated probability per item that its label is
right, and the batch's expected share of right labels with an interval.

Dawid–Skene posteriors are overconfident: answers are treated as independent evidence, and each
worker's confusion matrix is a point estimate fitted to the very answers it then judges. The fix
here is a temperature on the evidence, p(c) ∝ prior(c) · Π_j P(answer_j | c)^τ, with τ chosen
*from the crowd's own answers, never from truth*: τ maximises how well each answer is predicted by
the posterior of the *other* answers on its item (leave-one-answer-out predictive likelihood).
If answers on an item are less independent than the model assumes, or the confusion matrices
flatter the workers, held-out answers are predicted worse at τ = 1 than at some τ < 1.

The batch estimate is the mean calibrated probability (the expected share of right labels). Its
interval adds two variances: the Poisson-binomial one (labels right or wrong independently with
their probabilities; normal approximation) and a model term, the square of half the gap between
the calibrated and the raw (τ = 1) estimate: how far the calibration itself moved the answer is
the measure of how unsure the model is about itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._base import encode

# τ below 0.2 would mean answers carry almost nothing: the grid floor. Never above 1: tempering
# only discounts evidence (sharper than Dawid–Skene is never more honest).
TAU_GRID = np.round(np.arange(0.2, 1.001, 0.05), 2)
Z95 = 1.959964


@dataclass(frozen=True)
class BatchEstimate:
    """Expected share of right labels over `items`, with a 95% interval [low, high]."""

    items: int
    accuracy: float
    low: float
    high: float
    raw_accuracy: float  # the uncalibrated (Dawid–Skene posterior) estimate, for comparison
    temperature: float

    def as_dict(self) -> dict:
        return {"items": self.items, "estimated_accuracy": round(self.accuracy, 4),
                "interval": [round(self.low, 4), round(self.high, 4)],
                "raw_estimate": round(self.raw_accuracy, 4), "temperature": self.temperature}


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(axis=-1, keepdims=True)


def _evidence(agg, answers: pd.DataFrame):
    """(encoding, per-answer log P(given | true) rows (answers x K), P(given | true) rows, log prior).

    Cross-fitted: each answer is judged by its worker's confusion matrix *without that answer's
    item* (the item's posterior taken back out of the worker's expected counts). In-sample, a
    worker seen on few items is judged by matrices fitted to the very answers being judged, and
    looks as reliable as their agreement with themselves."""
    labels = list(agg.probas_.columns)
    enc = encode(answers, labels)
    # the fit encoded the same table in the same sorted order: its matrices line up with enc
    if list(enc.items) != list(agg.probas_.index) or len(enc.workers) != agg.errors_.shape[0]:
        raise ValueError("answers differ from those the aggregator was fitted on")
    k = enc.n_labels
    probas = agg.probas_.to_numpy()
    counts = np.zeros((enc.n_workers, k, k))  # [worker, given, true] expected counts
    np.add.at(counts, (enc.w, enc.y), probas[enc.t])
    strength = float(getattr(agg, "smoothing", 0.0))
    skill = float(getattr(agg, "default_skill", 0.7))
    eye = np.eye(k)
    pseudo = strength * (eye * skill + (1 - eye) * (1 - skill) / max(k - 1, 1))  # [given, true]
    own = probas[enc.t]  # this answer's item posterior, taken back out
    num = np.clip(counts[enc.w, enc.y, :] - own + pseudo[enc.y], 1e-10, None)
    den = np.clip(counts[enc.w].sum(axis=1) - own + strength, 1e-10, None)
    err = np.clip(num / den, 1e-10, 1.0)
    log_prior = np.log(np.clip(agg.priors_, 1e-10, None))
    return enc, np.log(err), err, log_prior


def choose_temperature(agg, answers: pd.DataFrame) -> float:
    """τ maximising the leave-one-answer-out log-likelihood of the answers (items with ≥ 2)."""
    enc, rows, err_rows, log_prior = _evidence(agg, answers)
    n = np.bincount(enc.t, minlength=enc.n_items)
    keep = n[enc.t] >= 2
    if not keep.any():
        return 1.0
    total = np.zeros((enc.n_items, enc.n_labels))
    np.add.at(total, enc.t, rows)
    err = err_rows[keep]  # P(this answer | c)
    rest = total[enc.t[keep]] - rows[keep]
    best, best_ll = 1.0, -np.inf
    for tau in TAU_GRID:
        p = _softmax(log_prior + tau * rest)
        ll = float(np.log(np.clip((p * err).sum(axis=1), 1e-12, None)).sum())
        if ll > best_ll + 1e-9:
            best, best_ll = float(tau), ll
    return best


def calibrated(agg, answers: pd.DataFrame, tau: float | None = None) -> tuple[pd.DataFrame, float]:
    """Tempered posteriors (items x labels, like agg.probas_) and the τ used (chosen if None)."""
    if tau is None:
        tau = choose_temperature(agg, answers)
    enc, rows, _, log_prior = _evidence(agg, answers)
    total = np.zeros((enc.n_items, enc.n_labels))
    np.add.at(total, enc.t, rows)
    p = _softmax(log_prior + tau * total)
    return pd.DataFrame(p, index=agg.probas_.index, columns=agg.probas_.columns), float(tau)


def batch_estimate(confidence, raw=None, temperature: float = 1.0) -> BatchEstimate:
    """Expected share of right labels from per-item probabilities that each label is right."""
    p = np.asarray(confidence, dtype=float)
    p = p[~np.isnan(p)]
    n = len(p)
    if n == 0:
        return BatchEstimate(0, float("nan"), float("nan"), float("nan"), float("nan"), temperature)
    mean = float(p.mean())
    raw_mean = float(np.nanmean(np.asarray(raw, dtype=float))) if raw is not None and len(raw) else mean
    var = float((p * (1 - p)).sum()) / n ** 2 + ((raw_mean - mean) / 2) ** 2
    half = Z95 * var ** 0.5
    return BatchEstimate(n, mean, max(0.0, mean - half), min(1.0, mean + half), raw_mean, temperature)
