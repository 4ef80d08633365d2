"""Harvesting: one idempotent pass (for cron) over a batch.

A pass:
 1. finishes extensions a crashed pass left recorded-but-unconfirmed;
 2. lists the HITs MTurk calls Reviewable (every slot answered, or expired) and, for each,
    stores every new answer raw and parsed *before* acting on it, approves what is Submitted,
    and moves the HIT to Reviewing so the next pass does not read it again;
 3. asks the consensus policy about every item of the batch (policies are stateless and see
    the whole batch: skills are learned across it, budgets are spread over it), then acts on
    the closed items: buy more assignments (intent recorded first, under a UniqueRequestToken),
    or record the label, or record the item as unresolved.
The batch is done when no HIT is open and a pass bought nothing: the same loop as the offline
replay (annotate.consensus.simulate), so live and replayed figures agree.

Only one harvest runs at a time per project: a second one waits for the lock or exits
with a message, so overlapping cron runs never double-act.
"""

from __future__ import annotations

import json
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from itertools import groupby, islice
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable, Collection

import botocore.exceptions
import pandas as pd

from annotate import automation
from annotate.answers import AnswerError, parse_question_form_answers
from annotate.budget import Budget, caps_from_config, spend_to_budget
from annotate.concurrency import parallel
from annotate.config import WorkerSettings
from annotate.consensus import Decision, get_aggregator, get_policy
from annotate import pools
from annotate.errors import UserError
from annotate.exclusion import WorkerDecision, assess
from annotate.fees import assignment_cost, format_money
from annotate.mturk import (ENDPOINTS, HIT_DOES_NOT_EXIST, TOKEN_ALREADY_PROCESSED, MTurk, MTurkUnreachable, connect,
                            describe, error_code, refused, request_error)
from annotate.post import request_token, resolve_target
from annotate.store import Store, utcnow
from annotate.tasktypes import TaskSpec, get_task_type
from annotate.workspace import Workspace

EXPIRY_MARGIN = timedelta(minutes=5)  # a HIT this close to expiry is renewed before buying more of it
# MTurk refuses to extend a HIT created with fewer than 10 assignments to 10 or more
# (InvalidMaximumAssignmentsIncrease): such a HIT never grows past 9, whatever the policy's cap.
SMALL_HIT_MAX = 9
REFUSED_EVENT = "extension-refused"
INSUFFICIENT_FUNDS = "AWS.MechanicalTurk.InsufficientFunds"


class HarvestBusy(Exception):
    """Another harvest holds the project's lock."""


@dataclass
class HarvestResult:
    batch: str
    new_answers: int = 0
    approved: int = 0
    quarantined: int = 0
    labelled: int = 0
    extended: int = 0
    unresolved: int = 0
    over_budget: int = 0
    excluded: int = 0  # workers given the exclusion qualification in this pass
    pooled: int = 0  # pool scores granted or changed (once the batch is done)
    machine_labelled: int = 0  # [automation]: items the model labelled (annotate.automation)
    items: int = 0
    decided: int = 0
    open: int = 0
    done: bool = False
    api_calls: dict[str, int] = field(default_factory=dict)
    failure: "BatchFailure | None" = None  # the pass failed for this batch (what it did before is counted)

    # What a pass did (these add up over passes); the other counts are states (the latest holds).
    PER_PASS = ("new_answers", "approved", "quarantined", "extended", "over_budget", "excluded", "pooled",
                "machine_labelled")

    def then(self, later: "HarvestResult") -> "HarvestResult":
        """This batch's running totals with a later pass folded in: per-pass counts and API calls
        add up, states (labelled, unresolved, decided, done) are the later pass's."""
        calls = dict(self.api_calls)
        for op, n in later.api_calls.items():
            calls[op] = calls.get(op, 0) + n
        return replace(later, api_calls=calls, **{f: getattr(self, f) + getattr(later, f) for f in self.PER_PASS})

    @property
    def blocked(self) -> int:
        """The old name of `excluded` (a harvest no longer blocks anyone), for code written against it."""
        return self.excluded

    def raise_failure(self) -> None:
        """Raise what made this batch's pass fail, if anything did (for callers harvesting one batch)."""
        if self.failure is not None and self.failure.error is not None:
            raise self.failure.error


