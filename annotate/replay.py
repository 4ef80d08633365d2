"""`annotate replay`: a real MTurk answer set replayed through the marketplace, over HTTP.

The dataset's items are posted as a batch on the local target; a ReplayCrowd answers each new
assignment with a recorded worker's answer (in the same per-item order as the offline replay in
annotate.consensus.simulate, so the two can be compared answer for answer); the harvester runs
the consensus policy exactly as it would against MTurk. When an item's recorded answers run out,
its HIT is expired (the requester stops waiting) and the policy decides with what it has.
Accuracy is scored against the truth file only at the end.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from annotate.consensus import DEFAULT_POLICY
from annotate.consensus.simulate import known_sample, score, shuffled_answers
from annotate.config import default_label_attribute
from annotate.datasets import load_crowd_dataset
from annotate.errors import UserError
from annotate.fees import format_money
from annotate.harvest import harvest
from annotate.mturk import MTurk, connect
from annotate.post import post_batch
from annotate.results import accuracy_estimate
from annotate.store import Store
from annotate.workspace import Workspace

REWARD = "0.05"


def _batch_toml(name: str, labels: list[str], policy: str | None, block: bool, known: bool = False) -> str:
    consensus = f'policy = "{policy}"\n' if policy else ""
    known_column = 'known_answer_column = "known"\n' if known else ""
    return f"""[batch]
name = "{name}"
template = "replay.html.j2"
items = "items.csv"
id_column = "id"
{known_column}task_type = "text-classification"
label_attribute = "{default_label_attribute(name)}-label"

[hit]
title = "Replayed task: {name}"
description = "Answers replayed from a recorded MTurk crowd"
keywords = "replay"
reward = "{REWARD}"
assignment_duration = "10m"
lifetime = "3d"
auto_approval_delay = "1d"

[task]
labels = [{", ".join(f'"{label}"' for label in labels)}]
field = "label"

