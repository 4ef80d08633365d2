"""Semantics client code depends on: paging, sandbox vs production money, HIT status over its
life (as the API reference states), throttling as a token bucket and a client that adapts to it."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from conftest_marketplace import FakeClock, accept, client, hit_params, work

from annotate.cli import cli
from annotate.concurrency import AdaptiveRate
from annotate.fees import assignment_cost
from annotate.marketplace import MarketplaceServer
from annotate.marketplace.faults import FaultSpec, TokenBucket
from annotate.mturk import MTurk

MASTERS = "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"
DAY = 86400


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def production(tmp_path, clock):
    with MarketplaceServer(tmp_path / "p.db", clock=clock, mode="production", faults="") as srv:
        yield srv


@pytest.fixture
def sandbox(tmp_path, clock):
    with MarketplaceServer(tmp_path / "s.db", clock=clock, mode="sandbox", faults="") as srv:
        yield srv


# ------------------------------------------------------------------------------ paging
def test_every_page_with_results_has_a_next_token_as_on_mturk(production):
    """The loop widely used clients (and AWS's examples) write: it needs NextToken on the last page too."""
    mturk = client(production.url)
    for i in range(7):
        mturk.create_hit(**hit_params(RequesterAnnotation=f"i/{i}"))
    seen, pages = [], 0
    page = mturk.list_hits(MaxResults=3)
    while page["HITs"]:
        pages += 1
        seen += [h["RequesterAnnotation"] for h in page["HITs"]]
        page = mturk.list_hits(MaxResults=3, NextToken=page["NextToken"])
    assert pages == 3 and sorted(seen) == sorted(f"i/{i}" for i in range(7))
    assert page["NumResults"] == 0 and "NextToken" not in page
    exact = mturk.list_hits(MaxResults=7)  # a page that happens to hold everything still has a token
    assert exact["NumResults"] == 7 and mturk.list_hits(MaxResults=7, NextToken=exact["NextToken"])["HITs"] == []


class PagedFake:
    """A client whose pages end in one of the two ways real services end them."""

    def __init__(self, pages):
        self.pages = pages
        self.calls = 0

    def list_hits(self, **params):
        self.calls += 1
        return self.pages[int(params.get("NextToken", "0"))]


@pytest.mark.parametrize("pages", [
    [{"HITs": [1, 2], "NextToken": "1"}, {"HITs": [3], "NextToken": "2"}, {"HITs": []}],  # MTurk: empty page ends
    [{"HITs": [1, 2], "NextToken": "1"}, {"HITs": [3]}],  # no token on the last page
    [{"HITs": [1, 2], "NextToken": "1"}, {"HITs": [3], "NextToken": "2"}, {"HITs": [], "NextToken": "3"}],
])
def test_annotate_paging_stops_on_an_empty_page_or_a_missing_token(pages):
    fake = PagedFake(pages + [{"HITs": ["never read"]}])
    mturk = MTurk.__new__(MTurk)
    mturk.call = lambda operation, **params: fake.list_hits(**params)
    assert list(mturk.pages("ListHITs", "HITs")) == [1, 2, 3]
    assert fake.calls == len(pages)


def test_annotate_paging_stops_on_a_short_page_without_asking_for_the_empty_one():
    fake = PagedFake([{"HITs": [1, 2], "NextToken": "1"}, {"HITs": [3], "NextToken": "2"}, {"HITs": ["never"]}])
    mturk = MTurk.__new__(MTurk)
    mturk.call = lambda operation, **params: fake.list_hits(**params)
    assert list(mturk.pages("ListHITs", "HITs", MaxResults=2)) == [1, 2, 3]
    assert fake.calls == 2


# ------------------------------------------------------------------------------ money
def test_sandbox_balance_is_fixed(sandbox):
    mturk = client(sandbox.url)
    hit = mturk.create_hit(**hit_params(MaxAssignments=3, Reward="1.00"))["HIT"]
    assignment_id = work(sandbox.url, hit["HITId"], "A1SANDBOXWORKER")
    mturk.approve_assignment(AssignmentId=assignment_id)
    mturk.send_bonus(WorkerId="A1SANDBOXWORKER", AssignmentId=assignment_id, BonusAmount="5.00", Reason="Good")
    mturk.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=2)
    got = mturk.get_account_balance()
    assert got["AvailableBalance"] == "10000.00" and "OnHoldBalance" not in got


