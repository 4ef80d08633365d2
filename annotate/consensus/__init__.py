"""Consensus engine: aggregators (one algorithm per module) and stopping policies.

    from annotate.consensus import get_policy, POLICIES, get_aggregator, AGGREGATORS
"""

from __future__ import annotations

from .aggregators import AGGREGATORS, get_aggregator
from .dawid_skene import DawidSkene
from .majority import MajorityVote
from .one_coin import OneCoinDawidSkene
from .policies import AdaptivePolicy, AgreePolicy, ConfidencePolicy, Decision, FixedPolicy, Policy
from .wawa import Wawa
from .weighted_majority import WeightedMajorityVote

POLICIES = {
    "agree": AgreePolicy,
    "fixed": FixedPolicy,
    "confidence": ConfidencePolicy,
    "adaptive": AdaptivePolicy,
}
# chosen on the replay benchmark (scripts/bench_consensus): see AdaptivePolicy
DEFAULT_POLICY = "adaptive"


def get_policy(name: str | None = None, **settings) -> Policy:
    """A stopping policy by name (None -> DEFAULT_POLICY) with settings from batch.toml's
    [consensus] table; a `policy` key in the settings may name it instead. Unknown names or
    setting keys raise ValueError naming them."""
    chosen = settings.pop("policy", None)
    if chosen is not None and name is not None and chosen != name:
        raise ValueError(f"policy named twice: {name!r} and setting 'policy' = {chosen!r}")
    name = name or chosen or DEFAULT_POLICY
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown consensus policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None
    return cls(**settings)


__all__ = [
    "AGGREGATORS", "AdaptivePolicy", "DEFAULT_POLICY", "POLICIES", "AgreePolicy", "ConfidencePolicy", "DawidSkene", "Decision",
    "FixedPolicy", "MajorityVote", "OneCoinDawidSkene", "Policy", "Wawa", "WeightedMajorityVote",
    "get_aggregator", "get_policy",
]
