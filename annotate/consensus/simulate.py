"""Offline replay of a crowd dataset against a stopping policy, mirroring the harvester's loop.

Each item's recorded answers are shuffled with a per-item seeded RNG keyed by (seed, crc32 of the
item id), so an item's answer order depends only on the seed and the item itself: not on the
policy, the row order, or which other items the dataset holds. Every item first
gets `initial_assignments` answers; then rounds: the policy decides on the whole batch (all HITs
closed, open=False, once their answers are in), "extend" items get `extend_by` more, until no
item extends. When an item's recorded answers run out, the extra assignments stay unfilled, as a
live HIT would expire with fewer answers: `bought` keeps counting them (so the policy sees the item
as starved and stops extending it) but only answers received are paid for.

With `exclusion` (annotate.exclusion.ExclusionRules), workers are excluded as the live harvest
excludes them: after each round, the same `assess` over the answers received so far; an excluded
worker's answers not yet received are dropped (as an excluded worker can no longer accept the
HIT), and the next recorded worker takes the slot. Answers with a `pos` column keep that order
(a crowd built with a planted order, e.g. synthetic.paired_spammer_crowd) instead of the shuffle.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from ..fees import assignment_cost

REWARD = Decimal("0.05")


@dataclass
class ReplayResult:
    policy: str
    seed: int
    items: int
    accuracy: float  # over the items with a truth row only (NaN when there are none)
    unresolved: int  # final decision "unresolved" (label still scored as the current best)
    starved: int  # items that wanted more answers than the dataset holds
    answers_per_item: float  # answers received (= paid) per item
    available_per_item: float
    fraction_bought: float  # answers received / answers the dataset holds
    cost: Decimal  # USD, reward + MTurk fee at the policy's max_assignments tier
    rounds: int
    excluded: list = field(default_factory=list)  # workers excluded, in the order they were
    n_scored: int = 0  # items scored: replayed items that have a truth row
    labels: pd.DataFrame = field(repr=False, default=None)  # item, label, confidence, action, answers
    received: pd.DataFrame = field(repr=False, default=None)  # the answers bought: item, worker, label

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("labels")
        d.pop("received")
        d["cost"] = str(self.cost)
        return d


def shuffled_answers(answers: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Answers with a per-item draw order `pos` (0 first), from rng([seed, crc32(item)]); a `pos`
    column already there is kept (a planted order)."""
    if "pos" in answers.columns:
        a = answers[["item", "worker", "label", "pos"]].astype({"item": str, "worker": str, "label": str})
        return a.sort_values(["item", "pos"], kind="stable").reset_index(drop=True)
    a = answers[["item", "worker", "label"]].astype(str).reset_index(drop=True)
    items = np.sort(a["item"].unique())
    idx = pd.Series(np.arange(len(items)), index=items)
    a["item_idx"] = idx.reindex(a["item"]).to_numpy()
    a = a.sort_values(["item_idx", "worker"], kind="stable").reset_index(drop=True)
    # one key per answer drawn from the item's own generator; loop is per item, not per answer
    keys = np.empty(len(a))
    starts = np.flatnonzero(np.r_[True, np.diff(a["item_idx"].to_numpy()) != 0])
    ends = np.r_[starts[1:], len(a)]
    for s, e, item in zip(starts, ends, a["item"].to_numpy()[starts]):
        keys[s:e] = np.random.default_rng([seed, zlib.crc32(str(item).encode("utf-8"))]).random(e - s)
    a["key"] = keys
    a = a.sort_values(["item_idx", "key"], kind="stable")
    a["pos"] = a.groupby("item_idx").cumcount()
    return a.drop(columns=["key"]).reset_index(drop=True)


