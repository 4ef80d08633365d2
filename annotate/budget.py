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
