"""Money never leaks: our fee arithmetic equals what the marketplace debits, and no sequence of
posts and extensions under a budget ever commits past it (hypothesis)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.budget import Budget
from annotate.fees import assignment_cost, hit_cost
from annotate.marketplace import MarketplaceServer
from annotate.templates import html_question

QUESTION = html_question("<form><input name='x'></form>")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with MarketplaceServer(tmp_path_factory.mktemp("mp") / "m.db") as server:
        yield boto3.client("mturk", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")


def balance(client) -> Decimal:
    return Decimal(client.get_account_balance()["AvailableBalance"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cents=st.integers(min_value=0, max_value=300), assignments=st.integers(min_value=1, max_value=15),
       extra=st.integers(min_value=0, max_value=6))
def test_fees_match_the_marketplace_debits(client, cents, assignments, extra):
    reward = Decimal(cents) / 100
    before = balance(client)
    hit = client.create_hit(MaxAssignments=assignments, LifetimeInSeconds=600, AssignmentDurationInSeconds=60,
                            Reward=f"{reward:.2f}", Title="t", Description="d", Question=QUESTION)["HIT"]
    assert before - balance(client) == hit_cost(reward, assignments)
    if extra and (assignments >= 10 or assignments + extra < 10):  # MTurk refuses crossing 10 by extension
        before = balance(client)
        client.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=extra,
                                                     UniqueRequestToken=uuid.uuid4().hex)
        assert before - balance(client) == assignment_cost(reward, assignments) * extra


@settings(max_examples=200, deadline=None)
@given(cap=st.integers(min_value=0, max_value=5000), account=st.one_of(st.none(), st.integers(0, 8000)),
       used=st.integers(0, 3000), costs=st.lists(st.integers(0, 500), max_size=40))
def test_budget_never_allows_spending_past_a_cap(cap, account, used, costs):
    cents = Decimal("0.01")
    budget = Budget(Decimal(cap) * cents, None if account is None else Decimal(account) * cents,
                    Decimal(used) * cents, Decimal(used) * cents)
    total = Decimal(used) * cents
    for c in costs:
        cost = Decimal(c) * cents
        if budget.allows(cost):
            budget = budget.spend(cost)
            total += cost
            assert total <= Decimal(cap) * cents or total == Decimal(used) * cents + 0
            if account is not None:
                assert total <= Decimal(account) * cents
        else:
            assert total + cost > Decimal(cap) * cents or (account is not None and total + cost > Decimal(account) * cents)


@pytest.mark.parametrize("cap", ["1.50", "2.10", "3.33"])
def test_a_disagreeing_crowd_cannot_spend_past_the_budget(ws, tmp_path, cap):
    """Spammers never convince a confidence policy with a near-impossible threshold, so it keeps
    asking for more; the budget says no in time. Checked against the marketplace's own balance."""
    from annotate.config import load_batch
    from annotate.harvest import harvest
    from annotate.marketplace.crowd import SimulatedCrowd
    from annotate.post import post_batch
    from conftest import make_batch

    batch_dir = make_batch(tmp_path, items=10, budget__max_usd=f'"{cap}"')  # posting costs 10 × 2 × $0.06 = $1.20
    toml = (batch_dir / "batch.toml").read_text().replace('policy = "agree"\nagree = 2',
                                                           'policy = "confidence"\nthreshold = 0.9999')
    (batch_dir / "batch.toml").write_text(toml)
    over_budget = 0
    with MarketplaceServer(ws.marketplace_db) as server:
        mturk = boto3.client("mturk", endpoint_url=server.url, region_name="us-east-1",
                             aws_access_key_id="x", aws_secret_access_key="x")
        start = balance(mturk)
        post_batch(ws, batch_dir, endpoint_url=server.url)
        crowd = SimulatedCrowd(server.url, load_batch(batch_dir).gold_annotations(), workers=20, spammer_share=1.0, seed=5)
        for _ in range(30):
            crowd.work()
            [result] = harvest(ws, ["iris-small"], endpoint_url=server.url)
            over_budget += result.over_budget
            if result.done:
                break
        assert result.done
        spent = start - balance(mturk)
        assert spent <= Decimal(cap)
        assert over_budget > 0  # the budget, not the policy, stopped the buying
        assert spent + Decimal("0.06") > Decimal(cap) - Decimal("0.06") * 10  # and it was spent, not hoarded
