"""The money guard: posting and extending never pass a batch's budget, nor the optional
account-wide cap (the total over every batch in this project).

Spending counts what is spent (assignments submitted or approved) and what is committed
(assignments bought, not yet submitted; HITs recorded as intent count too), each at MTurk's
fee for its HIT's tier (20%, $0.01 minimum, 40% at ≥ 10 assignments, Masters +5%).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from annotate.errors import BudgetExceeded
from annotate.fees import format_money
from annotate.store import Store


@dataclass(frozen=True)
class Budget:
    batch_cap: Decimal | None
    account_cap: Decimal | None
    batch_used: Decimal
    account_used: Decimal

    @classmethod
    def load(cls, store: Store, batch: str, batch_cap: Decimal | None, account_cap: Decimal | None) -> "Budget":
        used = store.money(batch) if store.get_batch(batch) else {"spent": Decimal(0), "committed": Decimal(0)}
        account = Decimal(0)
        if account_cap is not None:
            for name in store.batch_names():
                m = store.money(name)
                account += m["spent"] + m["committed"]
        return cls(batch_cap, account_cap, used["spent"] + used["committed"], account)

    def allows(self, cost: Decimal) -> bool:
        return self.problem(cost) is None

    def problem(self, cost: Decimal) -> str | None:
        if self.batch_cap is not None and self.batch_used + cost > self.batch_cap:
            return (f"${format_money(cost)} more on top of ${format_money(self.batch_used)} spent or committed passes "
                    f"the batch budget of ${format_money(self.batch_cap)}")
        if self.account_cap is not None and self.account_used + cost > self.account_cap:
            return (f"${format_money(cost)} more on top of ${format_money(self.account_used)} spent or committed "
                    f"across batches passes the account budget of ${format_money(self.account_cap)}")
        return None

    def spend(self, cost: Decimal) -> "Budget":
        return Budget(self.batch_cap, self.account_cap, self.batch_used + cost, self.account_used + cost)

    def require(self, cost: Decimal, what: str, file: str | None = None) -> None:
        problem = self.problem(cost)
        if problem:
            raise BudgetExceeded(f"{what}: {problem}", file=file, field="budget")


def caps_from_config(config: dict) -> tuple[Decimal | None, Decimal | None]:
    budget = config.get("budget", {}) or {}
    batch = Decimal(str(budget["max_usd"])) if budget.get("max_usd") is not None else None
    account = Decimal(str(budget["account_max_usd"])) if budget.get("account_max_usd") is not None else None
    return batch, account


def spend_to_budget(settings: dict, cap: Decimal | None, reward: Decimal, n_items: int) -> dict:
    """[consensus] settings with `answers_per_item = "budget"` made a number: as many answers per
    item, on average, as the batch budget ([budget] max_usd) buys at one assignment's cost (reward
    plus MTurk's fee at the tier of the policy's max_assignments). The policy then spends them
    where they help most. Other settings pass through unchanged."""
    from annotate.consensus.policies import DEFAULT_MAX_ASSIGNMENTS, SettingError
    from annotate.fees import assignment_cost

    if settings.get("answers_per_item") != "budget":
        return settings
    if cap is None:
        raise SettingError("answers_per_item", 'answers_per_item = "budget" spends [budget] max_usd, which is not set')
    most = settings.get("max_assignments", DEFAULT_MAX_ASSIGNMENTS)
    per_answer = assignment_cost(reward, most if isinstance(most, int) and most > 0 else DEFAULT_MAX_ASSIGNMENTS)
    answers = int(cap / per_answer)
    per_item = int(100 * answers / max(n_items, 1)) / 100  # rounded down: never past the budget
    if per_item < 1:
        raise SettingError("answers_per_item", f"[budget] max_usd = {format_money(cap)} buys {answers} answer(s) "
                           f"at ${format_money(per_answer)} each, fewer than one per item for {n_items} items")
    return {**settings, "answers_per_item": per_item}