def test_production_debits_holds_and_refunds(production):
    mturk = client(production.url)
    hit = mturk.create_hit(**hit_params(MaxAssignments=3, Reward="1.00"))["HIT"]
    unit = assignment_cost(Decimal("1.00"), 3)
    got = mturk.get_account_balance()
    assert Decimal(got["AvailableBalance"]) == Decimal("10000.00") - 3 * unit
    assert Decimal(got["OnHoldBalance"]) == 3 * unit
    assignment_id = work(production.url, hit["HITId"], "A1PRODWORKER")
    mturk.approve_assignment(AssignmentId=assignment_id)  # paid out: no longer held
    assert Decimal(mturk.get_account_balance()["OnHoldBalance"]) == 2 * unit
    mturk.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=datetime(2015, 1, 1))
    mturk.delete_hit(HITId=hit["HITId"])  # the two slots never used come back
    got = mturk.get_account_balance()
    assert Decimal(got["AvailableBalance"]) == Decimal("10000.00") - unit and got["OnHoldBalance"] == "0.00"


def test_masters_hits_pay_five_percent_more(production):
    mturk = client(production.url)
    masters = [{"QualificationTypeId": MASTERS, "Comparator": "Exists"}]
    before = Decimal(mturk.get_account_balance()["AvailableBalance"])
    mturk.create_hit(**hit_params(MaxAssignments=2, Reward="1.00", QualificationRequirements=masters))
    after = Decimal(mturk.get_account_balance()["AvailableBalance"])
    assert before - after == 2 * Decimal("1.25") == 2 * assignment_cost(Decimal("1.00"), 2, masters=True)


def test_serve_has_a_mode_option_defaulting_to_sandbox():
    result = CliRunner().invoke(cli, ["marketplace", "serve", "--help"])
    assert result.exit_code == 0 and "--mode [sandbox|production]" in result.output
    assert "default: sandbox" in result.output.replace("\n", " ").replace("  ", " ")
    bad = CliRunner().invoke(cli, ["marketplace", "serve", "--mode", "live"])
    assert bad.exit_code == 2


# ------------------------------------------------------------------------------ HIT status over its life
def status(mturk, hit_id: str) -> str:
    return mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"]


def test_status_through_work_review_and_disposal(production, clock):
    mturk = client(production.url)
    hit_id = mturk.create_hit(**hit_params(MaxAssignments=1, LifetimeInSeconds=3600))["HIT"]["HITId"]
    assert status(mturk, hit_id) == "Assignable"
    assignment_id = work(production.url, hit_id, "A1STATUSWORKER")
    assert status(mturk, hit_id) == "Reviewable"  # every assignment submitted
    mturk.update_hit_review_status(HITId=hit_id, Revert=False)
    assert status(mturk, hit_id) == "Reviewing"
    mturk.approve_assignment(AssignmentId=assignment_id)
    # "You can only dispose of HITs that are in the Reviewable state": not Reviewing.
    with pytest.raises(ClientError) as info:
        mturk.delete_hit(HITId=hit_id)
    assert info.value.response["Error"]["Code"] == "RequestError"
    mturk.update_hit_review_status(HITId=hit_id, Revert=True)
    assert status(mturk, hit_id) == "Reviewable"
    mturk.delete_hit(HITId=hit_id)
    assert status(mturk, hit_id) == "Disposed"
    assert hit_id not in {h["HITId"] for h in mturk.list_hits()["HITs"]}
    with pytest.raises(ClientError):  # once disposed, a rejection can no longer be overridden
        mturk.approve_assignment(AssignmentId=assignment_id, OverrideRejection=True)


def test_status_on_expiry(production, clock):
    mturk = client(production.url)
    worked = mturk.create_hit(**hit_params(MaxAssignments=3, LifetimeInSeconds=600))["HIT"]["HITId"]
    in_progress = mturk.create_hit(**hit_params(MaxAssignments=1, LifetimeInSeconds=600,
                                                AssignmentDurationInSeconds=3600))["HIT"]["HITId"]
    untouched = mturk.create_hit(**hit_params(MaxAssignments=1, LifetimeInSeconds=600))["HIT"]["HITId"]
    work(production.url, worked, "A1EXPIRYWORKER")
    accept(production.url, in_progress, "A1EXPIRYWORKER")
    assert status(mturk, in_progress) == "Unassignable"
    clock.advance(601)
    assert status(mturk, worked) == "Reviewable"  # expired with a submission: up for review
    assert status(mturk, in_progress) == "Unassignable"  # a worker still holds it
    assert status(mturk, untouched) == "Assignable"  # expired unworked: stays so, and may be deleted
    mturk.update_expiration_for_hit(HITId=worked, ExpireAt=datetime.fromtimestamp(clock() + 3600, timezone.utc))
    assert status(mturk, worked) == "Assignable"  # given more time, it is open again
    mturk.delete_hit(HITId=untouched)
    assert status(mturk, untouched) == "Disposed"


