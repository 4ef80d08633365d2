"""The simulated crowd: seeded, roughly as accurate as configured, and works only over HTTP."""

from __future__ import annotations

import random
import re
import time
from collections import Counter

import pytest
from conftest_marketplace import client, hit_params, html_question

from annotate.marketplace import MarketplaceServer
from annotate.marketplace.crowd import SimulatedCrowd, parse_forms

LABELS = ["cat", "dog", "bird"]


@pytest.fixture
def srv(tmp_path):
    with MarketplaceServer(tmp_path / "m.db") as server:
        yield server


def post(srv, n: int, max_assignments: int = 1, question: str | None = None, seed: int = 1) -> dict[str, str]:
    """n HITs with RequesterAnnotation "batch/<i>"; returns the hidden gold."""
    mturk = client(srv.url, retries=False)
    rng = random.Random(seed)
    gold = {}
    for i in range(n):
        gold[f"batch/{i}"] = rng.choice(LABELS)
        mturk.create_hit(**hit_params(MaxAssignments=max_assignments, RequesterAnnotation=f"batch/{i}",
                                      **({"Question": question} if question else {})))
    return gold


def answers(srv) -> list[tuple[str, str, str]]:
    """(annotation, worker, answer XML) for every submitted assignment, read through the requester API."""
    mturk = client(srv.url, retries=False)
    out = []
    for page in mturk.get_paginator("list_hits").paginate(PaginationConfig={"PageSize": 100}):
        for hit in page["HITs"]:
            for a in mturk.list_assignments_for_hit(HITId=hit["HITId"], MaxResults=100)["Assignments"]:
                out.append((hit["RequesterAnnotation"], a["WorkerId"], a["Answer"]))
    return sorted(out)


def test_workers_look_like_mturk_workers():
    crowd = SimulatedCrowd("http://127.0.0.1:9", {}, workers=20, accuracy=(0.8, 0.9), spammer_share=0.25, seed=3)
    assert len({w.worker_id for w in crowd.workers}) == 20
    assert all(re.fullmatch(r"A[A-Z0-9]{13}", w.worker_id) for w in crowd.workers)
    assert all(0.8 <= w.accuracy <= 0.9 for w in crowd.workers)
    assert sum(w.spammer for w in crowd.workers) == 5
    again = SimulatedCrowd("http://127.0.0.1:9", {}, workers=20, accuracy=(0.8, 0.9), spammer_share=0.25, seed=3)
    assert [w.worker_id for w in again.workers] == [w.worker_id for w in crowd.workers]


