"""One-coin Dawid–Skene: each worker has one accuracy p; a wrong answer is uniform over the
other K-1 labels. Fewer parameters than full confusion matrices, so it steadies sparse workers."""

from __future__ import annotations

import numpy as np

from ._base import BaseAggregator, Encoded, normalise_rows, posterior_agreement, vote_counts
from .weighted_majority import weighted_posterior

EPS = 1e-10


class OneCoinDawidSkene(BaseAggregator):
    def __init__(self, n_iter: int = 100, tol: float = 1e-5, prior_weight: float = 4.0, default_skill: float = 0.7):
        self.n_iter = n_iter
        self.tol = tol
        self.prior_weight = prior_weight
        self.default_skill = default_skill

    def _fit(self, enc: Encoded, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = enc.n_labels
        known = ~np.isnan(prior)
        alpha = np.where(known, self.prior_weight, 0.0)
        prior_hits = alpha * np.where(known, prior, 0.0)
        n_w = np.bincount(enc.w, minlength=enc.n_workers)
        probas = normalise_rows(vote_counts(enc)) if not known.any() else \
            weighted_posterior(enc, np.where(known, prior, self.default_skill))
        self.n_iter_ = 0
        for _ in range(self.n_iter):
            hits = np.bincount(enc.w, weights=probas[enc.t, enc.y], minlength=enc.n_workers)
            skill = np.clip((hits + prior_hits) / np.maximum(n_w + alpha, EPS), EPS, 1 - EPS)
            class_prior = np.clip(probas.mean(axis=0), EPS, None)
            log_wrong = np.log((1 - skill) / max(k - 1, 1))
            # every answer adds log_wrong to all classes, plus (log p - log_wrong) to its own label
            base = np.bincount(enc.t, weights=log_wrong[enc.w], minlength=enc.n_items)
            bonus = vote_counts(enc, (np.log(skill) - log_wrong)[enc.w])
            scores = base[:, None] + bonus + np.log(class_prior)
            scores -= scores.max(axis=1, keepdims=True)
            new = normalise_rows(np.exp(scores))
            self.n_iter_ += 1
            delta = np.abs(new - probas).max()
            probas = new
            if delta < self.tol:
                break
        self.skills_raw_ = skill
        return probas, posterior_agreement(enc, probas)
