"""Which workers to exclude (they answer about at random) and which to trust (a pool), from a
batch's answers: one pure function, `assess`, used alike by the live harvest and the offline replay.

Evidence. Each answer is scored against its item's label as the REST of the batch tells it:
 - a known answer, where the item has one (weight 1: right or wrong);
 - else the item's posterior without this answer, under one-coin Dawid–Skene fitted on the whole
   batch (every worker one accuracy, learned from all their items). The answer weighs as much as
   that posterior is sure (0 when uniform, 1 when certain) and is right when it gave the
   posterior's most likely label.
So a co-worker's disagreement counts only as far as the whole batch shows that co-worker to be
reliable: a good worker always paired with a spammer loses nothing by the spammer's answers (the
spammer's learned accuracy is about chance, so the posterior without the good worker is about
uniform and weighs about 0), while the spammer is scored against the good worker and against
the third workers that disagreements bring in. Unlike counting answers that match the other
answers' majority, it is not fooled by stopping rules: an `agree` policy stops buying when an
answer matches, so "matched the others" is exactly what a random late answer ends with, and
"outvoted by two others" is what every answer that did not stop the item ends with; Dawid–Skene
is a likelihood fit, which stopping rules that look only at the answers do not bias.

Decision: a one-sided 95% Wilson score interval on the share of the evidence that says right.
 - exclude: after `exclude_after` answers, when even the interval's upper
   end is below the bar (by default 0.4 of the way from chance to perfect: 0.6 for 3 labels, 0.55
   for 4, 0.46 for 10, 0.7 for 2). Random answers fall below it after some 20-30 answers for 3
   or more labels (two labels need more: random is 0.5 there, too close to any bar); a worker
   of true accuracy 0.8 stays far above (scripts/bench_exclusion measures both).
 - pool score: after `pool_after` answers, the interval's lower end in
   percent: what the worker's accuracy is at least, with 95% confidence. A later batch asks for
   `pool >= N`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import floor

import numpy as np
import pandas as pd

from annotate.consensus._base import encode, vote_counts

Z95 = 1.645  # one-sided 95%
PRIOR_WEIGHT, PRIOR_SKILL = 2.0, 0.7  # two pseudo-answers at 0.7: a new worker starts trusted, not random


@dataclass(frozen=True)
class ExclusionRules:
    """What the decision needs from `[workers]` (annotate.config.WorkerSettings builds one)."""

    exclude: bool = True
    exclude_below: float | None = None  # default: chance + 0.4 × (1 − chance)
    exclude_after: int = 20  # answers before anyone is excluded
    pool_after: int = 20  # answers before a pool score is given

    def bar(self, n_labels: int) -> float:
        chance = 1.0 / max(n_labels, 2)
        return self.exclude_below if self.exclude_below is not None else chance + 0.4 * (1 - chance)


@dataclass(frozen=True)
class WorkerDecision:
    worker_id: str
    answers: int
    scored: float  # answers' worth of evidence (a known answer counts 1, co-workers' evidence 0..1)
    right: float
    known_seen: int
    known_right: int
    low: float  # 95% Wilson interval on accuracy (0..1 when nothing is scored)
    high: float
    exclude: bool
    pool: int | None  # lower bound in percent once `pool_after` answers are given, else None
    reason: str | None = field(default=None)

    @property
    def evidence(self) -> str:
        peers = self.scored - self.known_seen
        return (f"{self.known_right}/{self.known_seen} known answers right, {self.right - self.known_right:.1f} of "
                f"{peers:.1f} answers' worth of co-workers' evidence")


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion (one-sided 95% ends by default; counts may be
    fractional: answers' worth of evidence); (0, 1) with no observations."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5)
    return max(0.0, (centre - spread) / (1 + z * z / n)), min(1.0, (centre + spread) / (1 + z * z / n))


def score_answers(answers: pd.DataFrame, known: dict[str, str], n_labels: int, n_iter: int = 50) -> pd.DataFrame:
    """Per answer (same order): `weight` (how much the evidence tells, 0..1), `right` (the share of
    that weight that says the answer was right, so right <= weight), `on_known`, and `skill` (the
    answering worker's one-coin accuracy as fitted).

    One-coin Dawid–Skene over the whole batch (each worker one accuracy; known answers fixed),
    then, per answer, the item's posterior WITHOUT that answer. Its weight is how far that
    posterior is from uniform: 1 for a known answer or several reliable co-workers agreeing, about
    0 when the only co-worker is one the batch shows to answer at random. Vectorised."""
    n = len(answers)
    if n == 0:
        return pd.DataFrame({"weight": [], "right": [], "on_known": [], "skill": []})
    enc = encode(answers)
    k = max(n_labels, enc.n_labels, 2)
    t, w, y = enc.t, enc.w, enc.y
    fixed = np.full(enc.n_items, -1)
    if known:
        codes = {label: i for i, label in enumerate(enc.labels)}
        for i, item in enumerate(enc.items):
            fixed[i] = codes.get(known.get(item), -1) if item in known else -1
    has_fixed = fixed >= 0
    onehot = np.zeros((enc.n_items, enc.n_labels))
    onehot[np.flatnonzero(has_fixed), fixed[has_fixed]] = 1.0
    votes = vote_counts(enc)
    probas = votes / votes.sum(axis=1, keepdims=True)
    probas[has_fixed] = onehot[has_fixed]
    n_w = np.bincount(w, minlength=enc.n_workers)
    for _ in range(n_iter):
        hits = np.bincount(w, weights=probas[t, y], minlength=enc.n_workers)
        skill = np.clip((hits + PRIOR_WEIGHT * PRIOR_SKILL) / (n_w + PRIOR_WEIGHT), 1e-6, 1 - 1e-6)
        log_wrong = np.log((1 - skill) / (k - 1))
        bonus = np.log(skill) - log_wrong  # what an answer adds to the label it gave (the same to all others)
        prior = np.log(np.clip(probas.mean(axis=0), 1e-10, None))
        scores = vote_counts(enc, bonus[w]) + prior
        new = np.exp(scores - scores.max(axis=1, keepdims=True))
        new /= new.sum(axis=1, keepdims=True)
        new[has_fixed] = onehot[has_fixed]
        done = np.abs(new - probas).max() < 1e-6
        probas = new
        if done:
            break
    # Leave the answer out: its own vote comes off its item's scores.
    loo = scores[t].copy()
    loo[np.arange(n), y] -= bonus[w]
    loo = np.exp(loo - loo.max(axis=1, keepdims=True))
    loo /= loo.sum(axis=1, keepdims=True)
    # Labels nobody gave still count as possible truths: the uniform share is over k labels.
    top = loo.argmax(axis=1)
    top_p = loo[np.arange(n), top]
    others = np.bincount(t, minlength=enc.n_items)[t] - 1
    weight = np.where(others > 0, np.clip((top_p - 1.0 / k) / (1 - 1.0 / k), 0.0, 1.0), 0.0)
    right = np.where(top == y, weight, 0.0)
    on_known = has_fixed[t]
    weight = np.where(on_known, 1.0, weight)
    right = np.where(on_known, (fixed[t] == y).astype(float), right)
    return pd.DataFrame({"weight": weight, "right": right, "on_known": on_known, "skill": skill[w]},
                        index=answers.index)


def assess(answers: pd.DataFrame, known: dict[str, str], n_labels: int, rules: ExclusionRules = ExclusionRules(),
           already_excluded: set[str] = frozenset()) -> list[WorkerDecision]:
    """One decision per worker who answered. `answers`: (item, worker, label), usable answers only."""
    if len(answers) == 0:
        return []
    s = score_answers(answers, known, n_labels)
    frame = pd.DataFrame({"worker": answers["worker"].astype(str).to_numpy(), "one": 1,
                          "scored": s["weight"].to_numpy(), "right": s["right"].to_numpy(),
                          "known_seen": s["on_known"].to_numpy(),
                          "known_right": (s["on_known"] & (s["right"] > 0)).to_numpy()})
    per = frame.groupby("worker").sum()
    bar = rules.bar(n_labels)
    out = []
    for worker, row in per.iterrows():
        scored, right = round(float(row["scored"]), 2), round(float(row["right"]), 2)
        low, high = wilson(right, scored)
        exclude = bool(rules.exclude and int(row["one"]) >= rules.exclude_after and high < bar)
        decision = WorkerDecision(
            worker_id=str(worker), answers=int(row["one"]), scored=scored, right=right,
            known_seen=int(row["known_seen"]), known_right=int(row["known_right"]), low=low, high=high,
            exclude=exclude, pool=None if exclude or worker in already_excluded or int(row["one"]) < rules.pool_after
            else floor(100 * low))
        if exclude:
            decision = _with_reason(decision, bar)
        out.append(decision)
    return out


def _with_reason(d: WorkerDecision, bar: float) -> WorkerDecision:
    from dataclasses import replace

    return replace(d, reason=(f"answers look random: {d.right:.1f} of {d.scored:.1f} right ({d.evidence}); at most "
                              f"{d.high:.2f} with 95% confidence, below the bar of {bar:.2f}"))


def pool_score(right: float, scored: float, answers: int, pool_after: int) -> int | None:
    """A worker's pool score over every batch's evidence: the 95% lower bound in percent, once
    they have given `pool_after` answers."""
    if answers < pool_after or scored <= 0:
        return None
    return floor(100 * wilson(right, scored)[0])