@dataclass
class BatchFailure:
    """Why one batch's pass failed, in one line; the pass went on with the other batches.

    exit_code follows the CLI's rule: 2 for what a person must change (a user error, an endpoint
    that does not answer, a request MTurk refuses), 1 for a bug or an MTurk fault (throttling, 5xx)
    that outlasted the retries. `detail` holds a bug's traceback."""

    batch: str | None
    reason: str
    kind: str  # user | unreachable | mturk | bug
    exit_code: int
    detail: str | None = None
    error: BaseException | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_exception(cls, batch: str | None, exc: BaseException) -> "BatchFailure":
        if isinstance(exc, MTurkUnreachable):
            return cls(batch, str(exc), "unreachable", 2, error=exc)
        if isinstance(exc, UserError):
            return cls(batch, str(exc), "user", exc.exit_code, error=exc)
        if isinstance(exc, botocore.exceptions.ClientError):
            return cls(batch, f"MTurk: {describe(exc)}", "mturk", 2 if refused(exc) else 1, error=exc)
        if isinstance(exc, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError,
                            botocore.exceptions.ProfileNotFound)):
            return cls(batch, f"AWS credentials: {describe(exc)}", "user", 2, error=exc)
        return cls(batch, f"{type(exc).__name__}: {describe(exc)[:300]} (a bug: please report it with the traceback)",
                   "bug", 1, detail="".join(traceback.format_exception(exc)), error=exc)

    def as_json(self) -> dict:
        return {"batch": self.batch, "reason": self.reason, "kind": self.kind, "exit_code": self.exit_code}


def exit_code(results: list[HarvestResult], failures: list[BatchFailure] = ()) -> int:
    """0 when nothing failed; 1 when any failure is a bug or a passing fault; else 2 (every failure
    needs a person: a bad name or option, an endpoint that does not answer, a refusal)."""
    found = [r.failure for r in results if r.failure is not None] + list(failures)
    if not found:
        return 0
    return 1 if any(f.exit_code != 2 for f in found) else 2


def harvest_lock(ws: Workspace, wait: bool = False):
    """Only one harvest per project home: overlapping cron runs never double-act."""
    return ws.lock("harvest", wait=wait,
                   busy=lambda holder: HarvestBusy(f"another harvest is running ({holder}); this one did nothing"))


def stored_policy(batch: dict, count_items=None):
    settings = dict(batch["config"].get("consensus", {}))
    name = settings.pop("policy", None)
    if settings.get("answers_per_item") == "budget":  # spend [budget] max_usd (annotate.budget)
        settings = spend_to_budget(settings, caps_from_config(batch["config"])[0], Decimal(batch["reward"]),
                                   count_items() if count_items else 0)
    return get_policy(name, **settings)


def harvest(
    ws: Workspace,
    batch_names: list[str] | None = None,
    *,
    target: str | None = None,
    endpoint_url: str | None = None,
    wait_for_lock: bool = False,
    concurrency: int | None = None,
    confirm: Callable[[str], bool] | None = None,
    client: MTurk | None = None,
) -> list[HarvestResult]:
    """One pass over the given batches. By default: every batch on `target`, or, with no target, every
    batch not on production (production is never implied: see `skipped_production`). `client`: an
    open MTurk connection to use instead of opening one (a caller running pass after pass against one
    endpoint, as the replay does, saves making boto3 clients every pass)."""
    store = Store(ws.ensure().store_path)
    names = batch_names or batches_for(store, target)
    results = []
    unreachable: dict[str, BatchFailure] = {}  # endpoint → its failure: other batches there are not tried
    with harvest_lock(ws, wait=wait_for_lock):
        for name in names:
            harvester: Harvester | None = None
            try:
                batch = store.get_batch(name)
                if batch is None:
                    raise UserError(f"no batch named {name!r} in {ws.store_path} (post it first)")
                if not batch.get("hit_type_id"):
                    continue
                batch_target = resolve_target(batch, target, name)
                endpoint = endpoint_url or batch.get("endpoint_url") or ENDPOINTS.get(batch_target)
                if endpoint in unreachable:
                    earlier = unreachable[endpoint]
                    results.append(HarvestResult(batch=name, failure=BatchFailure(
                        name, f"not tried: {earlier.reason} (batch {earlier.batch})", earlier.kind, earlier.exit_code,
                        error=earlier.error)))
                    continue
                if batch_target == "production" and confirm is not None and not confirm(
                        f"Harvest {name!r} on PRODUCTION (approves assignments, may buy more)?"):
                    raise UserError("not confirmed; nothing was done")
                with (nullcontext(client) if client is not None else
                      connect(ws, batch_target, endpoint_url or batch.get("endpoint_url"))) as mturk:
                    harvester = Harvester(store, batch, mturk, concurrency)
                    result = harvester.run()
                # [automation]: a round when every posted item is decided (posts what it sends to people)
                automation.after_harvest(ws, store, batch, result, endpoint_url=endpoint_url or batch.get("endpoint_url"),
                                         concurrency=concurrency)
                results.append(result)
            except Exception as exc:  # noqa: BLE001 — one batch's failure, whatever it is, is that batch's alone
                failure = BatchFailure.from_exception(name, exc)
                if isinstance(exc, MTurkUnreachable) and exc.endpoint_url:
                    unreachable[exc.endpoint_url] = failure
                result = harvester.result if harvester is not None else HarvestResult(batch=name)
                result.failure = failure
                results.append(result)
    return results


