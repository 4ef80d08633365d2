"""How accurate the labels probably are: a calibrated probability per item that its label is
right, and the batch's expected share of right labels with an interval.

Dawid–Skene posteriors are overconfident: each worker's confusion matrix is fitted to the very
answers it then judges, so a prolific worker who decides items looks near-perfect and every item
they answered inherits that certainty (measured: 0.99 stated, 0.93 right on `temp` at the
default). Two fixes, both from the crowd's own answers, never from truth:

1. Cross-fitting (the main one): a worker is judged only by how they agree with what the *other*
   answers on each item say (one jackknife step from the EM fit; see `_evidence`).
2. A temperature on the evidence, p(c) ∝ prior(c) · Π_j P(answer_j | c)^τ, τ ≤ 1, chosen to
   maximise how well each answer is predicted by the posterior of the other answers on its item.
   A safeguard for answers less independent than the model assumes; on the shared crowd data
   it measured τ = 1 everywhere (the cross-fit had already done the work).

What no crowd-only method can see is a crowd that agrees on the wrong label (look-alike
classes in `dog`, the misleading images in `bluebirds`): from answers alone the estimate stays
optimistic there. Known-answer (gold) items are the remedy (`KnownAnswerCalibration`): the
policy buys answers for them exactly as for any other item (workers cannot tell them apart), so
how often the crowd's label is right on them, at each stated confidence, is a fair sample of the
batch. A logistic map σ(a·logit(p) + b) is fitted on them, with a prior that keeps it near the
identity (a = 1, b = 0) when there are few, and applied to every item. (The same known answers
anchor the Dawid–Skene fit's workers; a known item's own posterior comes from the fit that did
not know it, so the map scores the crowd as it labels the rest: annotate.consensus.dawid_skene.)
Measured on the shared crowd data with a tenth of the items known (scripts/bench_consensus, 20
runs): dog's batch estimate goes from +0.125 (crowd-only) to −0.000, its ECE from 0.129 to 0.023.

The batch estimate is the mean calibrated probability (the expected share of right labels). Its
interval adds two variances: the Poisson-binomial one (labels right or wrong independently with
their probabilities; normal approximation) and a model term, the square of half the gap between
the calibrated and the raw Dawid–Skene estimate: how far the calibration itself moved the answer
is the measure of how unsure the model is about itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._base import encode

# τ below 0.2 would mean answers carry almost nothing: the grid floor. Never above 1: tempering
# only discounts evidence (sharper than Dawid–Skene is never more honest).
TAU_GRID = np.round(np.arange(0.2, 1.001, 0.1), 2)
Z95 = 1.959964


# Fewer known-answer items than this tell too little to move the crowd-only calibration.
MIN_KNOWN = 10
# Precision of the Gaussian prior on (a − 1, b): one known item's worth of pull towards the identity.
PRIOR_PRECISION = 1.0
# Probabilities are mapped through logits clipped here: a stated 0.9999 is no surer than 0.999.
LOGIT_CLIP = 1e-3


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p / (1 - p))


def _sigmoid(z) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * np.asarray(z, dtype=float)))


@dataclass(frozen=True)
class KnownAnswerCalibration:
    """P(label right | stated p) = σ(slope·logit(p) + intercept), fitted on known-answer items.

    `cov` is the parameters' covariance (Laplace approximation at the penalised maximum): how
    unsure the map itself is, which the batch estimate's interval carries."""

    slope: float
    intercept: float
    cov: tuple  # ((var a, cov ab), (cov ab, var b))
    known: int  # known-answer items it was fitted on
    right: int  # of which the crowd's label was right

    @classmethod
    def fit(cls, confidence, right) -> "KnownAnswerCalibration | None":
        """Penalised maximum likelihood over (stated probability, whether the label was right)
        pairs; None with fewer than MIN_KNOWN pairs."""
        from scipy.optimize import minimize

        x, y = _logit(confidence), np.asarray(right, dtype=float)
        keep = ~np.isnan(x)
        x, y = x[keep], y[keep]
        if len(x) < MIN_KNOWN:
            return None
        design = np.c_[x, np.ones_like(x)]
        centre = np.array([1.0, 0.0])

        def loss(w):
            z = design @ w
            nll = float((np.logaddexp(0, z) - y * z).sum()) + 0.5 * PRIOR_PRECISION * float(((w - centre) ** 2).sum())
            grad = design.T @ (_sigmoid(z) - y) + PRIOR_PRECISION * (w - centre)
            return nll, grad

        w = minimize(loss, centre, jac=True, method="L-BFGS-B").x
        p = _sigmoid(design @ w)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + PRIOR_PRECISION * np.eye(2)
        cov = np.linalg.inv(hessian)
        return cls(float(w[0]), float(w[1]), tuple(map(tuple, cov.tolist())), int(len(x)), int(y.sum()))

    def apply(self, confidence) -> np.ndarray:
        return self.apply_logit(_logit(confidence))

    def mean_variance(self, confidence) -> float:
        """Variance of the mean mapped probability over `confidence` due to the map's own
        uncertainty (delta method)."""
        x = _logit(confidence)
        x = x[~np.isnan(x)]
        if not len(x):
            return 0.0
        p = self.apply_logit(x)
        grad = np.array([float((p * (1 - p) * x).mean()), float((p * (1 - p)).mean())])
        return float(grad @ np.asarray(self.cov) @ grad)

    def apply_logit(self, x) -> np.ndarray:
        return _sigmoid(self.slope * np.asarray(x, dtype=float) + self.intercept)

    def as_dict(self) -> dict:
        return {"known_items": self.known, "known_right": self.right, "slope": round(self.slope, 4),
                "intercept": round(self.intercept, 4)}


