"""Weighted majority vote: each worker's vote counts by the log-odds of their accuracy.

log-odds weight log((K-1) p / (1-p)) is the Bayes-optimal vote weight when a worker is right with
probability p and otherwise picks one of the K-1 wrong labels uniformly (the one-coin model), and
its softmax is then that model's posterior under a uniform class prior.
"""

from __future__ import annotations

import numpy as np

from ._base import BaseAggregator, Encoded, normalise_rows, posterior_agreement, vote_counts
from .majority import MajorityVote

# keeps log-odds finite for workers estimated at 0 or 1
SKILL_CLIP = (0.02, 0.98)


def log_odds_weights(skills: np.ndarray, n_labels: int) -> np.ndarray:
    p = np.clip(skills, *SKILL_CLIP)
    return np.log(max(n_labels - 1, 1) * p / (1.0 - p))


def weighted_posterior(enc: Encoded, skills: np.ndarray) -> np.ndarray:
    """One-coin posterior under a uniform class prior, from per-worker accuracies."""
    scores = vote_counts(enc, log_odds_weights(skills, enc.n_labels)[enc.w])
    scores -= scores.max(axis=1, keepdims=True)
    return normalise_rows(np.exp(scores))


class WeightedMajorityVote(BaseAggregator):
    """Weighted vote with weights from worker skills.

    skills: worker -> accuracy, given to the constructor or to `fit(..., skills=)`; workers
    without one get `default_skill`. Given no skills at all, it estimates them as each worker's
    agreement with the majority vote (one pass), then weighs by log-odds.
    """

    def __init__(self, skills=None, default_skill: float = 0.7):
        self.skills = skills
        self.default_skill = default_skill

    def fit(self, answers, skills=None, labels=None, known=None):
        return super().fit(answers, skills if skills is not None else self.skills, labels, known)

    def _fit(self, enc: Encoded, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if np.isnan(prior).all():
            mv = MajorityVote()._fit(enc, prior)[0]
            skills = posterior_agreement(enc, mv)
        else:
            skills = np.where(np.isnan(prior), self.default_skill, prior)
        probas = weighted_posterior(enc, skills)
        return probas, posterior_agreement(enc, probas)