def test_hits_are_disposed_of_after_120_days(production, clock):
    """"HITs are automatically disposed of after 120 days" (counted from expiry, so a long-lived
    HIT is never disposed of while it runs); the money still held comes back."""
    mturk = client(production.url)
    hit_id = mturk.create_hit(**hit_params(MaxAssignments=2, Reward="1.00", LifetimeInSeconds=3600))["HIT"]["HITId"]
    assignment_id = work(production.url, hit_id, "A1OLDWORKER")
    clock.advance(3600 + 119 * DAY)
    assert status(mturk, hit_id) == "Reviewable"
    assert mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]["AssignmentStatus"] == "Approved"  # auto
    clock.advance(DAY)
    assert status(mturk, hit_id) == "Disposed"
    assert mturk.list_hits()["HITs"] == []
    got = mturk.get_account_balance()
    assert Decimal(got["AvailableBalance"]) == Decimal("10000.00") - assignment_cost(Decimal("1.00"), 2)
    assert got["OnHoldBalance"] == "0.00"


# ------------------------------------------------------------------------------ throttling
def test_rate_spec():
    spec = FaultSpec.parse("rate=5/s,burst=10")
    assert (spec.rate, spec.burst, spec.active) == (5, 10, True)
    assert FaultSpec.parse(str(spec)) == spec
    assert FaultSpec.parse("rate=20").burst == 20  # burst defaults to a second's worth
    for bad, named in [("rate=0", "rate"), ("rate=fast", "rate"), ("burst=3", "burst needs a rate"),
                       ("rate=5,burst=0.5", "burst")]:
        with pytest.raises(ValueError, match=named):
            FaultSpec.parse(bad)


def test_token_bucket():
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 100
    assert sum(bucket.take() for _ in range(10)) == 3  # never more than the burst


def test_an_empty_bucket_answers_mturks_throttling_error(tmp_path):
    with MarketplaceServer(tmp_path / "t.db", faults="rate=1/s,burst=2") as srv:
        mturk = client(srv.url, retries=False)
        mturk.get_account_balance()
        mturk.get_account_balance()
        with pytest.raises(ClientError) as info:
            mturk.get_account_balance()
        assert info.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert srv.faults.counts["rate"] == 1
        assert srv.backend.stats()["api_calls"]["GetAccountBalance"] == 2  # the refused call was not applied


def test_adaptive_rate_cuts_on_throttle_and_climbs_back():
    now = [0.0]
    rate = AdaptiveRate(beta=0.8, recover_seconds=4, cooldown=0.5, clock=lambda: now[0],
                        sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(100):  # unlimited at first: 100 calls in 0.5 s
        rate.acquire()
        now[0] += 0.005
    rate.throttled()
    assert rate.rate == pytest.approx(80, rel=0.05) and rate.ceiling == pytest.approx(100, rel=0.05)
    rate.throttled()  # calls that were in flight: no second cut within the cooldown
    assert rate.cuts == 1 and rate.throttles == 2
    start = now[0]
    for _ in range(80):
        rate.acquire()
    assert 0.85 <= now[0] - start <= 1.1  # paced at about 80/s
    now[0] = start + 4  # after recover_seconds the rate is back at the ceiling ...
    rate.acquire()
    assert rate.rate == pytest.approx(100, rel=0.02)
    now[0] = start + 12  # ... and then probes above it
    rate.acquire()
    assert rate.rate > 110


def test_adaptive_rate_forgets_a_limit_after_a_quiet_spell():
    """A throttle met while sending slowly (one call a second) must not cap the client near that
    rate for good: after `forget` seconds without a throttle it is unlimited again."""
    now = [0.0]
    rate = AdaptiveRate(forget=30, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(3):
        rate.acquire()
        rate.succeeded()
        now[0] += 1.0
    rate.throttled()
    assert rate.rate is not None and rate.rate <= 2
    now[0] += 31
    start = now[0]
    for _ in range(200):
        rate.acquire()
    assert rate.rate is None and now[0] == start  # 200 calls without waiting


@pytest.mark.slow
def test_adaptive_client_sustains_the_rate_with_few_throttles(tmp_path):
    """A client with 8 threads against a 40/s bucket: near 40/s, few calls throttled."""
    from annotate.concurrency import parallel

    r = 40
    with MarketplaceServer(tmp_path / "r.db", faults=f"rate={r}/s,burst={r}") as srv:
        mturk = MTurk(client(srv.url, retries=False), "local", srv.url, adaptive=True)
        started = time.perf_counter()
        done = sum(1 for _ in parallel(lambda _: mturk.call("GetAccountBalance"), range(12 * r), workers=8))
        elapsed = time.perf_counter() - started
        counts = srv.faults.counts
    achieved = done / elapsed
    assert done == 12 * r
    assert achieved >= 0.85 * r, f"{achieved:.1f}/s of {r}/s"
    assert counts["rate"] / counts["calls"] <= 0.05, counts
