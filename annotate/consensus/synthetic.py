"""Seeded synthetic crowds with planted confusion matrices (tests and the timing benchmark)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_crowd(n_items: int = 1000, per_item: int = 10, n_workers: int = 100, n_labels: int = 4,
                    seed: int = 0, accuracy: tuple[float, float] = (0.55, 0.95)):
    """Return (answers, truth labels Series, confusion array [worker, given, true]).

    Each worker's confusion column for true class c puts a drawn accuracy on c and spreads the rest
    with a Dirichlet draw, so errors are class-dependent (what full Dawid–Skene models). Each item is
    answered by `per_item` distinct workers.
    """
    if per_item > n_workers:
        raise ValueError("per_item cannot exceed n_workers")
    rng = np.random.default_rng(seed)
    k = n_labels
    acc = rng.uniform(*accuracy, size=(n_workers, k))
    rest = rng.dirichlet(np.ones(max(k - 1, 1)), size=(n_workers, k))
    conf = np.zeros((n_workers, k, k))
    for c in range(k):  # loop over classes only (k is tiny)
        others = [g for g in range(k) if g != c]
        conf[:, c, c] = acc[:, c]
        conf[:, others, c] = (1 - acc[:, c])[:, None] * rest[:, c, : k - 1]
    truth = rng.integers(k, size=n_items)
    # distinct workers per item: a random start and a stride coprime-ish walk, then a permutation
    stride = max(1, n_workers // per_item)
    start = rng.integers(n_workers, size=n_items)
    workers = (start[:, None] + np.arange(per_item) * stride) % n_workers
    workers = rng.permutation(n_workers)[workers].ravel()
    items = np.repeat(np.arange(n_items), per_item)
    true = truth[items]
    cum = conf[workers, :, true].cumsum(axis=1)  # P(given <= g | true) per answer
    given = (rng.random(len(items))[:, None] > cum).sum(axis=1)
    given = np.minimum(given, k - 1)
    answers = pd.DataFrame({
        "item": np.char.add("i", np.char.zfill(items.astype(str), 6)),
        "worker": np.char.add("w", np.char.zfill(workers.astype(str), 4)),
        "label": given.astype(str),
    })
    truth_s = pd.Series(truth.astype(str), index=np.char.add("i", np.char.zfill(np.arange(n_items).astype(str), 6)), name="label")
    truth_s.index.name = "item"
    return answers, truth_s, conf


def hard_crowd(n_items: int = 600, per_item: int = 6, n_workers: int = 60, n_labels: int = 8, seed: int = 0,
               spammers: int = 3, spam_share: float = 0.3, lookalike: float = 0.6, skew: float = 0.7):
    """A crowd built to be hard for an adaptive policy: many classes, few answers per item, classes
    in look-alike pairs (0/1, 2/3, …: `lookalike` of a worker's errors on a class go to its twin,
    as in `dog`), `spammers` prolific workers answering at random who give `spam_share` of all
    answers, and skewed class priors (class c drawn with weight skew**c).

    Returns (answers, truth Series) in synthetic_crowd's format; each item gets `per_item`
    distinct workers."""
    rng = np.random.default_rng(seed)
    k = n_labels
    prior = skew ** np.arange(k)
    prior /= prior.sum()
    truth = rng.choice(k, size=n_items, p=prior)
    acc = rng.uniform(0.55, 0.9, size=n_workers)
    twin = np.arange(k) ^ 1
    twin[twin >= k] = np.arange(k)[twin >= k]  # odd k: the last class has no twin
    # answerers: spammers take `spam_share` of the slots, the rest go to honest workers uniformly
    weights = np.full(n_workers, (1 - spam_share) / (n_workers - spammers))
    weights[:spammers] = spam_share / spammers
    workers = np.stack([rng.choice(n_workers, size=per_item, replace=False, p=weights) for _ in range(n_items)])
    items = np.repeat(np.arange(n_items), per_item)
    w = workers.ravel()
    true = truth[items]
    u = rng.random(len(items))
    right = u < acc[w]
    to_twin = ~right & (rng.random(len(items)) < lookalike) & (twin[true] != true)
    other = rng.integers(k, size=len(items))
    given = np.where(right, true, np.where(to_twin, twin[true], other))
    spam = w < spammers
    given[spam] = rng.integers(k, size=int(spam.sum()))
    answers = pd.DataFrame({
        "item": np.char.add("h", np.char.zfill(items.astype(str), 6)),
        "worker": np.char.add("w", np.char.zfill(w.astype(str), 4)),
        "label": given.astype(str),
    })
    index = np.char.add("h", np.char.zfill(np.arange(n_items).astype(str), 6))
    truth_s = pd.Series(truth.astype(str), index=index, name="label")
    truth_s.index.name = "item"
    return answers, truth_s
