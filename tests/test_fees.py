"""MTurk's fee rules."""

from decimal import Decimal

from annotate.fees import assignment_cost, assignment_fee, fee_rate, format_money, hit_cost


def test_fee_rules():
    assert assignment_fee(Decimal("0.05"), 2) == Decimal("0.01")  # 20% of 5 cents is 1 cent
    assert assignment_fee(Decimal("0.02"), 2) == Decimal("0.01")  # the $0.01 minimum
    assert assignment_fee(Decimal("1.00"), 9) == Decimal("0.20")
    assert assignment_fee(Decimal("1.00"), 10) == Decimal("0.40")  # the 10-assignment cliff
    assert assignment_fee(Decimal("1.00"), 3, masters=True) == Decimal("0.25")
    assert fee_rate(10, masters=True) == Decimal("0.45")
    assert assignment_cost(Decimal("0.05"), 2) == Decimal("0.06")
    assert hit_cost(Decimal("0.50"), 3) == Decimal("1.80")
    assert format_money(Decimal("3")) == "3.00"
