"""Each thread calling the API at a time has a boto3 client of its own (issue #7), made once and
reused by later pools; every call is counted whichever client made it."""

from __future__ import annotations

import threading

from annotate.concurrency import parallel
from annotate.marketplace import MarketplaceServer
from annotate.mturk import connect


def test_one_client_per_thread_reused_across_pools(ws, tmp_path):
    seen: dict[int, set[int]] = {}  # client id -> threads that used it at the same time
    in_use: set[int] = set()
    clash = threading.Event()
    lock = threading.Lock()

    with MarketplaceServer(tmp_path / "m.db", faults="latency=0.01") as server, \
            connect(ws, "local", server.url) as mturk:
        original = mturk._checkout

        def checkout():
            context = original()
            client = context.__enter__()
            with lock:
                if id(client) in in_use:
                    clash.set()
                in_use.add(id(client))
                seen.setdefault(id(client), set()).add(threading.get_ident())

            class Wrapped:
                def __enter__(self):
                    return client

                def __exit__(self, *exc):
                    with lock:
                        in_use.discard(id(client))
                    return context.__exit__(*exc)
            return Wrapped()

        mturk._checkout = checkout
        for _ in range(3):  # three pools, one after another
            results = list(parallel(lambda _: mturk.call("GetAccountBalance"), range(40), 4))
            assert len(results) == 40
        assert not clash.is_set(), "two threads used one client at the same time"
        assert 1 < mturk.clients_made <= 5  # the first client, plus at most one per thread of a pool
        assert len(seen) == mturk.clients_made  # later pools reused the clients the first one made
        assert mturk.take_calls() == {"GetAccountBalance": 120}
