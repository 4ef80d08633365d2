"""MTurk's fee rules, in one place, as Decimal.

MTurk charges a commission on every reward and bonus: 20%, with a $0.01 minimum per
assignment; HITs with 10 or more assignments pay another 20% (40% in all); the Masters
qualification adds 5%. The marketplace emulator and the budget checks both use these rules.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
BASE_RATE = Decimal("0.20")
LARGE_HIT_EXTRA = Decimal("0.20")
MASTERS_EXTRA = Decimal("0.05")
MIN_FEE = Decimal("0.01")
LARGE_HIT_ASSIGNMENTS = 10
# The Masters qualification type: production and sandbox ids.
MASTERS_QUALIFICATION_IDS = frozenset({"2F1QJWKUDD8XADTFD2Q0G6UTO95ALH", "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"})


def requires_masters(requirements: list[dict] | None) -> bool:
    """Whether QualificationRequirements ask for Masters (which costs another 5%)."""
    return any((q or {}).get("QualificationTypeId") in MASTERS_QUALIFICATION_IDS for q in requirements or [])


def money(value: str | int | float | Decimal) -> Decimal:
    """A money amount as Decimal (floats go through str so 0.1 stays 0.1)."""
    if isinstance(value, float):
        value = repr(value)
    return Decimal(value)


def fee_rate(max_assignments: int, masters: bool = False) -> Decimal:
    rate = BASE_RATE
    if max_assignments >= LARGE_HIT_ASSIGNMENTS:
        rate += LARGE_HIT_EXTRA
    if masters:
        rate += MASTERS_EXTRA
    return rate


def assignment_fee(reward: Decimal, max_assignments: int, masters: bool = False) -> Decimal:
    """MTurk's commission on one assignment's reward, rounded to the cent, $0.01 minimum."""
    fee = (money(reward) * fee_rate(max_assignments, masters)).quantize(CENT, ROUND_HALF_UP)
    return max(fee, MIN_FEE)


def assignment_cost(reward: Decimal, max_assignments: int, masters: bool = False) -> Decimal:
    """What one assignment costs the requester: reward plus commission."""
    return money(reward) + assignment_fee(reward, max_assignments, masters)


def hit_cost(reward: Decimal, assignments: int, max_assignments: int | None = None, masters: bool = False) -> Decimal:
    """Cost of `assignments` assignments on a HIT whose MaxAssignments is `max_assignments`.

    The fee tier follows the HIT's MaxAssignments (defaults to `assignments`).
    """
    tier = max_assignments if max_assignments is not None else assignments
    return assignment_cost(reward, tier, masters) * assignments


def format_money(value: Decimal) -> str:
    """MTurk's wire format for money: a string with two decimals."""
    return str(money(value).quantize(CENT, ROUND_HALF_UP))