def replay(policy, answers: pd.DataFrame, truth: pd.DataFrame | None = None, seed: int = 0,
           skills: pd.Series | None = None, max_rounds: int = 1000, exclusion=None,
           known: dict[str, str] | None = None, n_labels: int | None = None) -> ReplayResult:
    """Replay `answers` against `policy`; `truth` (item, label) is used only to score at the end.
    `known` (item -> label): known-answer items, as the harvest has them: bought for like any
    other item, they calibrate the policy's accuracy estimate and feed `exclusion` (ExclusionRules,
    to exclude workers as the harvest does, with the batch's `n_labels`; it defaults to the labels
    answered). Known-answer items are not scored: a batch does not deliver them as labels."""
    pool = shuffled_answers(answers, seed)
    n_labels = n_labels or pool["label"].nunique()
    excluded: list[str] = []
    items = np.sort(pool["item"].unique())
    recorded = pool.groupby("item").size().reindex(items).to_numpy()
    bought = pd.Series(policy.initial_assignments, index=items, dtype=int)
    rounds = 0
    while True:
        got = pool[pool["pos"].to_numpy() < bought.reindex(pool["item"]).to_numpy()]
        state = pd.DataFrame({"item": items, "bought": bought.to_numpy(), "open": False})
        decisions = policy.decide(got[["item", "worker", "label"]], state, skills, known=known)
        rounds += 1
        extend = {i: d.extend_by for i, d in decisions.items() if d.action == "extend"}
        if exclusion is not None:
            pool = _exclude(pool, got, bought, known or {}, n_labels, exclusion, excluded)
        if not extend or rounds >= max_rounds:
            break
        for item, by in extend.items():
            bought[item] = min(bought[item] + by, policy.max_assignments)
    available = pool.groupby("item").size().reindex(items).to_numpy()  # after exclusions
    received = np.minimum(bought.to_numpy(), available)
    final = pd.DataFrame({
        "item": items,
        "label": [decisions[i].label for i in items],
        "confidence": [decisions[i].confidence for i in items],
        "action": [decisions[i].action for i in items],
        "answers": received,
    })
    delivered = final[~final["item"].isin(list(known))] if known else final
    accuracy, n_scored = score(delivered.set_index("item")["label"], truth)
    n = int(received.sum())
    per = assignment_cost(REWARD, policy.max_assignments)
    return ReplayResult(
        policy=repr(policy), seed=seed, items=len(items), accuracy=accuracy,
        unresolved=int((final["action"] == "unresolved").sum()),
        starved=int((bought.to_numpy() > available).sum()),
        answers_per_item=n / len(items), available_per_item=float(recorded.mean()),
        fraction_bought=n / float(recorded.sum()), cost=per * n, rounds=rounds, excluded=excluded, n_scored=n_scored,
        labels=final,
        received=got[["item", "worker", "label"]].reset_index(drop=True),
    )


def _exclude(pool: pd.DataFrame, got: pd.DataFrame, bought: pd.Series, known: dict[str, str], n_labels: int,
             rules, excluded: list[str]) -> pd.DataFrame:
    """The harvest's exclusion after a round: `assess` on what was received; the newly excluded
    workers' answers not yet received leave the pool (positions renumbered, order kept)."""
    from annotate.exclusion import assess

    already = set(excluded)
    new = [d.worker_id for d in assess(got[["item", "worker", "label"]], known, n_labels, rules, already)
           if d.exclude and d.worker_id not in already]
    if not new:
        return pool
    excluded.extend(new)
    future = pool["pos"].to_numpy() >= bought.reindex(pool["item"]).to_numpy()
    keep = ~(future & pool["worker"].isin(new).to_numpy())
    pool = pool[keep].reset_index(drop=True)
    pool["pos"] = pool.groupby("item").cumcount()
    return pool


# Known-answer items a replay seeds a batch with: a share of the items, at least this many (a
# logistic calibration wants a few dozen points), at most half.
KNOWN_LEAST = 30


def known_sample(answers: pd.DataFrame, truth: pd.DataFrame, share: float, seed: int) -> dict[str, str]:
    """item -> known answer (its truth) for a seeded random `share` of the answered items with truth
    (at least KNOWN_LEAST, at most half of them; none when share is 0): the known-answer items a
    requester would seed a batch with, for replays that calibrate on them."""
    if share <= 0:
        return {}
    t = truth.astype({"item": str, "label": str}).set_index("item")["label"]
    items = np.sort(answers["item"].astype(str).unique())
    items = items[np.isin(items, t.index)]
    n = min(max(int(round(share * len(items))), KNOWN_LEAST), len(items) // 2)
    chosen = np.random.default_rng([seed, 16]).choice(items, size=n, replace=False)
    return {str(i): str(t[i]) for i in chosen}


def score(labels: pd.Series, truth: pd.DataFrame | None) -> tuple[float, int]:
    """(accuracy, items scored) of labels (item -> label) over exactly the items that have both a
    label and a truth row: an item without truth is neither right nor wrong, and a truth row for an
    item never labelled is not a miss. Accuracy is NaN when nothing can be scored."""
    if truth is None or not len(truth) or not len(labels):
        return float("nan"), 0
    t = truth.astype({"item": str, "label": str}).set_index("item")["label"]
    got = labels.copy()
    got.index = got.index.astype(str)
    both = t.index.intersection(got.index)
    if not len(both):
        return float("nan"), 0
    right = got.reindex(both).astype(object).to_numpy() == t.reindex(both).to_numpy()
    return float(right.mean()), int(len(both))
