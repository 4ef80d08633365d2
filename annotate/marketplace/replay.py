"""A crowd that replays a real dataset's answers through the marketplace, over HTTP.

    crowd = ReplayCrowd.from_frame(url, pandas.read_csv("rte/answers.csv", dtype=str),
                                   annotation=lambda item: f"rte/{item}", seed=0)
    crowd.work()            # one pass; or crowd.start() ... crowd.stop()
    crowd.exhausted         # annotations whose recorded answers are all used up

`answers` maps a HIT's RequesterAnnotation to the recorded `(worker id, label)` answers of that
item. Each new assignment of the HIT gets the answer of a recorded worker not used yet on that
item, in an order shuffled by (seed, annotation) alone, so the answers an item gets do not depend
on the order HITs are posted or listed. A worker the requester blocked cannot accept
(CreateWorkerBlock): their answer is skipped for good and the next recorded worker takes the slot.
A worker the marketplace says already worked on the HIT (a crowd restarted on the same marketplace
database) is skipped the same way, so a restarted replay resumes rather than repeats.

When an item's answers run out, its HIT gets no more workers: its open slots stay open until it
expires. The annotation then appears in `exhausted`, and the requester can stop waiting for it,
e.g. by expiring the HIT at once (UpdateExpirationForHIT with ExpireAt in the past) and deciding
with the answers it has. HITs whose annotation is not in the dataset get no workers either and are
listed in `unknown` (usually a wrong annotation mapping); HITs without one are left alone.

Worker ids: the marketplace, like MTurk, takes ids of the form A[A-Z0-9]+. Dataset ids of that form
are used as they are; a number n becomes "AREPLAY" + n zero-padded to 8 digits (dog: worker 17 ->
AREPLAY00000017); any other id becomes "AREPLAYX" + the first 16 hex digits (upper case) of its
SHA-256. `dataset_worker` maps every id used back to the dataset's own.

The label is put into the form's single-choice field (radio group or select) whose option values
include it; a label that is no option value of any such field raises ReplayError before the HIT is
accepted (the dataset and the template disagree on label codes).
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections import deque
from typing import Any, Callable, Iterable, Mapping, Sequence

from annotate.marketplace.crowd import HTTPCrowd, choice_groups

MTURK_WORKER_ID = re.compile(r"A[A-Z0-9]+")


class ReplayError(ValueError):
    """The dataset cannot be replayed into this HIT (its label is not one of the form's options)."""


def replay_worker_id(dataset_id: object) -> str:
    """A marketplace worker id for a dataset's worker id (deterministic; see the module notes)."""
    text = _text(dataset_id)
    if MTURK_WORKER_ID.fullmatch(text) and len(text) <= 64:
        return text
    if text.isdigit():
        return f"AREPLAY{int(text):08d}"
    return "AREPLAYX" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16].upper()


