"""Registry of aggregators by name (the names batch.toml's [consensus] table uses)."""

from __future__ import annotations

from .dawid_skene import DawidSkene
from .majority import MajorityVote
from .one_coin import OneCoinDawidSkene
from .wawa import Wawa
from .weighted_majority import WeightedMajorityVote

AGGREGATORS = {
    "majority": MajorityVote,
    "weighted_majority": WeightedMajorityVote,
    "wawa": Wawa,
    "dawid_skene": DawidSkene,
    "one_coin": OneCoinDawidSkene,
}


def get_aggregator(name: str, **params):
    """An aggregator instance by registry name; params go to its constructor."""
    try:
        cls = AGGREGATORS[name]
    except KeyError:
        raise ValueError(f"unknown aggregator {name!r}; known: {', '.join(sorted(AGGREGATORS))}") from None
    return cls(**params)
