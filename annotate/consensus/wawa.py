"""Wawa (worker agreement with aggregate): weigh each vote by the worker's agreement with the
plain majority vote (linear weights, as in crowd-kit's Wawa)."""

from __future__ import annotations

import numpy as np

from ._base import BaseAggregator, Encoded, normalise_rows, posterior_agreement, vote_counts
from .majority import MajorityVote


class Wawa(BaseAggregator):
    def _fit(self, enc: Encoded, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mv = MajorityVote()._fit(enc, prior)[0]
        # agreement with the hard majority label (ties -> first label, the documented rule)
        hard = np.zeros_like(mv)
        hard[np.arange(len(mv)), mv.argmax(axis=1)] = 1.0
        skills = posterior_agreement(enc, hard)
        probas = normalise_rows(vote_counts(enc, skills[enc.w]))
        return probas, skills
