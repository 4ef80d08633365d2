"""Automated data labelling, as Ground Truth does it: the model labels what it is sure of, the crowd the rest.

With `[automation] enabled = true` (annotate.config.AutomationSettings) a batch goes like this:

1. `annotate post` posts HITs for a random `initial` sample only (seeded; known-answer items too).
2. When every posted item is decided, the harvest pass runs a *round* (or `annotate automate BATCH`):
   - the human labels are split at random into `folds` parts, and the batch's scikit-learn model
     ([training] features and hyperparameters, the same training/sklearn_classifier.py `annotate
     train` runs) is fitted once per part on the other parts (cross-fitting): every human label is
     held out once, scored by a model that never saw it;
   - on those held-out scores it finds the lowest confidence t such that, among held-out items scored
     at t or above (at least `min_validation` of them), the one-sided `confidence_level` Wilson lower
     bound on the share labelled as people labelled them is at least `target_accuracy`: the bar is
     met with that confidence, not merely by the point estimate;
   - every item with no HIT is scored by one of those models, drawn at random (the very mixture the
     threshold was measured on), and labelled by machine at t or above (stored apart, in
     `machine_labels`); a random `step` of the others is sent to the crowd (posted as usual: one HIT
     per item, never twice). The last few go all at once.
3. Rounds repeat as people label what was sent, until every item is labelled by one or the other.

Machine labels never reach the crowd's side: the harvest's aggregator, known-answer scores,
leave-one-out agreement and Dawid–Skene skills read workers' answers only, and a machine-labelled
item has no HIT and no answers. The export writes them with `"human-annotated": "no"` and the
model's confidence, as Ground Truth's output manifest does.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from statistics import NormalDist
from types import ModuleType
from typing import Iterable, Sequence

import numpy as np

from annotate.config import AutomationSettings, Batch, Item
from annotate.errors import BudgetExceeded, UserError
from annotate.store import Store, utcnow

MACHINE = "no"  # Ground Truth's "human-annotated" for a label the model gave


# ---------------------------------------------------------------------------- threshold
def wilson_lower(successes: int, n: int, confidence_level: float = 0.95) -> float:
    """The lower end of the one-sided Wilson score interval for a proportion."""
    if n == 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence_level)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


@dataclass(frozen=True)
class Threshold:
    value: float  # label by machine at this confidence or above
    bound: float  # the lower bound on the accuracy of held-out items at or above it
    validated: int  # held-out items at or above it
    correct: int  # ... whose machine label matched the people's


def choose_threshold(confidences: Sequence[float], correct: Sequence[bool], target_accuracy: float, *,
                     confidence_level: float = 0.95, min_validation: int = 50) -> Threshold | None:
    """The lowest confidence at which the held-out items scored at or above it are labelled right
    with a lower bound of at least `target_accuracy`; None when no confidence is (too few held-out
    items, or a model not good enough yet). Ties are kept together: a threshold is a confidence
    some held-out item has, and every item at exactly that confidence counts."""
    conf = np.asarray(confidences, dtype=float)
    right = np.asarray(correct, dtype=bool)
    if conf.shape != right.shape:
        raise ValueError("one correctness flag per confidence")
    order = np.argsort(-conf, kind="stable")
    conf, right = conf[order], right[order]
    hits = np.cumsum(right)
    best = None
    for i in range(len(conf)):
        if i + 1 < len(conf) and conf[i + 1] == conf[i]:
            continue  # the threshold conf[i] takes every item tied with it
        n = i + 1
        if n < min_validation:
            continue
        bound = wilson_lower(int(hits[i]), n, confidence_level)
        if bound >= target_accuracy:
            best = Threshold(float(conf[i]), round(bound, 6), n, int(hits[i]))
    return best


# ---------------------------------------------------------------------------- the model
@lru_cache(maxsize=1)
def _script() -> ModuleType:
    """training/sklearn_classifier.py, the script `annotate train` runs: the same estimator and features."""
    from annotate.sagemaker.settings import FRAMEWORKS, training_dir

    source = training_dir()
    spec = importlib.util.spec_from_file_location("annotate_automation_sklearn", source / FRAMEWORKS["sklearn"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # it puts training/ on sys.path for its helper, labelled_csv
    return module


class Model:
    """The batch's scikit-learn estimator, fitted in this process on the items' [training] features."""

    def __init__(self, config: dict, labels: list[str]):
        from annotate.sagemaker import requests as rq
        from annotate.sagemaker.settings import TrainingSettings

        settings = TrainingSettings.from_config(config)
        if (settings.algorithm or "sklearn") != "sklearn":
            raise UserError(f"automated labelling trains the scikit-learn script, not {settings.algorithm!r}",
                            field="training.algorithm")
        self.features = settings.features
        self.labels = labels
        from annotate.sagemaker.settings import training_dir

        script = _script()
        # A name the script does not define would end it (SystemExit) mid-harvest: refuse it here (exit 2).
        rq.check_script_hyperparameters("sklearn", settings.hyperparameters_for("sklearn"), training_dir())
        hyperparameters = rq.script_hyperparameters(self.features, labels, settings.hyperparameters_for("sklearn"))
        # As the training toolkit hands them over (`-C 3.0`, `--estimator svc`, …): the job's estimator.
        self.args = script.parse_args(rq.to_cmd_args(hyperparameters))
        self._script = script
        self.estimator = None

    def matrix(self, rows: Iterable[dict]) -> np.ndarray:
        rows = list(rows)
        return self._script.labelled_csv.rows_to_matrix(rows, self.features) if rows else np.zeros((0, 0))

    def fit(self, x: np.ndarray, y: Sequence[int]) -> "Model":
        self.estimator = self._script.build_estimator(self.args)
        with warnings.catch_warnings():
            # scikit-learn >= 1.9 announces the end of SVC(probability=True), which the script still uses.
            warnings.simplefilter("ignore", FutureWarning)
            self.estimator.fit(x, np.asarray(y))
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label index, confidence = the highest class probability) per row."""
        if len(x) == 0:
            return np.zeros(0, dtype=int), np.zeros(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            probabilities = self.estimator.predict_proba(x)
        best = probabilities.argmax(axis=1)
        return np.asarray(self.estimator.classes_)[best], probabilities.max(axis=1)


# ---------------------------------------------------------------------------- which items go to people
def settings_of(config: dict) -> AutomationSettings:
    return AutomationSettings.from_config(config or {})


def initial_sample(item_ids: Sequence[str], settings: AutomationSettings) -> set[str]:
    """The random sample people label first (seeded: the same items on every run)."""
    ids = list(item_ids)
    n = settings.count(settings.initial, len(ids))
    rng = np.random.default_rng(settings.seed)
    return {ids[i] for i in sorted(rng.choice(len(ids), size=n, replace=False))}


def postable(batch: Batch, store: Store, items: list[Item]) -> list[Item]:
    """Of the items `post` would create HITs for, those people are to label: all of them without
    [automation]; with it, the initial sample, known-answer items and what rounds sent to the crowd
    (never a machine-labelled item)."""
    settings = batch.automation
    if settings is None or not settings.enabled:
        return items
    wanted = initial_sample([i.id for i in batch.items], settings) | {i.id for i in batch.items if i.known is not None}
    if store.get_batch(batch.name) is not None:
        wanted |= store.released_items(batch.name)
        wanted -= set(store.machine_labels(batch.name))
    return [i for i in items if i.id in wanted]


# ---------------------------------------------------------------------------- a round
@dataclass
class RoundResult:
    batch: str
    round: int | None = None  # None: nothing to do (every item has a HIT or a machine label)
    human_labels: int = 0
    trained_on: int = 0
    validation: int = 0
    threshold: float | None = None
    bound: float | None = None
    machine_labelled: int = 0
    released: int = 0
    remaining: int = 0
    compute_seconds: float = 0.0
    note: str = ""
    posted: int = 0
    released_items: list[str] = field(default_factory=list, repr=False)

    def as_json(self) -> dict:
        data = asdict(self)
        data.pop("released_items")
        return data


def run_round(store: Store, batch_name: str) -> RoundResult:
    """One round on the store alone (no MTurk call): train, choose the threshold, label by machine,
    choose what goes to the crowd. Recorded before anything is posted, so a crash resumes."""
    batch = store.get_batch(batch_name)
    if batch is None:
        raise UserError(f"no batch named {batch_name!r} (post it first)")
    if not batch.get("hit_type_id"):
        raise UserError(f"batch {batch_name!r} has no HITs yet: `annotate post` it first (the initial sample)")
    settings = settings_of(batch["config"])
    if not settings.enabled:
        raise UserError(f"automated labelling is off for batch {batch_name!r}: set [automation] enabled = true "
                        f"in its batch.toml (before it is first posted)", field="automation.enabled")
    items = store.items(batch_name)  # in item order
    by_id = {r["item_id"]: r for r in items}
    with_hits = store.item_ids_with_hits(batch_name)
    machine = store.machine_labels(batch_name)
    waiting = (initial_sample(list(by_id), settings) | store.released_items(batch_name)) - with_hits
    candidates = [r for r in items if r["item_id"] not in with_hits and r["item_id"] not in machine
                  and r["item_id"] not in waiting]
    result = RoundResult(batch=batch_name)
    if not candidates:
        return result
    rounds = store.automation_rounds(batch_name)
    result.round = (rounds[-1]["round"] + 1) if rounds else 1
    labels = list(batch["labels"])
    index = {name: i for i, name in enumerate(labels)}
    human = {k: v for k, v in store.human_labels(batch_name).items() if k in by_id and v in index}
    result.human_labels = len(human)
    rng = np.random.default_rng([settings.seed, result.round])

    predicted_index = confidence = None
    started = time.perf_counter()
    ids = sorted(human, key=lambda i: by_id[i]["position"])
    folds = settings.folds
    # Cross-fitting: each human label is held out once, scored by the model of the other folds.
    fold_of = rng.permutation(len(ids)) % folds
    models: list[Model] = []
    held_conf, held_right = np.zeros(len(ids)), np.zeros(len(ids), dtype=bool)
    truth = np.array([index[human[i]] for i in ids], dtype=int)

    if len(ids) < 2 * folds or any(len(set(truth[fold_of != j])) < 2 for j in range(folds)):
        result.note = "too few human labels to train on yet"
    else:
        x = Model(batch["config"], labels).matrix(json.loads(by_id[i]["data"]) for i in ids)
        for j in range(folds):
            model = Model(batch["config"], labels).fit(x[fold_of != j], truth[fold_of != j])
            models.append(model)
            predicted, conf = model.predict(x[fold_of == j])
            held_conf[fold_of == j], held_right[fold_of == j] = conf, predicted == truth[fold_of == j]
        result.trained_on, result.validation = int((fold_of != 0).sum()), len(ids)
        threshold = choose_threshold(held_conf, held_right, settings.target_accuracy,
                                     confidence_level=settings.confidence_level, min_validation=settings.min_validation)
        if threshold is None:
            result.note = (f"no confidence reaches {settings.target_accuracy} at {settings.confidence_level:.0%} "
                           f"confidence on {len(ids)} held-out items")
        else:
            result.threshold, result.bound = round(threshold.value, 6), threshold.bound
            # Each item is labelled by one fold's model, drawn at random: the threshold was validated
            # on exactly that mixture (each fold's model on the items it never saw).
            which = rng.integers(folds, size=len(candidates))
            x_new = models[0].matrix(json.loads(r["data"]) for r in candidates)
            predicted_index, confidence = np.zeros(len(candidates), dtype=int), np.zeros(len(candidates))
            for j in range(folds):
                if (which == j).any():
                    predicted_index[which == j], confidence[which == j] = models[j].predict(x_new[which == j])
    result.compute_seconds = round(time.perf_counter() - started, 4)

    now = utcnow()
    machine_rows, rest = [], []
    for n, r in enumerate(candidates):
        if confidence is not None and confidence[n] >= result.threshold:
            label = labels[int(predicted_index[n])]
            machine_rows.append({"batch": batch_name, "item_id": r["item_id"], "label": label, "value": json.dumps(label),
                                 "confidence": round(float(confidence[n]), 6), "threshold": result.threshold,
                                 "round": result.round, "model": f"{batch_name}-auto-{result.round}", "labelled_at": now})
        else:
            rest.append(r["item_id"])
    step = settings.count(settings.step, len(items))
    # The last few go in one round rather than a round of their own.
    chosen = rest if len(rest) <= step * 1.5 else [rest[i] for i in sorted(rng.choice(len(rest), size=step, replace=False))]
    result.machine_labelled, result.released, result.released_items = len(machine_rows), len(chosen), chosen
    result.remaining = len(rest) - len(chosen)
    if machine_rows:
        store.save_machine_labels(machine_rows)
    store.record_automation_round({k: v for k, v in result.as_json().items() if k != "posted"} | {"at": now}, chosen)
    store.event(batch_name, "automation-round", round=result.round, machine_labelled=result.machine_labelled,
                released=result.released, threshold=result.threshold)
    return result


def automate(ws, batch_name: str, *, target: str | None = None, endpoint_url: str | None = None,
             concurrency: int | None = None, confirm=None) -> RoundResult:
    """`annotate automate BATCH`: a round now, then post what it sent to the crowd."""
    store = Store(ws.ensure().store_path)
    result = run_round(store, batch_name)
    _post_released(ws, store, batch_name, result, target=target, endpoint_url=endpoint_url,
                   concurrency=concurrency, confirm=confirm)
    return result


def _post_released(ws, store: Store, batch_name: str, result: RoundResult, **options) -> None:
    from annotate.post import post_batch

    if not result.released_items and not store.released_items(batch_name) - store.item_ids_with_hits(batch_name):
        return
    batch = store.get_batch(batch_name)
    posted = post_batch(ws, batch["dir"], remember_endpoint=False, **options)
    result.posted = posted.created + posted.recovered


def after_harvest(ws, store: Store, batch: dict, harvested, **options) -> RoundResult | None:
    """The harvest's hook: when every posted item of an automated batch is decided, run a round and
    post what it sends to the crowd (the batch is then not done). Out of budget, the round's items
    stay unposted and the event says so: the harvest itself has not failed."""
    if not settings_of(batch.get("config") or {}).enabled or not harvested.done:
        return None
    result = run_round(store, batch["name"])
    try:
        _post_released(ws, store, batch["name"], result, target=batch["target"], **options)
    except BudgetExceeded as exc:
        store.event(batch["name"], "automation-over-budget", round=result.round, reason=str(exc))
        result.note = f"not posted: {exc}"
    harvested.machine_labelled = len(store.machine_labels(batch["name"]))
    if result.posted:
        harvested.done = False
    return result


# ---------------------------------------------------------------------------- export and status
def enabled(batch: dict) -> bool:
    return settings_of(batch.get("config") or {}).enabled


def with_machine_labels(store: Store, batch: dict, index: dict[str, int], rows: list[dict]) -> list[dict]:
    """The export's rows (export.labelled_frame) with the machine labels added, all in item order,
    each marked "human-annotated" yes or no; a machine row's confidence is the model's."""
    machine = store.machine_labels(batch["name"])
    people = {row["id"]: row for row in rows}
    out = []
    for r in store.items(batch["name"]):
        if r["item_id"] in people:
            out.append({**people[r["item_id"]], "human-annotated": "yes"})
            continue
        m = machine.get(r["item_id"])
        if m is None:
            continue
        value = json.loads(m["value"])
        row = {"id": r["item_id"], **{k: v for k, v in json.loads(r["data"]).items() if k != "id"}}
        row.update(label=m["label"], label_index=index[value], confidence=round(float(m["confidence"]), 4), answers=0,
                   _decided_at=m["labelled_at"], _value=value)
        row["human-annotated"] = MACHINE
        out.append(row)
    return out


def summary(store: Store, name: str) -> dict | None:
    """For `status`: rounds run, items labelled by machine, the last threshold. None when off."""
    batch = store.get_batch(name)
    if batch is None or not enabled(batch):
        return None
    rounds = store.automation_rounds(name)
    last = rounds[-1] if rounds else {}
    return {"rounds": len(rounds), "machine_labelled": len(store.machine_labels(name)),
            "threshold": last.get("threshold"), "bound": last.get("bound"),
            "compute_seconds": round(sum(r["compute_seconds"] or 0 for r in rounds), 4)}