[consensus]
{consensus}
[workers]
block = {"true" if block else "false"}
"""


def run_replay(
    dataset_dir: str | Path,
    *,
    policy: str | None = None,
    seed: int = 0,
    workdir: str | Path = ".",
    block: bool = True,
    recorded_order: bool = False,
    timeout: float = 1800.0,
    on_progress: Callable[[int, int, int], None] | None = None,
    own_process: bool = False,
    known_share: float = 0.0,
) -> dict:
    """`known_share`: seed the batch with known-answer items, a seeded random share of the items
    with truth (at least 30; annotate.consensus.simulate.known_sample, as scripts/bench_consensus
    does): they are bought for like any item, calibrate the accuracy estimate (reported beside the
    measured accuracy) and are not scored.

    `own_process`: run the marketplace in a child process of its own (annotate.marketplace.process)
    instead of a thread of this one. Measured on a shared 2-core machine it is no faster (the replay
    is a request-response ping-pong: each side mostly waits for the other) and costs up to a tenth
    more CPU; it may pay where a core is free and the crowd and the harvest send requests at once."""
    from annotate.marketplace import MarketplaceServer
    from annotate.marketplace.process import MarketplaceProcess
    from annotate.marketplace.replay import ReplayCrowd, ReplayError

    data = load_crowd_dataset(dataset_dir)
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", Path(dataset_dir).resolve().name)[:64] or "replay"
    if any("/" in str(item) for item in data.truth["item"]):
        raise UserError("item ids must not contain '/'", file=str(Path(dataset_dir) / "truth.csv"), field="item")
    if not 0 <= known_share < 1:  # before the last run's folder is cleared: bad input loses nothing
        raise UserError(f"expected a share in [0, 1), got {known_share}", field="--known-share")
    root = Path(workdir).resolve() / "annotate-replay" / name
    if root.exists():
        shutil.rmtree(root)  # the replay's own folder: every run starts clean
    batch_dir = root / "batch"
    batch_dir.mkdir(parents=True)
    known = known_sample(data.answers, data.truth, known_share, seed)
    (batch_dir / "batch.toml").write_text(_batch_toml(name, data.labels, policy, block, bool(known)))
    items = sorted(data.answers["item"].unique())
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "known"] if known else ["id"])
    writer.writerows([i, known.get(str(i), "")] if known else [i] for i in items)
    (batch_dir / "items.csv").write_text(buf.getvalue())
    ws = Workspace(root / ".annotate").ensure()

    ordered: dict[str, list[tuple[str, str]]] = {}
    # recorded_order: each item's answers come in the file's order (a planted order, e.g. spammers
    # always first beside the same partner) instead of the seeded shuffle.
    source = data.answers.assign(pos=data.answers.groupby("item").cumcount()) if recorded_order else data.answers
    for row in shuffled_answers(source, seed).itertuples(index=False):
        ordered.setdefault(f"{name}/{row.item}", []).append((row.worker, row.label))
    available = {item: len(ordered[f"{name}/{item}"]) for item in items}

    started = time.monotonic()
    passes = 0
    # Production-like money (fees debited), as `annotate post --target local` has it.
    market = (MarketplaceProcess(ws.marketplace_db, mode="production") if own_process
              else MarketplaceServer(ws.marketplace_db, mode="production"))
    with market as server, connect(ws, "local", server.url) as client:
        crowd = ReplayCrowd(server.url, ordered, seed=seed, shuffle=False)
        post_batch(ws, batch_dir, target="local", endpoint_url=server.url, remember_endpoint=False)
        store = Store(ws.store_path)
        while True:
            crowd.work()
            if crowd.returned:
                # The crowd returns a HIT it cannot do and goes on; a replay cannot finish without it.
                first = crowd.returned[0]
                raise ReplayError(f"the replay crowd cannot do HIT {first['hit_id']}: {first['reason']}")
            _expire_exhausted(store, name, crowd.exhausted, client)
            # One MTurk connection for every pass: boto3 clients cost more to make than a pass's calls.
            [result] = harvest(ws, [name], endpoint_url=server.url, client=client)
            result.raise_failure()
            passes += 1
            if on_progress:
                on_progress(result.decided, result.items, sum(available.values()))
            if result.done:
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"replay did not finish in {timeout:.0f} s ({result.decided}/{result.items} decided)")

    labels = store.labels(name)
    # known-answer items are labelled by what is known: not delivered, not scored
    delivered = [i for i in items if str(i) not in known]
    accuracy, n_scored = score(pd.Series({i: labels.get(i, {}).get("label") for i in delivered}, dtype=object),
                               data.truth)
    estimate = accuracy_estimate(store, name)
    counts = store.assignment_counts(name)
    bought = sum(counts.values())
    money = store.money(name)
    return {
        "dataset": name,
        "policy": policy or DEFAULT_POLICY,
        "seed": seed,
        "items": len(items),
        # Only items with a truth row are scored (the same rule as the offline replay).
        "accuracy": round(accuracy, 4) if n_scored else None,
        "n_scored": n_scored,
        "known_items": len(known),
        # what the batch says of itself, against the measured accuracy above
        "accuracy_estimate": estimate,
        "answers_per_item": round(bought / len(items), 3),
        "available_per_item": round(sum(available.values()) / len(items), 3),
        "fraction_bought": round(bought / sum(available.values()), 4),
        "cost_usd": format_money(money["spent"]),
        "unresolved": sum(1 for r in labels.values() if r["status"] == "unresolved"),
        "excluded_workers": sum(1 for w in store.workers(name) if w["excluded"]),
        "passes": passes,
        "seconds": round(time.monotonic() - started, 2),
        "api_calls": store.api_calls(name),
        "home": str(ws.home),
    }


def _expire_exhausted(store: Store, batch: str, exhausted: set[str], client: MTurk) -> None:
    """HITs still waiting for answers the dataset does not have: expire them now, as a requester
    would stop waiting, so the policy decides with the answers the item has."""
    now = datetime.now(timezone.utc)
    for hit in store.hits(batch, created=True):
        if hit["reviewed"] or f"{batch}/{hit['item_id']}" not in exhausted:
            continue
        if hit["expires_at"] and datetime.fromisoformat(hit["expires_at"]) <= now:
            continue
        client.call("UpdateExpirationForHIT", HITId=hit["hit_id"], ExpireAt=now - timedelta(seconds=1))
        store.set_hit_fields(hit["hit_id"], expires_at=now.isoformat())