def test_seeded_determinism(tmp_path):
    runs = []
    for run, seed in enumerate([7, 7, 8]):
        with MarketplaceServer(tmp_path / f"m{run}.db") as srv:
            gold = post(srv, 30, max_assignments=2)
            crowd = SimulatedCrowd(srv.url, gold, workers=10, seed=seed)
            assert crowd.work() == 60
            # Answers as the requester sees them; HIT and assignment ids differ from run to run.
            runs.append([(ann, worker, re.sub(r"<FreeText>3[A-Z0-9]{29}</FreeText>", "", xml))
                         for ann, worker, xml in answers(srv)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_accuracy_roughly_as_configured(srv):
    gold = post(srv, 300)
    crowd = SimulatedCrowd(srv.url, gold, workers=30, accuracy=(0.75, 0.97), spammer_share=0.1, seed=0)
    assert crowd.work() == 300
    correct = 0
    for annotation, worker, xml in answers(srv):
        label = re.search(r"<QuestionIdentifier>label</QuestionIdentifier><FreeText>(\w+)</FreeText>", xml).group(1)
        correct += label == gold[annotation]
    # Expected: 0.9 * mean accuracy 0.86 + 0.1 * 1/3 = 0.81; 300 draws give a standard error of ~0.023.
    assert 0.72 <= correct / 300 <= 0.90
    assert correct == sum(s["correct"] for s in crowd.submissions)


def test_perfect_workers_and_pure_spammers(srv):
    gold = post(srv, 120)
    perfect = SimulatedCrowd(srv.url, gold, workers=5, accuracy=(1.0, 1.0), spammer_share=0.0, seed=0)
    assert perfect.work(limit=60) == 60
    assert all(s["correct"] for s in perfect.submissions)
    spammers = SimulatedCrowd(srv.url, gold, workers=5, spammer_share=1.0, seed=0)
    assert spammers.work() == 60
    share = sum(s["correct"] for s in spammers.submissions) / 60
    assert 0.15 <= share <= 0.55  # uniform over three labels


def test_work_is_spread_and_blocked_workers_skip(srv):
    gold = post(srv, 20, max_assignments=3)
    crowd = SimulatedCrowd(srv.url, gold, workers=6, seed=0)
    blocked = crowd.workers[0].worker_id
    client(srv.url).create_worker_block(WorkerId=blocked, Reason="spam")
    assert crowd.work() == 60
    per_hit = Counter((s["hit_id"], s["worker_id"]) for s in crowd.submissions)
    assert max(per_hit.values()) == 1  # nobody twice on one HIT
    per_worker = Counter(s["worker_id"] for s in crowd.submissions)
    assert blocked not in per_worker
    assert len(per_worker) == 5 and max(per_worker.values()) - min(per_worker.values()) <= 1
    assert crowd.work() == 0  # nothing left
    hits = client(srv.url).list_reviewable_hits(MaxResults=100)["HITs"]
    assert len(hits) == 20


def test_no_gold_answers_at_random(srv):
    post(srv, 30)
    crowd = SimulatedCrowd(srv.url, {}, workers=5, seed=0)
    assert crowd.work() == 30
    assert {s["answer"] for s in crowd.submissions} == set(LABELS)
    assert all(s["correct"] is None for s in crowd.submissions)


SELECT_FORM = """<form method="POST" action="../mturk/externalSubmit?from=select">
<input type="hidden" name="assignmentId" value="">
<input type="hidden" name="itemId" value="item &amp; 7">
<select name="species"><option value="">choose</option><option>cat</option><option value="dog">Dog</option><option value="bird">Bird</option></select>
<input type="radio" name="confidence" value="low"><input type="radio" name="confidence" value="high" checked>
<input type="text" name="comment" value="">
<input type="checkbox" name="flag" value="blurry">
<input type="text" name="ignored" disabled value="x">
</form>"""


def test_select_form_with_relative_action(srv):
    gold = post(srv, 10, question=html_question(SELECT_FORM))
    crowd = SimulatedCrowd(srv.url, gold, workers=3, accuracy=(1.0, 1.0), spammer_share=0.0, seed=0)
    assert crowd.work() == 10
    for annotation, _, xml in answers(srv):
        fields = re.findall(r"<QuestionIdentifier>(.*?)</QuestionIdentifier><FreeText>(.*?)</FreeText>", xml)
        assert fields == [("itemId", "item &amp; 7"), ("species", gold[annotation]), ("confidence", "high"),
                          ("comment", "")]


CHECKBOX_FORM = """<form method="post" action="/mturk/externalSubmit">
<input type="hidden" name="assignmentId">
<input type="checkbox" name="tags" value="cat"><input type="checkbox" name="tags" value="dog">
<input type="checkbox" name="tags" value="bird"><button>Submit</button></form>"""


def test_checkbox_multi_label(srv):
    mturk = client(srv.url)
    gold = {"m/1": '["cat", "bird"]', "m/2": "dog"}
    for annotation in gold:
        mturk.create_hit(**hit_params(MaxAssignments=1, RequesterAnnotation=annotation,
                                      Question=html_question(CHECKBOX_FORM)))
    crowd = SimulatedCrowd(srv.url, gold, workers=2, accuracy=(1.0, 1.0), spammer_share=0.0, seed=0)
    assert crowd.work() == 2
    got = {ann: re.findall(r"<FreeText>(\w+)</FreeText>", xml) for ann, _, xml in answers(srv)}
    assert got == {"m/1": ["cat", "bird"], "m/2": ["dog"]}


TEXT_FORM = """<form method="post" action="/mturk/externalSubmit">
<input type="hidden" name="assignmentId"><textarea name="transcript">  </textarea></form>"""


def test_free_text(srv):
    mturk = client(srv.url)
    gold = {f"t/{i}": "the quick brown fox" for i in range(40)}
    for annotation in gold:
        mturk.create_hit(**hit_params(MaxAssignments=1, RequesterAnnotation=annotation,
                                      Question=html_question(TEXT_FORM)))
    crowd = SimulatedCrowd(srv.url, gold, workers=4, accuracy=(0.5, 0.5), spammer_share=0.0, seed=0)
    assert crowd.work() == 40
    texts = [re.search(r"<FreeText>(.*)</FreeText>", xml).group(1) for _, _, xml in answers(srv)]
    right = sum(t == "the quick brown fox" for t in texts)
    assert 8 <= right <= 32
    assert all(t == "the quick brown fox" or len(t) == 18 for t in texts)  # a perturbed copy otherwise


def test_parse_forms():
    (form,) = parse_forms(SELECT_FORM)
    assert form["method"] == "post" and form["action"] == "../mturk/externalSubmit?from=select"
    kinds = [(c["kind"], c["name"]) for c in form["controls"]]
    assert kinds == [("hidden", "assignmentId"), ("hidden", "itemId"), ("select", "species"),
                     ("radio", "confidence"), ("radio", "confidence"), ("text", "comment"), ("checkbox", "flag")]
    assert [o["value"] for o in form["controls"][2]["options"]] == ["", "cat", "dog", "bird"]
    assert form["controls"][1]["value"] == "item & 7"


def test_background_crowd(srv):
    crowd = SimulatedCrowd(srv.url, {}, workers=3, seed=0).start(interval=0.01)
    try:
        gold = post(srv, 5)
        deadline = time.time() + 10
        while len(crowd.submissions) < 5 and time.time() < deadline:
            time.sleep(0.02)
    finally:
        crowd.stop()
    assert len(crowd.submissions) == 5 and set(gold)


def test_stop_ends_a_pass_after_the_hit_in_hand(srv):
    """`marketplace serve` stops its crowd on Ctrl-C: the crowd must not finish a long pass first."""
    gold = post(srv, 300)
    crowd = SimulatedCrowd(srv.url, gold, workers=5, seed=1).start()
    deadline = time.monotonic() + 30
    while not crowd.submissions and time.monotonic() < deadline:
        time.sleep(0.005)
    crowd.stop()
    done = len(crowd.submissions)
    assert 0 < done < 300
    # Stopped, the crowd still works when asked directly.
    assert crowd.work(limit=5) == 5