def batches_for(store: Store, target: str | None) -> list[str]:
    rows = [store.get_batch(n) for n in store.batch_names()]
    return [r["name"] for r in rows if (r["target"] == target if target else r["target"] != "production")]


def skipped_production(store: Store, batch_names: list[str] | None, target: str | None) -> list[str]:
    """Production batches a bare `annotate harvest` leaves alone (they need --target production)."""
    if batch_names or target == "production":
        return []
    return [n for n in store.batch_names() if store.get_batch(n)["target"] == "production"]


class Harvester:
    """One pass over one batch."""

    def __init__(self, store: Store, batch: dict, mturk: MTurk, concurrency: int | None = None,
                 hit_ids: Collection[str] | None = None, to_reviewing: bool = True):
        self.store = store
        # None: the HITs MTurk lists as Reviewable. Else only these (named by MTurk's notifications):
        # read, stored and approved whatever their state, collected only once every slot is answered.
        self.hit_ids = None if hit_ids is None else set(hit_ids)
        # Moving decided HITs to Reviewing keeps ListReviewableHITs short for the next pass; a harvest
        # driven by notifications rarely lists, and saves the call per HIT.
        self.to_reviewing = to_reviewing
        self.batch = batch
        self.name = batch["name"]
        self.mturk = mturk
        self.concurrency = concurrency
        self.policy = stored_policy(batch, lambda: len(store.item_ids(self.name)))
        self.task_type = get_task_type(batch["task_type"])
        self.spec = TaskSpec.from_batch_row(batch)
        self.result = HarvestResult(batch=self.name)
        self._budget: Budget | None = None

    def run(self) -> HarvestResult:
        try:
            self._finish_pending_extensions()
            hits = self.store.hit_frame(self.name)
            ours = set(hits["hit_id"])  # a HIT type can be shared with other batches
            # HITId -> MaxAssignments only: the listed HITs carry their whole Question (~5 KB each),
            # which at 100,000 HITs would hold half a gigabyte for nothing.
            if self.hit_ids is None:
                reviewable = {h["HITId"]: h["MaxAssignments"] for h in self.mturk.pages(
                    "ListReviewableHITs", "HITs", HITTypeId=self.batch["hit_type_id"], Status="Reviewable",
                    MaxResults=100) if h["HITId"] in ours}
            else:
                named = hits[hits["hit_id"].isin(list(self.hit_ids & ours))]
                reviewable = dict(zip(named["hit_id"], named["max_assignments"].astype(int)))
            del ours
            self._collect(reviewable, hits)
            del hits, reviewable
            self._decide_and_act(self.store.hit_frame(self.name))
        finally:
            self.result.api_calls = self.mturk.take_calls()
            self.store.add_api_calls(self.name, self.result.api_calls)
        return self.result

    # ------------------------------------------------------------------ collecting
    def _collect(self, reviewable: dict[str, int], hits: pd.DataFrame) -> None:
        """Store and approve the answers of Reviewable HITs. A HIT whose every assignment is stored
        already (a HIT decided but not yet moved to Reviewing, or a pass that died) is not listed
        again: the store knows its answers, and approves from there what is still unapproved."""
        hits = hits[hits["hit_id"].isin(list(reviewable))]
        maximum = hits["hit_id"].map(reviewable).astype("int64")
        unread = hits[(hits["stored"] < maximum) | (hits["reviewed"] == 0)]
        item_of = dict(zip(unread["hit_id"], unread["item_id"]))  # only the HITs to list
        auto = self.batch["config"].get("hit", {}).get("approval") == "auto"
        # MTurk approves by itself at AutoApprovalTime in "auto" mode: one API call saved per assignment.
        if not auto:
            self._approve_all(self.store.unapproved(self.name, [h for h in reviewable if h not in item_of]))
        still_open: set[str] = set()
        listed = parallel(lambda hit_id: list(self.mturk.pages("ListAssignmentsForHIT", "Assignments", HITId=hit_id,
                                                                 MaxResults=100)), list(item_of), self.concurrency)
        # In chunks of HITs: what the store knows of them is read per chunk, their new answers are
        # stored in one transaction, and only then approved. Memory stays flat however big the batch.
        while chunk := list(islice(listed, 500)):
            known = self.store.assignment_statuses([hit_id for hit_id, _ in chunk])
            rows: list[dict] = []
            changed: list[tuple[str, str]] = []
            to_approve: list[str] = []
            for hit_id, assignments in chunk:
                if self.hit_ids is not None and len(assignments) < reviewable[hit_id]:
                    still_open.add(hit_id)  # named, but slots are still unanswered: not closed yet
                for a in assignments:
                    aid, status = a["AssignmentId"], a["AssignmentStatus"]
                    if aid not in known:
                        rows.append(self._assignment_row(hit_id, item_of[hit_id], a))
                    elif known[aid] != status:
                        changed.append((aid, status))
                    if status == "Submitted" and not auto:
                        to_approve.append(aid)
            self.store.store_assignments(rows)
            self.store.set_assignment_statuses(changed)
            self.result.new_answers += len(rows)
            self._approve_all(to_approve)
        self.store.mark_collected([h for h in reviewable if h not in still_open])

    def _approve_all(self, assignment_ids: list[str]) -> None:
        approved = [aid for aid, _ in parallel(self._approve, assignment_ids, self.concurrency)]
        self.store.set_assignments_approved(approved)
        self.result.approved += len(approved)

    def _to_reviewing(self, hit_id: str) -> None:
        """A decided HIT leaves MTurk's Reviewable list, so no later pass reads it again."""
        try:
            self.mturk.call("UpdateHITReviewStatus", HITId=hit_id, Revert=False)
        except botocore.exceptions.ClientError:
            # A retry after a lost response finds the HIT already moved: that is success. A HIT that
            # expired with no answer (its lifetime passed, or `annotate cancel`) is never Reviewable:
            # MTurk leaves it Assignable, with nothing to review and no worker able to take it.
            hit = self.mturk.call("GetHIT", HITId=hit_id)["HIT"]
            expired = hit.get("Expiration") is not None and hit["Expiration"] <= datetime.now(timezone.utc)
            if hit["HITStatus"] != "Reviewing" and not (expired and hit["HITStatus"] in ("Assignable", "Unassignable")):
                raise

    def _assignment_row(self, hit_id: str, item_id: str, a: dict) -> dict:
        """One assignment as stored: raw answer, parse and value — or, whatever goes wrong in reading
        this one worker's answer, the raw answer quarantined with the reason (never dropped, and
        never the end of the pass: the batch's other answers are stored and approved as usual)."""
        value = quarantine = document = value_json = None
        fields: dict[str, str] = {}
        try:
            parsed = parse_question_form_answers(a.get("Answer", ""))
            fields, document = parsed.fields, json.dumps(parsed.document)
            value = self.task_type.parse(fields, self.spec)
            value_json = json.dumps(value) if value is not None else None
        except AnswerError as exc:
            quarantine = _one_line(str(exc))
        except Exception as exc:  # noqa: BLE001 — an answer no limit foresaw (or a task type's bug) stays this answer's
            quarantine = _one_line(f"the answer could not be read ({type(exc).__name__}: {exc})")
        if quarantine is not None:
            value = value_json = None
            self.result.quarantined += 1
        return {
            "assignment_id": a["AssignmentId"], "hit_id": hit_id, "batch": self.name,
            "item_id": item_id, "worker_id": a["WorkerId"], "status": a["AssignmentStatus"],
            "accept_time": _iso(a.get("AcceptTime")), "submit_time": _iso(a.get("SubmitTime")),
            "answer_xml": a.get("Answer", ""), "answer": document,
            "label": value if self.task_type.single_label else None, "value": value_json,
            "quarantine": quarantine, "stored_at": utcnow(), "approved_at": None, "_fields": fields,
        }

    def _approve(self, assignment_id: str) -> None:
        try:
            self.mturk.call("ApproveAssignment", AssignmentId=assignment_id)
        except botocore.exceptions.ClientError:
            # Approved meanwhile (auto-approval, or a pass that died after approving): look at
            # the assignment rather than guess from the error.
            status = self.mturk.call("GetAssignment", AssignmentId=assignment_id)["Assignment"]["AssignmentStatus"]
            if status != "Approved":
                raise

    # ------------------------------------------------------------------ deciding
    def _decide_and_act(self, hits: pd.DataFrame) -> None:
        # Columns, not a dict per HIT: a pass sees every HIT of the batch.
        expires = pd.to_datetime(hits["expires_at"], utc=True, format="ISO8601")
        expired = expires.notna() & (expires <= pd.Timestamp.now(tz="UTC"))
        # A quarantined answer used its slot without a usable label: the policy sees the slot
        # as never bought (else it would take the HIT for one that expired short).
        lost = hits["item_id"].map(self.store.quarantined_by_item(self.name)).fillna(0).astype("int64")
        items = pd.DataFrame({"item": hits["item_id"], "bought": hits["max_assignments"] - lost,
                              "open": (hits["reviewed"] == 0) & ~expired})
        closed = hits[~items["open"]]
        self.result.items = len(hits)
        self.result.open = len(hits) - len(closed)
        known = self.store.known_answers(self.name)
        if self.task_type.single_label:
            # Known-answer items are bought for like any other item (workers cannot tell them
            # apart, and the crowd's label on them at each confidence is then a fair sample of the
            # batch: annotate.consensus.calibration), but labelled by what is known.
            answers = self.store.answers(self.name)
            prior = self.store.prior_skills(self.name)
            prior = pd.Series(prior, dtype=float) if prior else None
            decisions = self.policy.decide(answers, items, skills=prior, known=known) if len(items) else {}
        else:
            answers, prior = None, None
            decisions = self._consolidate(closed)
        del items

        to_extend = []
        decided: list[tuple] = []  # (item, status, decision): a tuple per item, written as one stream
        refusals = self.store.extension_refusals(self.name)  # item → why MTurk will not extend it
        cancelled = self.store.cancelled(self.name)  # `annotate cancel`: nothing more is bought
        capped: list[tuple[dict, str]] = []
        for hit_id, item, max_assignments, expires_at in closed[
                ["hit_id", "item_id", "max_assignments", "expires_at"]].itertuples(index=False, name=None):
            decision: Decision = decisions.get(item) or Decision("wait", None, 0.0)
            if decision.action == "extend" and (item in refusals or cancelled):
                decision = Decision("unresolved", decision.label, decision.confidence)
            if decision.action == "extend":
                extend_by = min(decision.extend_by, self.policy.max_assignments - max_assignments)
                if max_assignments <= SMALL_HIT_MAX < max_assignments + extend_by:
                    # A store whose cap is over 9 (allowed once): ask only for what MTurk grants.
                    extend_by = SMALL_HIT_MAX - max_assignments
                    if extend_by <= 0:
                        capped.append(({"item_id": item, "hit_id": hit_id, "token": None},
                                       f"a HIT created with fewer than 10 assignments cannot have 10 or more "
                                       f"(MTurk's InvalidMaximumAssignmentsIncrease); [consensus] max_assignments = "
                                       f"{self.policy.max_assignments} is out of its reach"))
                hit = {"hit_id": hit_id, "item_id": item, "max_assignments": max_assignments, "expires_at": expires_at}
                if extend_by > 0 and self._affordable(hit, extend_by):
                    to_extend.append((hit, extend_by))
                    decided.append((item, "pending", decision))
                    continue
                decision = Decision("unresolved", decision.label, decision.confidence)
            if decision.action in ("label", "unresolved"):
                decided.append((item, "labelled" if decision.action == "label" else "unresolved", decision))
        del decisions
        self._refused(capped)
        refused_now = self._extend(to_extend)
        if refused_now:
            decided = [(item, "unresolved" if status == "pending" and item in refused_now else status, d)
                       for item, status, d in decided]
        if known:
            # Known-answer items are bought for like any other; once nothing more is bought for one,
            # it is decided by what is known.
            decided = [(item, "known", Decision("label", known[item], 1.0)) if item in known and status != "pending"
                       else (item, status, d) for item, status, d in decided]
        single = self.task_type.single_label
        self.store.save_decisions(self.name, (
            (item, status, d.label, json.dumps(d.label) if single else d.label, d.confidence)
            for item, status, d in decided))
        decided_now = {item for item, status, _ in decided if status != "pending"}
        del decided
        finished = closed.loc[closed["item_id"].isin(list(decided_now)) & (closed["hit_status"] != "Reviewing"),
                              "hit_id"].tolist() if self.to_reviewing else []
        for _ in parallel(self._to_reviewing, finished, self.concurrency):
            pass
        self.store.mark_reviewing(finished)
        if self.task_type.single_label and len(answers):
            self._refresh(answers, prior, known)
        statuses = self.store.label_status_counts(self.name)  # counted in SQL: no 100k rows in memory
        self.result.labelled = statuses.get("labelled", 0)
        self.result.unresolved = statuses.get("unresolved", 0)
        self.result.decided = self.result.labelled + self.result.unresolved + statuses.get("known", 0)
        self.result.extended = len(to_extend) - len(refused_now)
        self.result.done = (self.result.open == 0 and not self.result.extended
                            and self.result.decided == self.result.items)
        if self.result.done and self.task_type.single_label:
            self._pool()

    def _consolidate(self, closed: pd.DataFrame) -> dict[str, Decision]:
        """Task types other than single-label classification: consolidate each closed item's answers
        and extend one at a time until k workers agree (the type's own notion of agreement)."""
        by_item: dict[str, list] = {}
        for r in self.store.answer_values(self.name):
            by_item.setdefault(r["item"], []).append((r["worker"], json.loads(r["value"])))
        out = {}
        for item, bought in zip(closed["item_id"], closed["max_assignments"]):
            answers = by_item.get(item, [])
            c = self.task_type.consolidate(answers, self.spec)
            label = json.dumps(c.value, sort_keys=True) if c.value is not None else None
            starved = bought > len(answers)
            if c.agreed:
                out[item] = Decision("label", label, c.confidence)
            elif not starved and bought < self.policy.max_assignments:
                out[item] = Decision("extend", label, c.confidence, 1)
            else:
                out[item] = Decision("unresolved", label, c.confidence)
        return out

    def _refresh(self, answers: pd.DataFrame, prior, known: dict[str, str]) -> None:
        """Final labels and confidences from the policy's aggregator over the whole batch; worker
        skills (and scores on known answers) kept for later batches; votes and answer counts per
        item; workers who answer about at random excluded (annotate.exclusion, annotate.pools)."""
        labels, learned = self.policy.aggregate(answers, skills=prior, known=known)
        # what calibration moved, or the known-answer map's own uncertainty, for the accuracy
        # estimate's interval (annotate.results)
        mapping = labels.attrs.get("calibration")
        delivered = labels[~labels["item"].isin(list(known))] if known else labels
        self.store.event(self.name, "estimate", items=len(delivered),
                         calibrated=float(delivered["confidence"].mean()) if len(delivered) else None,
                         raw=float(delivered["raw_confidence"].mean()) if len(delivered) else None,
                         **({"known_answers": mapping.as_dict(),
                             "model_variance": mapping.mean_variance(delivered["crowd_confidence"].to_numpy())}
                            if mapping is not None else {}))
        votes = vote_counts(answers)
        labels = labels.merge(votes, on="item", how="left")
        # Plain tuples into one UPDATE per item: at 100,000 items whole label rows as dicts would
        # cost hundreds of MB for what is a column update.
        self.store.refresh_labels(self.name, (
            (item, label, float(confidence), json.dumps(label), votes_json, int(n))
            for item, label, confidence, votes_json, n in labels[
                ["item", "label", "confidence", "votes", "answers"]].itertuples(index=False, name=None)))
        del labels, votes
        # Skills are learned with smoothed Dawid–Skene whatever the policy labels with: a
        # majority vote's vote shares say little about a worker.
        if self.policy.settings.get("aggregator") != "dawid_skene":
            learned = get_aggregator("dawid_skene", smoothing=2.0, default_skill=0.7).fit(answers, skills=prior, known=known).skills_
        counts = answers.groupby("worker").size()
        on_known = answers[answers["item"].isin(list(known))]
        seen = on_known.groupby("worker").size()
        correct = on_known[on_known["label"] == on_known["item"].map(known)].groupby("worker").size()
        settings = WorkerSettings.from_config(self.batch["config"])
        already = self.store.excluded_workers(decided=True)  # a lifted exclusion is a person's call: it stays lifted
        decisions = {d.worker_id: d for d in assess(answers[["item", "worker", "label"]], known, len(self.spec.labels),
                                                    settings.rules(), already)}
        now = utcnow()
        rows = [{"worker_id": w, "answers": int(counts.get(w, 0)), "skill": float(s),
                 "gold_seen": int(seen.get(w, 0)), "gold_correct": int(correct.get(w, 0)), "updated_at": now,
                 "evidence": decisions[w].scored if w in decisions else 0.0,
                 "evidence_right": decisions[w].right if w in decisions else 0.0}
                for w, s in learned.items()]
        self.store.save_batch_workers(self.name, rows)
        self._exclude([d for d in decisions.values() if d.exclude and d.worker_id not in already])

    def _exclude(self, decisions: list[WorkerDecision]) -> None:
        """The exclusion qualification for workers annotate.exclusion finds answering at random:
        this batch's HITs (and every later batch's) require its absence, so they see no more of
        them and none of their answers is bought again. Their past answers stay (the aggregator
        has learned how little they weigh). Nobody is blocked: blocks are for a person to decide."""
        for d in decisions:
            reason = f"Batch {self.name}: {d.reason}."
            pools.exclude(self.store, self.mturk, d.worker_id, reason)
            self.store.event(self.name, "exclude", worker=d.worker_id, evidence=d.evidence,
                             right=d.right, scored=d.scored, upper=round(d.high, 3))
            self.result.excluded += 1

    def _pool(self) -> None:
        """Once the batch is done: pool scores over every batch's evidence, granted where they changed."""
        settings = WorkerSettings.from_config(self.batch["config"])
        changed = pools.update_pool(self.store, self.mturk, settings.pool_after)
        if changed:
            self.store.event(self.name, "pool", scores=changed)
        self.result.pooled = len(changed)

    # ------------------------------------------------------------------ buying more
    def _affordable(self, hit: dict, extend_by: int) -> bool:
        """Within the batch and account budgets, counting what this pass has already queued."""
        if self._budget is None:
            self._budget = Budget.load(self.store, self.name, *caps_from_config(self.batch["config"]))
        reward = Decimal(self.batch["reward"])
        # The fee tier follows the HIT's MaxAssignments; the added slots pay the new tier.
        cost = assignment_cost(reward, hit["max_assignments"] + extend_by, bool(self.batch.get("masters"))) * extend_by
        if not self._budget.allows(cost):
            self.store.event(self.name, "over-budget", item=hit["item_id"], cost=format_money(cost))
            self.result.over_budget += 1
            return False
        self._budget = self._budget.spend(cost)
        return True

    def _extend(self, to_extend: list[tuple[dict, int]]) -> dict[str, str]:
        """Buy the extensions (intent recorded first). Returns the items MTurk refused for good, with
        MTurk's reason: their intents are closed, and the items are decided unresolved."""
        if not to_extend:
            return {}
        rounds = self.store.extension_rounds(self.name)
        intents = []
        for hit, extend_by in to_extend:
            round_ = rounds.get(hit["item_id"], 0) + 1
            intents.append({
                "token": request_token(self.batch["uid"], hit["item_id"], round_), "batch": self.name,
                "item_id": hit["item_id"], "hit_id": hit["hit_id"], "round": round_, "added": extend_by,
                "max_after": hit["max_assignments"] + extend_by, "state": "intent", "created_at": utcnow(),
                "done_at": None, "_hit": hit})
        self.store.record_extension_intents(intents)  # before any money moves
        return self._buy_all(intents)

    def _buy_all(self, intents: list[dict]) -> dict[str, str]:
        """Buy each intent; what went through or was refused is recorded even when another call fails."""
        done: list[dict] = []
        refusals: list[tuple[dict, str]] = []
        unaffordable: list[tuple[dict, str]] = []
        try:
            for ext, refusal in parallel(self._buy, intents, self.concurrency):
                if refusal is None:
                    done.append(ext)
                else:
                    (refusals if refusal[0] else unaffordable).append((ext, refusal[1]))
        finally:
            self.store.extensions_done(done)
            self._refused(refusals)
            # Out of money is not for good: the intent is closed, and a later pass may decide again.
            for ext, reason in unaffordable:
                self.store.close_extension(ext["token"], "abandoned")
                self.store.event(self.name, "over-budget", item=ext["item_id"], reason=reason)
                self.result.over_budget += 1
        return {ext["item_id"]: reason for ext, reason in refusals + unaffordable}

    def _refused(self, refusals: list[tuple[dict, str]]) -> None:
        """Close refused intents (never asked again) and keep MTurk's reason, for `status` to show."""
        for ext, reason in refusals:
            if ext.get("token"):
                self.store.close_extension(ext["token"], "refused")
            self.store.event(self.name, REFUSED_EVENT, item=ext["item_id"], hit=ext["hit_id"], token=ext["token"],
                             reason=reason)

    def _buy(self, ext: dict) -> tuple[bool, str] | None:
        """Buy one extension; None when bought (now or by an earlier call), else (for good?, MTurk's
        reason) when MTurk refuses it. Faults that may pass (throttling, 5xx, no answer) are raised."""
        hit = ext.get("_hit") or {}
        expires = hit.get("expires_at")
        try:
            if expires and _parse(expires) - EXPIRY_MARGIN <= datetime.now(timezone.utc):
                # Extra assignments on an expired HIT would never be seen by a worker: renew it first.
                lifetime = int(self.batch.get("lifetime") or 3 * 86400)
                new_expiry = datetime.now(timezone.utc) + timedelta(seconds=lifetime)
                self.mturk.call("UpdateExpirationForHIT", HITId=ext["hit_id"], ExpireAt=new_expiry)
                ext["expires_at"] = new_expiry.isoformat()
            self.mturk.call("CreateAdditionalAssignmentsForHIT", HITId=ext["hit_id"],
                            NumberOfAdditionalAssignments=ext["added"], UniqueRequestToken=ext["token"])
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == TOKEN_ALREADY_PROCESSED:
                return None  # the same token went through before (a lost response)
            # Otherwise let the HIT itself tell whether the extension happened.
            current = self._max_assignments(ext["hit_id"])
            if current is not None and current >= ext["max_after"]:
                return None
            if request_error(exc):
                return error_code(exc) != INSUFFICIENT_FUNDS, describe(exc)
            raise
        return None

    def _max_assignments(self, hit_id: str) -> int | None:
        """The HIT's MaxAssignments as MTurk has it; None when MTurk no longer knows the HIT."""
        try:
            return self.mturk.call("GetHIT", HITId=hit_id)["HIT"]["MaxAssignments"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == HIT_DOES_NOT_EXIST:
                return None
            raise

    def _finish_pending_extensions(self) -> None:
        """Extensions recorded but never confirmed (a crash mid-call): look at each HIT, then finish.
        One MTurk refuses (or whose HIT is gone) is closed as refused: it never blocks a later pass."""
        pending = self.store.pending_extensions(self.name)
        if not pending:
            return
        todo, done, gone = [], [], []
        for ext in pending:
            current = self._max_assignments(ext["hit_id"])
            if current is None:
                gone.append((ext, f"MTurk no longer knows HIT {ext['hit_id']}"))
            elif current < ext["max_after"]:
                todo.append({**ext, "_hit": self.store.hit(ext["hit_id"]) or {}})
            else:
                done.append(ext)
        self.store.extensions_done(done)
        self._refused(gone)
        self._buy_all(todo)


def vote_counts(answers: pd.DataFrame) -> pd.DataFrame:
    """Per item: its votes as JSON ({label: n}, keys sorted) and its number of answers."""
    votes = answers.groupby(["item", "label"]).size()  # sorted by item, so each item's votes are adjacent
    rows = []
    for item, group in groupby(votes.items(), key=lambda kv: kv[0][0]):
        counts = {label: int(n) for (_, label), n in group}
        rows.append((item, json.dumps(counts, sort_keys=True), sum(counts.values())))
    return pd.DataFrame(rows, columns=["item", "votes", "answers"])


def _one_line(text: str, limit: int = 500) -> str:
    """A reason as stored and shown: one line, at most `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iso(value) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _parse(iso: str) -> datetime:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def harvest_until_done(
    ws: Workspace,
    batch_names: list[str] | None = None,
    *,
    interval: float = 30.0,
    timeout: float | None = None,
    on_pass: Callable[[list[HarvestResult]], None] | None = None,
    **kwargs,
) -> list[HarvestResult]:
    """`--watch`: pass after pass until every item is decided (or the timeout). A batch that fails
    does not end the watch (the next pass tries it again), unless waiting cannot help: a user error
    such as an unknown batch name."""
    started = time.monotonic()
    while True:
        results = harvest(ws, batch_names, **kwargs)
        if on_pass:
            on_pass(results)
        if all(r.done or (r.failure is not None and r.failure.kind == "user") for r in results):
            return results
        if timeout is not None and time.monotonic() - started > timeout:
            return results
        time.sleep(interval)