def known_answer_calibration(labels: pd.DataFrame, known: dict[str, str] | None) -> "KnownAnswerCalibration | None":
    """Fit the map on the known-answer items among `labels` (item, label, confidence: the crowd's
    label and its crowd-only calibrated probability), or None when there are too few."""
    if not known:
        return None
    frame = labels[labels["item"].astype(str).isin(set(known)) & labels["label"].notna()]
    if len(frame) < MIN_KNOWN:
        return None
    right = frame["label"].astype(str).to_numpy() == frame["item"].astype(str).map(known).astype(str).to_numpy()
    return KnownAnswerCalibration.fit(frame["confidence"].to_numpy(dtype=float), right)


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


def _sum_rows(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n x K) sums of `values` rows by `index` (one bincount per column: np.add.at is ~20x slower)."""
    return np.stack([np.bincount(index, weights=values[:, c], minlength=n) for c in range(values.shape[1])], axis=1)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(axis=-1, keepdims=True)


def _evidence(agg, answers: pd.DataFrame, passes: int = 1):
    """(encoding, per-answer log P(given | true) rows (answers x K), P(given | true) rows, log prior).

    Cross-fitted: a worker is judged only by how they agree with what *the others* said. Each
    answer counts towards its worker's confusion matrix with the posterior of its item computed
    without it, and is then judged by that matrix with its own item taken back out. In-sample, a
    worker is judged by a posterior they themselves moved: a prolific worker who decides items
    looks near-perfect, and every item they answered inherits that certainty.

    One pass from the EM fit (a jackknife step), not iterated: iterated, the references grow
    ever noisier and every worker is pulled towards chance (measured: estimates collapse)."""
    labels = list(agg.probas_.columns)
    enc = encode(answers, labels)
    # the fit encoded the same table in the same sorted order: its matrices line up with enc
    if list(enc.items) != list(agg.probas_.index) or len(enc.workers) != agg.errors_.shape[0]:
        raise ValueError("answers differ from those the aggregator was fitted on")
    k = enc.n_labels
    log_prior = np.log(np.clip(agg.priors_, 1e-10, None))
    strength = float(getattr(agg, "smoothing", 0.0))
    skill = float(getattr(agg, "default_skill", 0.7))
    eye = np.eye(k)
    pseudo = strength * (eye * skill + (1 - eye) * (1 - skill) / max(k - 1, 1))  # [given, true]
    err = np.clip(agg.errors_, 1e-10, None)[enc.w, enc.y, :]  # in-sample, to start from
    # answers on known-answer items count towards their worker's matrix as the known label, as
    # in the fit (annotate.consensus.dawid_skene), and are taken back out like any answer (the
    # known items' own posteriors come from the fits that did not know them: calibrated_probas)
    known_t, known_y = getattr(agg, "known_", (np.empty(0, dtype=np.int64),) * 2)
    truth = np.full(enc.n_items, -1)
    truth[known_t] = known_y
    on_known = truth[enc.t] >= 0
    for _ in range(passes):
        rows = np.log(err)
        total = _sum_rows(enc.t, rows, enc.n_items)
        own = _softmax(log_prior + total[enc.t] - rows)  # item posterior without this answer
        if on_known.any():
            own[on_known] = eye[truth[enc.t[on_known]]]
        # [worker, given, true] expected counts
        counts = _sum_rows(enc.w * k + enc.y, own, enc.n_workers * k).reshape(enc.n_workers, k, k)
        num = np.clip(counts[enc.w, enc.y, :] - own + pseudo[enc.y], 1e-10, None)
        den = np.clip(counts[enc.w].sum(axis=1) - own + strength, 1e-10, None)
        err = np.clip(num / den, 1e-10, 1.0)
    return enc, np.log(err), err, log_prior


def choose_temperature(agg, answers: pd.DataFrame, evidence=None) -> float:
    """τ maximising the leave-one-answer-out log-likelihood of the answers (items with ≥ 2)."""
    enc, rows, err_rows, log_prior = evidence if evidence is not None else _evidence(agg, answers)
    n = np.bincount(enc.t, minlength=enc.n_items)
    keep = n[enc.t] >= 2
    if not keep.any():
        return 1.0
    total = _sum_rows(enc.t, rows, enc.n_items)
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
    evidence = _evidence(agg, answers)
    if tau is None:
        tau = choose_temperature(agg, answers, evidence)
    enc, rows, _, log_prior = evidence
    total = _sum_rows(enc.t, rows, enc.n_items)
    p = _softmax(log_prior + tau * total)
    return pd.DataFrame(p, index=agg.probas_.index, columns=agg.probas_.columns), float(tau)


def poisson_binomial_variance(p) -> float:
    """Variance of the share of right labels when each is right independently with probability p."""
    p = np.asarray(p, dtype=float)
    return float((p * (1 - p)).sum()) / len(p) ** 2 if len(p) else 0.0


def batch_estimate(confidence, raw=None, temperature: float = 1.0, raw_mean: float | None = None,
                   model_variance: float | None = None) -> BatchEstimate:
    """Expected share of right labels from per-item probabilities that each label is right;
    the model term is `model_variance` (a known-answer map's own uncertainty) when given, else
    from `raw` (per-item uncalibrated probabilities) or `raw_mean`."""
    p = np.asarray(confidence, dtype=float)
    p = p[~np.isnan(p)]
    n = len(p)
    if n == 0:
        return BatchEstimate(0, float("nan"), float("nan"), float("nan"), float("nan"), temperature)
    mean = float(p.mean())
    if raw_mean is None:
        raw_mean = float(np.nanmean(np.asarray(raw, dtype=float))) if raw is not None and len(raw) else mean
    model = ((raw_mean - mean) / 2) ** 2 if model_variance is None else float(model_variance)
    var = poisson_binomial_variance(p) + model
    half = Z95 * var ** 0.5
    return BatchEstimate(n, mean, max(0.0, mean - half), min(1.0, mean + half), float(raw_mean), temperature)


def calibrated_probas(answers: pd.DataFrame, agg=None, skills: pd.Series | None = None,
                      known: dict[str, str] | None = None, smoothing: float = 2.0,
                      default_skill: float = 0.7) -> pd.DataFrame:
    """Calibrated posteriors (items x labels) from `agg`, a fitted smoothed Dawid–Skene over
    `answers`, or from one fitted here (the smoothing the harvest learns skills with, anchored on
    `known`) when `agg` is not one."""
    from .dawid_skene import DawidSkene

    if agg is None or not hasattr(agg, "errors_") or not getattr(agg, "smoothing", 0):
        agg = DawidSkene(smoothing=smoothing, default_skill=default_skill).fit(answers, skills=skills, known=known)
    probas = calibrated(agg, answers)[0]
    # known-answer items: from the fit that did not know their fold's answers, as their labels are
    for held, other in getattr(agg, "known_folds_", ()):
        probas.loc[held] = calibrated(other, answers)[0].loc[held].to_numpy()
    return probas


def label_confidence(answers: pd.DataFrame, labels: pd.Series, agg=None, skills: pd.Series | None = None,
                     smoothing: float = 2.0, default_skill: float = 0.7, known: dict[str, str] | None = None,
                     probas: pd.DataFrame | None = None) -> pd.Series:
    """item -> calibrated probability that `labels[item]` is right, whichever aggregator chose it.

    `agg`: a fitted smoothed Dawid–Skene over `answers` to reuse; otherwise one is fitted (the same
    smoothing the harvest learns skills with), so a majority-vote label gets a probability too.
    `probas`: calibrated posteriors already computed (calibrated_probas)."""
    if probas is None:
        probas = calibrated_probas(answers, agg, skills, known, smoothing, default_skill)
    chosen = labels.reindex(probas.index).astype(str).to_numpy()
    pick = probas.columns.get_indexer(chosen)
    values = probas.to_numpy()[np.arange(len(pick)), np.maximum(pick, 0)]
    values = np.where(pick >= 0, values, np.nan)
    return pd.Series(values, index=probas.index, name="confidence")
