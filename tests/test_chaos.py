"""The chaos suite: `post` and `harvest` killed with SIGKILL at random moments (seeded), against
`annotate marketplace serve --faults … --crowd replay` in its own process, with throttling,
5xx errors and lost responses. Afterwards, through boto3 (the marketplace's own view):
no duplicate HITs, no answer missing from the store, every submitted assignment approved,
no HIT extended past the cap, and final labels identical to an uninterrupted run.

ANNOTATE_SOAK=1 makes it a longer soak (more items, more kills)."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from annotate.store import Store
from conftest import all_hits, make_batch

SOAK = os.environ.get("ANNOTATE_SOAK") == "1"
ITEMS = 150  # the iris items; ANNOTATE_SOAK raises the kills instead
MIN_KILLS = 150 if SOAK else 50
FAULTS = "latency=0.05,throttle=0.05,error=0.04,drop=0.04,seed=7"
CALM_FAULTS = "throttle=0.05,error=0.04,drop=0.04,seed=7"
LABELS = ["setosa", "versicolor", "virginica"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recorded_answers(path: Path, items: list[str], truth: dict[str, str], seed: int = 11) -> None:
    """Nine recorded answers per item from 12 workers of mixed accuracy: enough for agree-2 to need
    extensions often, and for the replay crowd to decide who answers what by item alone."""
    rng = random.Random(seed)
    workers = [(f"ACHAOS{n:08d}", 0.55 + 0.4 * n / 11) for n in range(12)]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "worker", "label"])
        for item in items:
            for worker, accuracy in rng.sample(workers, 9):
                label = truth[item] if rng.random() < accuracy else rng.choice([x for x in LABELS if x != truth[item]])
                writer.writerow([item, worker, label])


class Marketplace:
    def __init__(self, tmp: Path, answers: Path, faults: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "annotate", "--home", str(tmp / "mp-home"), "marketplace", "serve",
             "--port", str(self.port), "--db", str(tmp / "marketplace.db"), "--crowd", "replay",
             "--answers", str(answers), "--annotation-prefix", "chaos/", "--faults", faults],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(self.proc.stderr.read().decode())

    def client(self):
        # The checks must not be disturbed by the injected faults: botocore's own retries on.
        return boto3.client("mturk", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="x", aws_secret_access_key="x",
                            config=boto3.session.Config(retries={"max_attempts": 20, "mode": "standard"}))

    def stop(self):
        # Ctrl-C first; under the chaos load the server has once taken over 30 s to drain, so then
        # escalate (the checks are done by now, and nothing of annotate's depends on this exit).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
                return
            except subprocess.TimeoutExpired:
                continue


def annotate(home: Path, *args: str) -> subprocess.Popen:
    # One call in flight: the work lasts long enough for kills to land in the middle of it. The
    # injected throttles are random, not a rate limit: the client's adaptive rate (which reads a
    # throttle as "too fast") would only slow the runs down, so it is off here.
    env = {**os.environ, "ANNOTATE_CONCURRENCY": "1", "ANNOTATE_CLIENT_RATE": "fixed"}
    return subprocess.Popen([sys.executable, "-m", "annotate", "--home", str(home), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def run_to_completion(home: Path, url: str, batch: Path, rng: random.Random | None, kills: list[int]) -> None:
    """post until it succeeds, then harvest until done; with `rng`, kill runs at random moments."""
    def attempt(*args):
        proc = annotate(home, *args)
        # Until enough kills, every run dies at a random moment, from start-up (~1 s of imports)
        # to well into the work (each call takes 50 ms); killed runs still get some work done,
        # so the batch progresses, and once enough have died the rest run to the end.
        if rng is not None and len(kills) < MIN_KILLS:
            try:
                proc.wait(timeout=rng.uniform(0.3, 3.0))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append(1)
                return None
        out, err = proc.communicate(timeout=300)
        if os.environ.get("CHAOS_DEBUG"):
            print(args[0], proc.returncode, out.decode()[-150:].strip(), file=sys.stderr)
        assert proc.returncode == 0, err.decode()[-3000:]
        return json.loads(out.decode().strip().splitlines()[-1])

    while attempt("post", str(batch), "--endpoint-url", url, "--json") is None:
        pass
    for _ in range(500):
        result = attempt("harvest", "--json")
        if result and result["batches"] and result["batches"][0]["done"]:
            return
        time.sleep(0.05)
    raise AssertionError("harvest never finished")


def final_labels(home: Path, tmp: Path) -> dict[str, str]:
    out = tmp / "export"
    proc = annotate(home, "export", "chaos", "--format", "csv", "--no-split", "--out", str(out))
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    with open(out / "chaos" / "chaos.csv", newline="") as handle:  # exports go in a folder per batch
        return {row["id"]: (row["label"], int(row["answers"])) for row in csv.DictReader(handle)}


def marketplace_view(client) -> tuple[list[dict], dict[str, list[dict]]]:
    hits = all_hits(client)
    assignments = {h["HITId"]: client.list_assignments_for_hit(HITId=h["HITId"], MaxResults=100)["Assignments"]
                   for h in hits}
    return hits, assignments


def run(tmp: Path, kill_seed: int | None) -> tuple[dict[str, str], dict]:
    tmp.mkdir(parents=True)
    batch = make_batch(tmp, name="chaos", items=ITEMS, extra_toml="\n[workers]\nblock = false\n")
    items = [line.split(",")[0] for line in (batch / "items.csv").read_text().splitlines()[1:]]
    truth = {line.split(",")[0]: line.rsplit(",", 1)[1] for line in (batch / "items.csv").read_text().splitlines()[1:]}
    recorded_answers(tmp / "answers.csv", items, truth)
    # The calm run needs no latency (it only sets the labels to compare with); the other faults stay.
    market = Marketplace(tmp, tmp / "answers.csv", FAULTS if kill_seed is not None else CALM_FAULTS)
    kills: list[int] = []
    try:
        rng = random.Random(kill_seed) if kill_seed is not None else None
        home = tmp / "home"
        run_to_completion(home, market.url, batch, rng, kills)
        hits, assignments = marketplace_view(market.client())
        return final_labels(home, tmp), {"hits": hits, "assignments": assignments, "kills": len(kills),
                                         "store": Store(home / "annotate.db")}
    finally:
        market.stop()


@pytest.mark.chaos
def test_killed_and_faulted_runs_lose_nothing_and_pay_nothing_twice(tmp_path):
    calm_labels, _ = run(tmp_path / "calm", kill_seed=None)
    labels, view = run(tmp_path / "chaos", kill_seed=1234)
    hits, assignments, store = view["hits"], view["assignments"], view["store"]
    assert view["kills"] >= MIN_KILLS

    # No duplicate HITs: one per item.
    annotations = [h["RequesterAnnotation"] for h in hits]
    assert len(annotations) == len(set(annotations)) == ITEMS
    # No extension past the cap.
    assert max(h["MaxAssignments"] for h in hits) <= 9
    # Every submitted assignment approved; every answer in the store, raw answer identical.
    stored = {r["assignment_id"]: r for r in store.db["assignments"].rows}
    every = [a for hit in assignments.values() for a in hit]
    assert every and all(a["AssignmentStatus"] == "Approved" for a in every)
    assert {a["AssignmentId"] for a in every} == set(stored)
    assert all(stored[a["AssignmentId"]]["answer_xml"] == a["Answer"] for a in every)
    assert all(stored[a["AssignmentId"]]["status"] == "Approved" for a in every)
    # The store's HITs are the marketplace's HITs.
    assert {h["hit_id"] for h in store.hits("chaos", created=True)} == {h["HITId"] for h in hits}
    # Final labels identical to the uninterrupted run; the answers export reports per item are the
    # assignments the marketplace holds for that item's HIT.
    assert labels == calm_labels
    assert len(labels) >= ITEMS - 5
    per_item = {h["RequesterAnnotation"].split("/", 1)[1]: len(assignments[h["HITId"]]) for h in hits}
    assert all(answers == per_item[item] for item, (_, answers) in labels.items())
