"""Majority vote: each answer is one vote; the posterior is the share of votes."""

from __future__ import annotations

import numpy as np

from ._base import BaseAggregator, Encoded, normalise_rows, posterior_agreement, vote_counts


class MajorityVote(BaseAggregator):
    """Plain majority vote. Ties go to the label that sorts first (see `_base`)."""

    def _fit(self, enc: Encoded, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probas = normalise_rows(vote_counts(enc))
        return probas, posterior_agreement(enc, probas)
