"""Seeded fault injection on the requester API, so retries and idempotency get exercised.

SPEC is comma-separated key=value pairs, e.g. "latency=0.02,throttle=0.1,error=0.02,drop=0.02,seed=7":

- latency  seconds added to every requester API call (>= 0)
- throttle share of calls answered with ThrottlingException ("Rate exceeded", HTTP 400), not applied
- error    share answered with ServiceUnavailable (HTTP 503, a ServiceFault-style body), not applied
- drop     share that ARE applied but whose response is lost: the connection closes with no answer,
           so the client sees a connection error and retries (a retried CreateHIT then meets
           HitAlreadyExists, a retried CreateAdditionalAssignmentsForHIT its used token)
- seed     seed of the fault draws (default 0)
- rate     a token bucket in front of the requester API, as MTurk has: R calls per second
           (written `R/s` or `R`); a call that finds the bucket empty is answered with
           ThrottlingException ("Rate exceeded", HTTP 400) and not applied
- burst    the bucket's size, the calls that may come at once (default: R, at least 1)

Shares are probabilities per call, in [0, 1], and together at most 1. Worker pages never fail.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

ENV_VAR = "ANNOTATE_MARKETPLACE_FAULTS"
SHARES = ("throttle", "error", "drop")
KEYS = ("latency", *SHARES, "seed", "rate", "burst")


@dataclass(frozen=True)
class FaultSpec:
    latency: float = 0.0
    throttle: float = 0.0
    error: float = 0.0
    drop: float = 0.0
    seed: int = 0
    rate: float = 0.0  # calls per second; 0: no bucket
    burst: float = 0.0  # 0: as many as `rate`

    @classmethod
    def parse(cls, spec: str) -> "FaultSpec":
        """Read a SPEC; a ValueError names the key (or the part) that is wrong."""
        values: dict[str, float | int] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, text = part.partition("=")
            key, text = key.strip(), text.strip()
            if not sep:
                raise ValueError(f"fault spec: {part!r} is not key=value (keys: {', '.join(KEYS)})")
            if key not in KEYS:
                raise ValueError(f"fault spec: unknown key {key!r} (keys: {', '.join(KEYS)})")
            if key in values:
                raise ValueError(f"fault spec: key {key!r} is given twice")
            if key == "rate" and text.endswith("/s"):
                text = text[:-2].strip()
            try:
                value: float | int = int(text) if key == "seed" else float(text)
            except ValueError:
                kind = "a whole number" if key == "seed" else "a number"
                raise ValueError(f"fault spec: {key}={text!r} is not {kind}") from None
            if key == "latency" and not 0 <= value <= 60:
                raise ValueError(f"fault spec: latency={text} must be between 0 and 60 seconds")
            if key in SHARES and not 0 <= value <= 1:
                raise ValueError(f"fault spec: {key}={text} must be a share between 0 and 1")
            if key in ("rate", "burst") and not 0 < value <= 1_000_000:
                raise ValueError(f"fault spec: {key}={text} must be more than 0 (and at most 1000000)")
            values[key] = value
        if "burst" in values and "rate" not in values:
            raise ValueError("fault spec: burst needs a rate (rate=R/s,burst=B)")
        if "rate" in values and "burst" not in values:
            values["burst"] = max(1.0, float(values["rate"]))
        if "burst" in values and float(values["burst"]) < 1:
            raise ValueError(f"fault spec: burst={values['burst']:g} must be at least 1 (a call takes one token)")
        total = sum(float(values.get(k, 0)) for k in SHARES)
        if total > 1:
            raise ValueError(f"fault spec: throttle + error + drop = {total:g}, more than 1")
        return cls(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        text = (f"latency={self.latency:g},throttle={self.throttle:g},error={self.error:g},drop={self.drop:g},"
                f"seed={self.seed}")
        if self.rate:
            text += f",rate={self.rate:g}/s,burst={self.burst:g}"
        return text

    @property
    def active(self) -> bool:
        return bool(self.latency or self.throttle or self.error or self.drop or self.rate)


class TokenBucket:
    """`rate` tokens a second, at most `burst` held; a call takes one or is refused (never waits)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


class Faults:
    """The draws: one per requester call, from one seeded RNG, counted by kind."""

    def __init__(self, spec: FaultSpec):
        self.spec = spec
        self._rng = random.Random(spec.seed)
        self._lock = threading.Lock()
        self.bucket = TokenBucket(spec.rate, spec.burst) if spec.rate else None
        self.counts = {"calls": 0, "throttle": 0, "error": 0, "drop": 0}
        if self.bucket is not None:
            self.counts["rate"] = 0  # calls refused because the bucket was empty

    def draw(self) -> str | None:
        """"rate" (the bucket is empty), "throttle", "error", "drop" or None for the next call."""
        if self.bucket is not None and not self.bucket.take():
            with self._lock:
                self.counts["calls"] += 1
                self.counts["rate"] += 1
            return "rate"
        with self._lock:
            self.counts["calls"] += 1
            r = self._rng.random()
            edge = 0.0
            for kind in SHARES:
                edge += getattr(self.spec, kind)
                if r < edge:
                    self.counts[kind] += 1
                    return kind
            return None
