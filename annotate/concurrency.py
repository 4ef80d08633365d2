"""A bounded pool for API calls: results come back to the calling thread, which alone writes
to SQLite (in batched transactions); at most `window` calls are in flight or waiting, so a
100,000-item batch never holds 100,000 futures in memory."""

from __future__ import annotations

import os
import threading
import time
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


class AdaptiveRate:
    """A client-side send rate that adapts to throttling, shared by every thread of a client.

    Unlimited until the service first answers ThrottlingException; from then on calls wait for a
    token of a bucket whose rate follows a cubic curve, as botocore's adaptive retry mode and TCP
    CUBIC do: on a throttle the rate drops to `beta` x the `ceiling`, then grows back fast, lingers
    near the ceiling (where the service's limit was found) and only then probes above it. The
    ceiling is the rate the service let through over the last second (the calls that succeeded):
    while we send too fast that is the service's own limit, so one cut lands near it however far
    above it the client was. One throttle per `cooldown` seconds counts: calls already in flight
    when the limit is hit do not cut the rate again and again. Probing stops at `headroom` x the
    ceiling, so a client that was idle (a harvest pass waiting for the next) does not come back
    at any speed at all. After `forget` seconds without a throttle the limit is dropped (unlimited
    again, until the next throttle): a throttle met while sending slowly must not cap the client
    near that slow rate for the rest of its life.
    """

    def __init__(self, beta: float = 0.85, recover_seconds: float = 4.0, cooldown: float = 0.25,
                 headroom: float = 1.5, forget: float = 30.0,
                 clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None):
        self.beta = beta
        self.k = recover_seconds  # seconds from a cut back up to the ceiling
        self.c = (1 - beta) / recover_seconds ** 3  # so that rate(k) == ceiling
        self.cooldown = cooldown
        self.headroom = headroom
        self.forget = forget
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        self.rate: float | None = None  # calls/s; None: not limited yet
        self.ceiling = 0.0
        self._cut_at = 0.0
        self._tokens = 0.0
        self._last = self._clock()
        self._sent: deque[float] = deque()  # send times over the last second, to measure the rate sent
        self._ok: deque[float] = deque()  # times of the calls that succeeded over the last second
        self.throttles = 0
        self.cuts = 0

    @staticmethod
    def _per_second(times: deque, now: float) -> float:
        horizon = now - 1.0
        while times and times[0] < horizon:
            times.popleft()
        return float(len(times))

    def _measured(self, now: float) -> float:
        return self._per_second(self._sent, now)

    def succeeded(self) -> None:
        """A call went through."""
        with self._lock:
            now = self._clock()
            self._ok.append(now)
            self._per_second(self._ok, now)

    def _current(self, now: float) -> float:
        t = now - self._cut_at
        return max(1.0, self.ceiling * min(self.headroom, 1 + self.c * (t - self.k) ** 3))

    def acquire(self) -> None:
        """Wait until a call may be sent."""
        while True:
            with self._lock:
                now = self._clock()
                if self.rate is not None and now - self._cut_at > self.forget:
                    self.rate = None  # no throttle for a while: the limit found then may be long gone
                if self.rate is None:
                    self._sent.append(now)
                    self._measured(now)
                    return
                self.rate = self._current(now)
                self._tokens = min(max(1.0, self.rate / 10), self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    self._sent.append(now)
                    return
                wait = (1 - self._tokens) / self.rate
            self._sleep(wait)

    def throttled(self) -> None:
        """The service said ThrottlingException: cut the rate (once per cooldown)."""
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if self.rate is not None and now - self._cut_at < self.cooldown:
                return
            sent = self._measured(now)
            let_through = self._per_second(self._ok, now)
            if let_through:
                # Throttled at the rate we keep: that rate is too high as well. (Right after a
                # start, the last second's let-through still holds the service's burst.)
                reference = let_through if self.rate is None else min(let_through, self.rate)
            else:  # nothing got through lately: go by what was sent
                reference = sent if self.rate is None else min(self.rate, max(sent, 1.0))
            self.ceiling = max(1.0, reference)
            self._cut_at = now
            self.rate = max(1.0, self.ceiling * self.beta)
            self._tokens = 0.0
            self._last = now
            self.cuts += 1