def _text(value: object) -> str:
    """A CSV cell as text; 3.0 (pandas reads integer columns with gaps as float) becomes "3"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class ReplayCrowd(HTTPCrowd):
    thread_name = "replay crowd"

    def __init__(self, url: str, answers: Mapping[str, Sequence[tuple[object, object]]], seed: int = 0,
                 shuffle: bool = True):
        """`shuffle=False` keeps each item's answers in the order given (a caller that ordered them
        itself, e.g. to match an offline replay answer for answer)."""
        super().__init__(url)
        self.seed = seed
        self.dataset_worker: dict[str, str] = {}
        self._queues: dict[str, deque[tuple[str, str]]] = {}
        for annotation, recorded in answers.items():
            pairs = []
            for worker, label in recorded:
                worker_id = replay_worker_id(worker)
                known = self.dataset_worker.setdefault(worker_id, _text(worker))
                if known != _text(worker):
                    raise ReplayError(f"dataset workers {known!r} and {_text(worker)!r} both map to {worker_id}")
                pairs.append((worker_id, _text(label)))
            if len({w for w, _ in pairs}) != len(pairs):
                raise ReplayError(f"{annotation!r}: a worker answers this item twice")
            # The order depends on (seed, annotation) only: HIT order cannot change who answers what.
            if shuffle:
                random.Random(f"replay-{seed}-{annotation}").shuffle(pairs)
            self._queues[str(annotation)] = deque(pairs)
        self._exhausted: set[str] = {a for a, q in self._queues.items() if not q}
        self._unknown: set[str] = set()
        self.skipped: list[dict[str, str]] = []  # answers not given: (annotation, worker, why)
        self._state = threading.Lock()  # guards the sets read from other threads

    @classmethod
    def from_frame(cls, url: str, answers_df: Any, annotation: Callable[[str], str] | None = None,
                   seed: int = 0) -> "ReplayCrowd":
        """From a DataFrame (or any object with itertuples) with columns item, worker, label, as in
        answers.csv; `annotation` maps an item id (text) to its HITs' RequesterAnnotation."""
        missing = {"item", "worker", "label"} - set(answers_df.columns)
        if missing:
            raise ReplayError(f"the answers need the columns item, worker, label (missing: {', '.join(sorted(missing))})")
        rows = answers_df[["item", "worker", "label"]].itertuples(index=False, name=None)
        return cls(url, group_answers(rows, annotation), seed=seed)

    @classmethod
    def from_csv(cls, url: str, path: str, annotation: Callable[[str], str] | None = None,
                 seed: int = 0) -> "ReplayCrowd":
        """From an answers.csv file (item,worker,label) without pandas."""
        import csv

        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"item", "worker", "label"} - set(reader.fieldnames or [])
            if missing:
                raise ReplayError(f"{path}: needs the columns item, worker, label (missing: {', '.join(sorted(missing))})")
            rows = [(r["item"], r["worker"], r["label"]) for r in reader]
        return cls(url, group_answers(rows, annotation), seed=seed)

    # -- what the requester can learn -------------------------------------------------------

    @property
    def exhausted(self) -> set[str]:
        """Annotations with no recorded answer left: their HITs will get no more workers."""
        with self._state:
            return set(self._exhausted)

    @property
    def unknown(self) -> set[str]:
        """Annotations of HITs on offer that the dataset has no answers for."""
        with self._state:
            return set(self._unknown)

    def remaining(self, annotation: str) -> int:
        """How many recorded answers an item still has to give."""
        with self._state:
            return len(self._queues.get(annotation, ()))

    # -- doing HITs -------------------------------------------------------------------------

    @staticmethod
    def _field(form: dict[str, Any], label: str, annotation: str) -> str:
        groups = choice_groups(form)
        for name, values in groups.items():
            if label in values:
                return name
        shown = "; ".join(f"{name}: {values}" for name, values in groups.items()) or "none"
        raise ReplayError(f"cannot replay label {label!r} for {annotation!r}: it is not an option value of the "
                          f"HIT's form (single-choice fields and their values: {shown}); map the dataset's label "
                          f"codes to the template's values")

    def _fill(self, form: dict[str, Any], field: str, label: str, assignment_id: str) -> list[tuple[str, str]]:
        """The fields a browser would send: hidden inputs, defaults, and the recorded label."""
        fields: list[tuple[str, str]] = []
        seen_assignment = False
        done: set[str] = set()
        for c in form["controls"]:
            name = c["name"]
            if name == field:
                if name not in done:
                    fields.append((name, label))
                    done.add(name)
            elif c["kind"] == "hidden" and name == "assignmentId":
                fields.append((name, assignment_id))  # what the page's JavaScript does
                seen_assignment = True
            elif c["kind"] in ("hidden", "text", "textarea"):
                fields.append((name, c["value"]))
            elif c["kind"] == "radio" and c["checked"] and name not in done:
                fields.append((name, c["value"]))
                done.add(name)
            elif c["kind"] == "select":
                selected = [o["value"] for o in c["options"] if o["selected"]]
                if not c["multiple"] and not selected and c["options"]:
                    selected = [c["options"][0]["value"]]  # a browser submits the first option
                fields.extend((name, v) for v in selected)
            elif c["kind"] == "checkbox" and c["checked"]:
                fields.append((name, c["value"]))
        if not seen_assignment:
            fields.insert(0, ("assignmentId", assignment_id))
        return fields

    def _do(self, hit: dict[str, Any], annotation: str, worker_id: str, label: str) -> str:
        """Accept, open the task, submit the recorded label. Returns "submitted", or why not
        ("returned": the HIT could not be done, e.g. the label is not in its form, and was given back)."""
        accepted, outcome = self.accept(hit["hitId"], worker_id)
        if accepted is None:
            return outcome

        def do() -> str:
            form, task_url = self.task_form(accepted["location"])
            field = self._field(form, label, annotation)
            self.submit_form(form, self._fill(form, field, label, accepted["assignmentId"]), task_url)
            return field

        field = self.attempt(hit["hitId"], worker_id, accepted["assignmentId"], do)
        if field is None:
            return "returned"
        self.submissions.append({"annotation": annotation, "hit_id": hit["hitId"], "worker_id": worker_id,
                                 "dataset_worker": self.dataset_worker[worker_id],
                                 "assignment_id": accepted["assignmentId"], "field": field, "answer": label})
        return "submitted"

    def work(self, limit: int | None = None) -> int:
        """One pass: fill every open slot that has a recorded answer left. Returns how many."""
        with self._lock:
            submitted = 0
            for hit in self.listing():
                annotation = hit.get("requesterAnnotation")
                if not annotation:
                    continue  # not a HIT of a replayed batch
                queue = self._queues.get(annotation)
                if queue is None:
                    with self._state:
                        self._unknown.add(annotation)
                    continue
                slots = hit["assignmentsAvailable"]
                while slots > 0 and queue:
                    if limit is not None and submitted >= limit:
                        return submitted
                    worker_id, label = queue[0]
                    outcome = self._do(hit, annotation, worker_id, label)
                    if outcome in ("NoAssignmentsAvailable", "HITNotFound", "returned"):
                        break  # the slot went away, or the HIT cannot be done: the answer stays
                    with self._state:
                        queue.popleft()
                        if not queue:
                            self._exhausted.add(annotation)
                    if outcome == "submitted":
                        submitted += 1
                        slots -= 1
                    elif outcome in ("WorkerBlocked", "AlreadyWorkedOn", "QualificationRequirementNotMet"):
                        self.skipped.append({"annotation": annotation, "worker_id": worker_id, "why": outcome})
                    else:
                        raise RuntimeError(f"accepting HIT {hit['hitId']} as {worker_id} failed: {outcome}")
            return submitted


def group_answers(rows: Iterable[tuple[object, object, object]],
                  annotation: Callable[[str], str] | None = None) -> dict[str, list[tuple[str, str]]]:
    """(item, worker, label) rows -> annotation -> [(worker, label)], in row order."""
    name = annotation or (lambda item: item)
    grouped: dict[str, list[tuple[str, str]]] = {}
    for item, worker, label in rows:
        grouped.setdefault(name(_text(item)), []).append((_text(worker), _text(label)))
    return grouped
