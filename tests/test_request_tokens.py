"""UniqueRequestToken from what a batch is, not where it is posted from (issue 11, B13): the same
batch posted from two project homes against one marketplace (one MTurk account) within the 24-hour
token window recovers the first home's HITs instead of paying for them twice; after the window,
MTurk has forgotten the tokens and a second home pays again (what the README says)."""

from __future__ import annotations

from decimal import Decimal

from annotate.marketplace import MarketplaceServer
from annotate.post import post_batch, request_token
from annotate.store import Store
from annotate.workspace import Workspace
from conftest import all_hits, make_batch, mturk_client


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _balance(url: str) -> Decimal:
    return Decimal(mturk_client(url).get_account_balance()["AvailableBalance"])


def test_same_batch_from_two_homes_recovers_instead_of_paying_twice(tmp_path):
    clock = Clock()
    home_a, home_b, home_c = (Workspace(tmp_path / h).ensure() for h in ("a", "b", "c"))
    batch = make_batch(tmp_path / "batch", items=4)
    with MarketplaceServer(tmp_path / "shared-account.db", clock=clock) as market:
        before = _balance(market.url)
        first = post_batch(home_a, batch, endpoint_url=market.url)
        assert (first.created, first.recovered) == (4, 0)
        paid = before - _balance(market.url)
        assert paid > 0

        clock.now += 23 * 3600  # within MTurk's 24-hour window
        second = post_batch(home_b, batch, endpoint_url=market.url)
        assert (second.created, second.recovered) == (0, 4)
        assert len(all_hits(mturk_client(market.url))) == 4
        assert before - _balance(market.url) == paid  # nothing paid twice
        a_hits = {h["item_id"]: h["hit_id"] for h in Store(home_a.store_path).hits("iris-small", created=True)}
        b_hits = {h["item_id"]: h["hit_id"] for h in Store(home_b.store_path).hits("iris-small", created=True)}
        assert a_hits == b_hits  # both homes harvest the same HITs
        assert Store(home_a.store_path).get_batch("iris-small")["uid"] == Store(home_b.store_path).get_batch("iris-small")["uid"]

        clock.now += 2 * 3600  # past the window: MTurk no longer knows the tokens
        third = post_batch(home_c, batch, endpoint_url=market.url)
        assert (third.created, third.recovered) == (4, 0)
        assert len(all_hits(mturk_client(market.url))) == 8


def test_a_different_batch_never_recovers_another_batchs_hits(tmp_path, marketplace, ws):
    """Same name and item ids but other content (an edited item, a different reward) is another HIT:
    recovering it would harvest answers to a question this batch never asked."""
    batch = make_batch(tmp_path / "one", items=3)
    post_batch(ws, batch, endpoint_url=marketplace.url)

    edited = make_batch(tmp_path / "two", items=3)
    rows = (edited / "items.csv").read_text().splitlines()
    rows[1] = rows[1].replace(rows[1].split(",")[1], "9.9", 1)  # the first item's sepal length
    (edited / "items.csv").write_text("\n".join(rows) + "\n")
    other = post_batch(Workspace(tmp_path / "home2").ensure(), edited, endpoint_url=marketplace.url)
    assert (other.created, other.recovered) == (1, 2)

    dearer = make_batch(tmp_path / "three", items=3, hit__reward='"0.06"')
    third = post_batch(Workspace(tmp_path / "home3").ensure(), dearer, endpoint_url=marketplace.url)
    assert (third.created, third.recovered) == (3, 0)


def test_request_token_signature_and_length():
    """harvest.py calls request_token(uid, item_id, round) for extensions; MTurk takes ≤ 64 characters."""
    token = request_token("0123456789abcdef", "item-1", 2)
    assert token == request_token("0123456789abcdef", "item-1", 2) and len(token) <= 64
    assert request_token("0123456789abcdef", "item-1", 0, "digest") != request_token("0123456789abcdef", "item-1", 0)
    assert request_token("u", "\ud800", 0)  # a lone surrogate never reaches here (config refuses it), nor crashes it


def test_a_crash_older_than_the_token_window_is_recovered_by_listing(tmp_path):
    """Within one home: a run killed between MTurk creating a HIT and the store recording it, re-run
    more than 24 hours later, when MTurk no longer knows the token. The HIT is found by ListHITs
    (same HIT type, annotation and question) instead of being created and paid for again."""
    clock = Clock()
    home = Workspace(tmp_path / "home").ensure()
    batch = make_batch(tmp_path / "batch", items=3)
    with MarketplaceServer(tmp_path / "account.db", clock=clock) as market:
        post_batch(home, batch, endpoint_url=market.url)
        store = Store(home.store_path)
        before = {h["item_id"]: h["hit_id"] for h in store.hits("iris-small", created=True)}
        lost = sorted(before)[:2]
        with store.db.conn:  # the responses that never reached the store
            store.db.conn.execute("update hits set hit_id = null, status = 'intent', created_at = null, expires_at = null "
                                  f"where item_id in ({', '.join('?' * len(lost))})", lost)
            store.db.conn.execute("update batches set created_at = '2020-01-01T00:00:00Z'")
        clock.now += 25 * 3600
        paid = _balance(market.url)

        again = post_batch(home, batch, endpoint_url=market.url)
        assert (again.created, again.recovered) == (0, 2)
        assert {h["item_id"]: h["hit_id"] for h in Store(home.store_path).hits("iris-small", created=True)} == before
        assert len(all_hits(mturk_client(market.url))) == 3 and _balance(market.url) == paid
