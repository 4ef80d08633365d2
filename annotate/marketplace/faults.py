"""Seeded fault injection on the requester API, so retries and idempotency get exercised.

SPEC is comma-separated key=value pairs, e.g. "latency=0.02,throttle=0.1,error=0.02,drop=0.02,seed=7":

- latency  seconds added to every requester API call (>= 0)
- throttle share of calls answered with ThrottlingException ("Rate exceeded", HTTP 400), not applied
- error    share answered with ServiceUnavailable (HTTP 503, a ServiceFault-style body), not applied
- drop     share that ARE applied but whose response is lost: the connection closes with no answer,
           so the client sees a connection error and retries (a retried CreateHIT then meets
           HitAlreadyExists, a retried CreateAdditionalAssignmentsForHIT its used token)
- seed     seed of the fault draws (default 0)

Shares are probabilities per call, in [0, 1], and together at most 1. Worker pages never fail.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

ENV_VAR = "ANNOTATE_MARKETPLACE_FAULTS"
SHARES = ("throttle", "error", "drop")


@dataclass(frozen=True)
class FaultSpec:
    latency: float = 0.0
    throttle: float = 0.0
    error: float = 0.0
    drop: float = 0.0
    seed: int = 0

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
                raise ValueError(f"fault spec: {part!r} is not key=value (keys: latency, {', '.join(SHARES)}, seed)")
            if key not in ("latency", "seed", *SHARES):
                raise ValueError(f"fault spec: unknown key {key!r} (keys: latency, {', '.join(SHARES)}, seed)")
            if key in values:
                raise ValueError(f"fault spec: key {key!r} is given twice")
            try:
                value: float | int = int(text) if key == "seed" else float(text)
            except ValueError:
                kind = "a whole number" if key == "seed" else "a number"
                raise ValueError(f"fault spec: {key}={text!r} is not {kind}") from None
            if key == "latency" and not 0 <= value <= 60:
                raise ValueError(f"fault spec: latency={text} must be between 0 and 60 seconds")
            if key in SHARES and not 0 <= value <= 1:
                raise ValueError(f"fault spec: {key}={text} must be a share between 0 and 1")
            values[key] = value
        total = sum(float(values.get(k, 0)) for k in SHARES)
        if total > 1:
            raise ValueError(f"fault spec: throttle + error + drop = {total:g}, more than 1")
        return cls(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"latency={self.latency:g},throttle={self.throttle:g},error={self.error:g},drop={self.drop:g},seed={self.seed}"

    @property
    def active(self) -> bool:
        return bool(self.latency or self.throttle or self.error or self.drop)


class Faults:
    """The draws: one per requester call, from one seeded RNG, counted by kind."""

    def __init__(self, spec: FaultSpec):
        self.spec = spec
        self._rng = random.Random(spec.seed)
        self._lock = threading.Lock()
        self.counts = {"calls": 0, "throttle": 0, "error": 0, "drop": 0}

    def draw(self) -> str | None:
        """"throttle", "error", "drop" or None for the next call."""
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
