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


def paired_spammer_crowd(n_items: int = 1000, n_workers: int = 50, n_labels: int = 4, per_item: int = 6,
                         spammer_share: float = 0.2, paired_share: float = 0.5, known_share: float = 0.0,
                         accuracy: tuple[float, float] = (0.6, 0.97), seed: int = 0):
    """A crowd where spammers (`spammer_share` of the workers, answering uniformly at random) hide
    behind good workers: `paired_share` of them always answer an item together with the same good
    worker, and always as its first two answers (so at two answers per item that good worker's
    only co-worker is a spammer). The other workers' first two answers come from two random
    workers, and answers 3..`per_item` (what extensions buy) from the rest, never a paired spammer.

    Returns (answers with `pos`, the draw order within an item; truth Series; known answers dict
    for `known_share` of the items; workers DataFrame: worker, accuracy, spammer, paired, partner).
    """
    rng = np.random.default_rng([seed, 7])
    ids = np.array([f"w{i:04d}" for i in range(n_workers)])
    order = rng.permutation(n_workers)
    n_spam = round(n_workers * spammer_share)
    n_paired = round(n_spam * paired_share)
    spammers = order[:n_spam]
    paired = order[:n_paired]
    partners = order[n_spam:n_spam + n_paired]  # one good worker each
    acc = rng.uniform(*accuracy, size=n_workers)
    acc[spammers] = 1.0 / n_labels
    free = np.setdiff1d(np.arange(n_workers), paired)  # everyone who ever answers alone
    if len(free) < per_item:
        raise ValueError("not enough unpaired workers for per_item answers")
    # A paired spammer answers as often as anyone else: each worker is among an item's first two
    # answers with probability 2/n_workers, and a pair answers together.
    pair_rate = min(1.0, 2 * n_paired / n_workers)
    truth = rng.integers(n_labels, size=n_items)
    rows_item, rows_worker, rows_pos = [], [], []
    for item in range(n_items):
        if n_paired and rng.random() < pair_rate:
            k = rng.integers(n_paired)
            first = [paired[k], partners[k]] if rng.random() < 0.5 else [partners[k], paired[k]]
        else:
            first = list(rng.choice(free, size=2, replace=False))
        rest_pool = np.setdiff1d(free, first)
        rest = list(rng.choice(rest_pool, size=per_item - 2, replace=False))
        workers = first + rest
        rows_item += [item] * per_item
        rows_worker += workers
        rows_pos += list(range(per_item))
    items = np.array(rows_item)
    workers = np.array(rows_worker)
    true = truth[items]
    correct = rng.random(len(items)) < acc[workers]
    wrong = (true + rng.integers(1, n_labels, size=len(items))) % n_labels  # a uniformly drawn other label
    spam = np.isin(workers, spammers)
    given = np.where(correct, true, wrong)
    given = np.where(spam, rng.integers(n_labels, size=len(items)), given)
    name = np.char.add("i", np.char.zfill(items.astype(str), 6))
    answers = pd.DataFrame({"item": name, "worker": ids[workers], "label": given.astype(str), "pos": rows_pos})
    item_ids = np.char.add("i", np.char.zfill(np.arange(n_items).astype(str), 6))
    truth_s = pd.Series(truth.astype(str), index=item_ids, name="label")
    truth_s.index.name = "item"
    known_idx = rng.choice(n_items, size=round(n_items * known_share), replace=False)
    known = {item_ids[i]: str(truth[i]) for i in sorted(known_idx)}
    partner_of = {int(s): ids[p] for s, p in zip(paired, partners)}
    info = pd.DataFrame({"worker": ids, "accuracy": acc, "spammer": np.isin(np.arange(n_workers), spammers),
                         "paired": np.isin(np.arange(n_workers), paired),
                         "partner": [partner_of.get(i) for i in range(n_workers)]})
    return answers, truth_s, known, info


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
    return _frames("h", items, w, given, truth)


def misleading_crowd(n_items: int = 400, per_item: int = 10, n_workers: int = 40, misleading: float = 0.2,
                     misled: float = 0.75, seed: int = 0):
    """A binary crowd that agrees on the wrong label, as `bluebirds` does: on a `misleading` share
    of the items every worker gives the wrong label with probability `misled` (the image fools
    everyone alike); elsewhere workers are right with their own accuracy in [0.75, 0.95]. From the
    answers alone the misleading items look like easy ones decided the wrong way.

    Returns (answers, truth Series) in hard_crowd's format; each item gets `per_item` distinct workers."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(2, size=n_items)
    tricky = rng.random(n_items) < misleading
    acc = rng.uniform(0.75, 0.95, size=n_workers)
    workers = np.stack([rng.choice(n_workers, size=per_item, replace=False) for _ in range(n_items)])
    items = np.repeat(np.arange(n_items), per_item)
    w = workers.ravel()
    p_right = np.where(tricky[items], 1 - misled, acc[w])
    given = np.where(rng.random(len(items)) < p_right, truth[items], 1 - truth[items])
    return _frames("m", items, w, given, truth)


def _frames(prefix: str, items, workers, given, truth):
    """(answers, truth Series) with item ids `prefix` + 6 digits and worker ids w + 4 digits."""
    answers = pd.DataFrame({
        "item": np.char.add(prefix, np.char.zfill(items.astype(str), 6)),
        "worker": np.char.add("w", np.char.zfill(workers.astype(str), 4)),
        "label": given.astype(str),
    })
    index = np.char.add(prefix, np.char.zfill(np.arange(len(truth)).astype(str), 6))
    truth_s = pd.Series(truth.astype(str), index=index, name="label")
    truth_s.index.name = "item"
    return answers, truth_s
