"""Shared plumbing for aggregators: encoding a tidy answer table into integer codes, and the
scikit-learn-like fit / fit_predict / fit_predict_proba surface (crowd-kit style).

Conventions every aggregator follows:
- items, workers and labels are strings; each is encoded in *sorted* order, so results never
  depend on the row order of the input table.
- ties are broken deterministically towards the label that sorts first (np.argmax returns the
  first maximum over the sorted label codes).
- `skills_` is each worker's estimated accuracy: the mean posterior of the label they gave, over
  the items they answered (comparable across aggregators).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS = ("item", "worker", "label")


@dataclass(frozen=True)
class Encoded:
    items: pd.Index
    workers: pd.Index
    labels: pd.Index
    t: np.ndarray  # item code per answer
    w: np.ndarray  # worker code per answer
    y: np.ndarray  # label code per answer

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    @property
    def n_labels(self) -> int:
        return len(self.labels)


def _codes(values: pd.Series, categories: pd.Index | None = None) -> tuple[np.ndarray, pd.Index]:
    if categories is not None:
        return np.asarray(categories.get_indexer(values), dtype=np.int64), categories  # -1: outside
    cat = pd.Categorical(values)  # categories come sorted, so codes never depend on row order
    return np.asarray(cat.codes, dtype=np.int64), pd.Index(cat.categories)


def encode(answers: pd.DataFrame, labels: list[str] | None = None) -> Encoded:
    """Encode an (item, worker, label) table; `labels` fixes the label set (e.g. the batch's)."""
    missing = [c for c in COLUMNS if c not in answers.columns]
    if missing:
        raise ValueError(f"answers table lacks column(s) {missing}; needs {list(COLUMNS)}")
    frame = answers[list(COLUMNS)].astype(str)
    t, items = _codes(frame["item"])
    w, workers = _codes(frame["worker"])
    if labels is not None:
        lab = pd.Index(sorted({str(x) for x in labels}))
        y, lab = _codes(frame["label"], lab)
        if (y < 0).any():
            bad = sorted(set(frame["label"][y < 0]))
            raise ValueError(f"answers hold labels outside the label set {list(lab)}: {bad}")
    else:
        y, lab = _codes(frame["label"])
    return Encoded(items, workers, lab, t, w, y)


def vote_counts(enc: Encoded, weights: np.ndarray | None = None) -> np.ndarray:
    """(items x labels) sum of (weighted) votes, with one bincount over a flat index."""
    flat = enc.t * enc.n_labels + enc.y
    counts = np.bincount(flat, weights=weights, minlength=enc.n_items * enc.n_labels)
    return counts.reshape(enc.n_items, enc.n_labels).astype(float)


def normalise_rows(m: np.ndarray) -> np.ndarray:
    s = m.sum(axis=1, keepdims=True)
    # an item with zero total weight (only zero-weight workers) gets a uniform posterior
    out = np.divide(m, s, out=np.full_like(m, 1.0 / m.shape[1]), where=s > 0)
    return out


def posterior_agreement(enc: Encoded, probas: np.ndarray) -> np.ndarray:
    """Each worker's mean posterior of the labels they gave: an accuracy estimate in [0, 1]."""
    hit = probas[enc.t, enc.y]
    total = np.bincount(enc.w, weights=hit, minlength=enc.n_workers)
    n = np.bincount(enc.w, minlength=enc.n_workers)
    return total / np.maximum(n, 1)


def known_codes(enc: Encoded, known: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(item codes, label codes) of the known-answer items (item -> label) among the encoded ones.
    An item not answered, or a known label outside the encoded label set, is left out: there is
    nothing to anchor on it."""
    if not known:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    ks = pd.Series({str(i): str(l) for i, l in known.items()})
    t = enc.items.get_indexer(ks.index)
    y = enc.labels.get_indexer(ks.to_numpy())
    keep = (t >= 0) & (y >= 0)
    return t[keep].astype(np.int64), y[keep].astype(np.int64)


def prior_skill_array(enc: Encoded, skills: pd.Series | None) -> np.ndarray:
    """Prior skills aligned to the encoded workers; NaN where a worker has no history."""
    if skills is None or len(skills) == 0:
        return np.full(enc.n_workers, np.nan)
    s = pd.Series(skills, dtype=float)
    s.index = s.index.astype(str)
    s = s[~s.index.duplicated(keep="last")]
    return s.reindex(enc.workers).to_numpy(dtype=float)


class BaseAggregator:
    """fit / fit_predict / fit_predict_proba over a tidy (item, worker, label) DataFrame."""

    labels_: pd.Series
    probas_: pd.DataFrame
    confidence_: pd.Series
    skills_: pd.Series

    def _fit(self, enc: Encoded, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (items x labels posterior, per-worker accuracy estimate)."""
        raise NotImplementedError

    def fit(self, answers: pd.DataFrame, skills: pd.Series | None = None, labels: list[str] | None = None,
            known: dict[str, str] | None = None):
        """Fit on `answers`; `skills` (worker -> accuracy from earlier batches) warm-starts the
        aggregators that model workers; `labels` fixes the label set (else the observed labels).
        `known` (item -> known answer): aggregators that learn workers' confusions (Dawid–Skene)
        judge the answers on these items against the known answer; every item's posterior,
        a known item's too, is still the crowd's own."""
        enc = encode(answers, labels)
        self.known_answers_ = dict(known or {})
        self.known_ = known_codes(enc, known)
        if len(enc.t) == 0:
            self.probas_ = pd.DataFrame(index=pd.Index([], name="item"), columns=pd.Index(enc.labels, name="label"), dtype=float)
            self.labels_ = pd.Series([], index=self.probas_.index, dtype=object, name="label")
            self.confidence_ = pd.Series([], index=self.probas_.index, dtype=float, name="confidence")
            self.skills_ = pd.Series([], index=pd.Index([], name="worker"), dtype=float, name="skill")
            return self
        probas, skills_arr = self._fit(enc, prior_skill_array(enc, skills))
        self._set_posteriors(pd.DataFrame(probas, index=pd.Index(enc.items, name="item"),
                                          columns=pd.Index(enc.labels, name="label")))
        self.skills_ = pd.Series(skills_arr, index=pd.Index(enc.workers, name="worker"), name="skill")
        return self

    def _set_posteriors(self, probas: pd.DataFrame) -> None:
        """probas_, and the labels_ and confidence_ that follow from it."""
        values = probas.to_numpy()
        best = values.argmax(axis=1)  # first maximum = label sorting first: the documented tie rule
        self.probas_ = probas
        self.labels_ = pd.Series(np.asarray(probas.columns)[best], index=probas.index, name="label", dtype=object)
        self.confidence_ = pd.Series(values[np.arange(len(best)), best], index=probas.index, name="confidence")

    def fit_predict(self, answers: pd.DataFrame, skills: pd.Series | None = None, labels: list[str] | None = None) -> pd.Series:
        return self.fit(answers, skills, labels).labels_

    def fit_predict_proba(self, answers: pd.DataFrame, skills: pd.Series | None = None, labels: list[str] | None = None) -> pd.DataFrame:
        return self.fit(answers, skills, labels).probas_
