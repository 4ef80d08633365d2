"""A bounded pool for API calls: results come back to the calling thread, which alone writes
to SQLite (in batched transactions); at most `window` calls are in flight or waiting, so a
100,000-item batch never holds 100,000 futures in memory."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

CONCURRENCY_ENV = "ANNOTATE_CONCURRENCY"
DEFAULT_CONCURRENCY = 8  # MTurk throttles bursts; 8 in flight with backoff stays under its rate


def default_concurrency() -> int:
    value = os.environ.get(CONCURRENCY_ENV)
    return max(1, int(value)) if value and value.isdigit() else DEFAULT_CONCURRENCY


def parallel(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> Iterator[tuple[T, R]]:
    """(item, fn(item)) pairs as calls finish; the first exception is raised once the calls in
    flight have finished (their results are yielded first, so nothing done is left unrecorded)."""
    workers = workers or default_concurrency()
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    source = iter(items)
    window = workers * 4
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="annotate-api") as pool:
        pending: dict[Future, T] = {}
        queue: deque = deque()

        def fill() -> None:
            while failure is None and len(pending) < window:
                try:
                    item = next(source)
                except StopIteration:
                    return
                pending[pool.submit(fn, item)] = item

        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                exc = future.exception()
                if exc is not None:
                    failure = failure or exc
                else:
                    queue.append((item, future.result()))
            while queue:
                yield queue.popleft()
            fill()
    if failure is not None:
        raise failure
