"""A batch directory: `batch.toml` plus an items file, loaded and validated.

Everything a requester can get wrong is checked here, before anything is posted, and
reported with the file, line and field it concerns (UserError → exit code 2).

batch.toml:

    [batch]
    name = "iris"                    # default: the directory's name
    template = "iris.html.j2"        # in the batch dir, else in hit_templates/
    items = "items.csv"              # .csv | .jsonl | .manifest (Ground Truth input manifest)
    id_column = "id"                 # default "id"; row number when the column is absent
    gold_column = "species"          # hidden from workers; for simulated crowds and accuracy
    task_type = "text-classification"   # or "image-classification": the manifest's type
    label_attribute = "iris-species" # the manifest's label attribute (default: the name, "_" and "." as "-")

    [hit]                            # HIT type properties, in MTurk's units
    title = "…"; description = "…"; keywords = "…"
    reward = "0.05"                  # USD, a string (money is never a float)
    approval = "harvest"             # or "auto": no ApproveAssignment calls; MTurk approves at AutoApprovalTime
    notify_queue = "https://sqs.us-east-1.amazonaws.com/123456789012/annotate-events"  # harvest --watch reads its events
    assignment_duration = "10m"      # seconds or 30s / 10m / 2h / 3d
    lifetime = "3d"
    auto_approval_delay = "1d"
    frame_height = 600
    qualifications = [ { QualificationTypeId = "…", Comparator = "…", IntegerValues = [..] } ]

    [task]
    labels = ["setosa", "versicolor", "virginica"]
    field = "species"                # the form field (QuestionIdentifier) holding the answer
    instructions = "…"

    [consensus]                      # handed to the consensus policy
    policy = "agree"
    agree = 2
    max_assignments = 9

    [budget]
    max_usd = "25.00"                # hard cap for the batch: posting and extending never pass it

    [workers]                        # a qualification test (annotate.qualification_test)
    test = "known"                   # from the known-answer items, or a CSV/JSONL file of questions
    test_questions = 5; passing_score = 80; retry_delay = "1d"; test_duration = "10m"

    [training]                       # read by `annotate train`
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from annotate.errors import UserError
# MTurk's limits (CreateHITType / CreateHIT) live in annotate.limits beside the service model's;
# the names stay importable from here.
from annotate.limits import (
    ANNOTATION_MAX, DESCRIPTION_MAX, DURATION_RANGES, KEYWORDS_MAX, QUALIFICATIONS_MAX, TITLE_MAX, input_shape,
    model_pattern, problems, xml_invalid,
)

BATCH_FILE = "batch.toml"
MASTERS_QUALIFICATION_IDS = {"2F1QJWKUDD8XADTFD2Q0G6UTO95ALH", "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"}

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KNOWN = {
    "batch": {"name", "template", "items", "id_column", "gold_column", "known_answer_column", "task_type",
              "label_attribute"},
    "workers": {"exclude", "exclude_below", "exclude_after", "pool", "pool_after", "block", "block_below", "block_after",
                "test", "test_questions", "passing_score", "retry_delay", "test_duration"},
    "hit": {"title", "description", "keywords", "reward", "assignment_duration", "lifetime",
            "auto_approval_delay", "frame_height", "qualifications", "approval", "notify_queue"},
    "task": None,  # the task type's own settings live here too; the type checks them
    "budget": {"max_usd", "account_max_usd"},
    "automation": {"enabled", "target_accuracy", "initial", "step", "folds", "min_validation", "confidence_level",
                   "seed"},
}


@dataclass(frozen=True)
class Item:
    id: str
    data: dict[str, Any]  # what the template sees: every input column except the gold and known-answer ones
    gold: str | None
    known: str | None  # a known answer: a gold (control) item that scores workers and is never exported
    line: int  # line in the items file, for error messages
    position: int


@dataclass(frozen=True)
class HitSettings:
    title: str
    description: str
    keywords: str
    reward: Decimal
    assignment_duration: int
    lifetime: int
    auto_approval_delay: int
    frame_height: int
    qualifications: list[dict[str, Any]]
    approval: str = "harvest"  # "harvest": annotate approves each answer once stored; "auto": MTurk does, at AutoApprovalTime

    @property
    def masters(self) -> bool:
        return any(q.get("QualificationTypeId") in MASTERS_QUALIFICATION_IDS for q in self.qualifications)


@dataclass(frozen=True)
class WorkerSettings:
    """`[workers]`: automatic exclusion and the trusted-worker pool (annotate.exclusion decides).

    After `exclude_after` answers' worth of evidence, a worker whose accuracy is, even at the
    optimistic end of a 95% interval, below `exclude_below` (default: 0.4 of the way from chance
    to perfect, 0.6 for 3 labels, 0.55 for 4, 0.46 for 10) gets the project's exclusion qualification:
    every batch's HITs require its absence, so they can no longer see or accept them. Nobody is
    blocked automatically (`annotate workers block` does that, by hand). The old names `block`,
    `block_below` and `block_after` still mean the same.
    `pool = N`: the batch's HITs require a pool score of at least N (percent), the lower end of
    a 95% interval on accuracy that earlier batches gave workers after `pool_after` answers."""

    exclude: bool = True
    exclude_below: float | None = None
    exclude_after: int = 20
    pool: int | None = None
    pool_after: int = 20

    # The names before exclusion replaced blocking (read by code written against them).
    block = property(lambda self: self.exclude)
    block_below = property(lambda self: self.exclude_below)
    block_after = property(lambda self: self.exclude_after)

    def rules(self):
        from annotate.exclusion import ExclusionRules

        return ExclusionRules(exclude=self.exclude, exclude_below=self.exclude_below,
                              exclude_after=self.exclude_after, pool_after=self.pool_after)

    def threshold(self, n_labels: int) -> float:
        return self.rules().bar(n_labels)

    @classmethod
    def from_config(cls, config: dict) -> "WorkerSettings":
        """From an already validated batch.toml (as the store keeps it)."""
        w = config.get("workers", {}) or {}
        return cls(exclude=_either(w, "exclude", "block", True), exclude_below=_either(w, "exclude_below", "block_below", None),
                   exclude_after=_either(w, "exclude_after", "block_after", 20), pool=w.get("pool"),
                   pool_after=w.get("pool_after", 20))


def _either(section: dict, name: str, old: str, default):
    """A `[workers]` setting under its name or its old name (checked to agree when both are given)."""
    return section[name] if name in section else section.get(old, default)


def parse_workers(w: dict, file: str) -> WorkerSettings:
    for name, old in (("exclude", "block"), ("exclude_below", "block_below"), ("exclude_after", "block_after")):
        if name in w and old in w and w[name] != w[old]:
            raise UserError(f"{name} = {w[name]!r} and its old name {old} = {w[old]!r} disagree; keep {name}",
                            file=file, field=f"workers.{old}")
    settings = WorkerSettings.from_config({"workers": w})
    if not isinstance(settings.exclude, bool):
        raise UserError(f"expected true or false, got {settings.exclude!r}", file=file, field=_name(w, "exclude", "block"))
    below = settings.exclude_below
    if below is not None and (isinstance(below, bool) or not isinstance(below, (int, float)) or not 0 <= below <= 1):
        raise UserError(f"expected an accuracy between 0 and 1, got {below!r}", file=file,
                        field=_name(w, "exclude_below", "block_below"))
    for field_name, value in ((_name(w, "exclude_after", "block_after"), settings.exclude_after),
                              ("workers.pool_after", settings.pool_after)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"expected a number of answers (1 or more), got {value!r}", file=file, field=field_name)
    pool = settings.pool
    if pool is not None and (isinstance(pool, bool) or not isinstance(pool, int) or not 1 <= pool <= 100):
        raise UserError(f"expected the least pool score the batch's workers need, a whole percent 1-100 "
                        f"(pool = 80: at least 80), got {pool!r}", file=file, field="workers.pool")
    return settings


def _name(w: dict, name: str, old: str) -> str:
    return f"workers.{old}" if old in w and name not in w else f"workers.{name}"


@dataclass(frozen=True)
class AutomationSettings:
    """[automation]: Ground Truth-style automated data labelling (annotate.automation), off by default.

    The crowd first labels a random `initial` sample; then each round trains the batch's model
    `folds` times, each time holding out one part of the human labels, finds on the held-out
    scores the lowest confidence at which the machine's labels are right often enough — the
    one-sided `confidence_level` lower bound (Wilson) on their accuracy, over at least
    `min_validation` items, reaches `target_accuracy` — labels by machine every unposted item
    at or above it, and sends `step` more items to the crowd. `initial` and `step` are a share
    of the batch's items (below 1) or a count."""

    enabled: bool = False
    target_accuracy: float = 0.95  # as Ground Truth targets
    initial: float = 0.1
    step: float = 0.05
    folds: int = 5
    min_validation: int = 50
    confidence_level: float = 0.95
    seed: int = 0

    def count(self, share_or_count: float, n_items: int) -> int:
        """A share of the items (rounded up) or a count, at least 1 and at most all of them."""
        n = math.ceil(share_or_count * n_items) if share_or_count < 1 else int(share_or_count)
        return max(1, min(n, n_items))

    @classmethod
    def from_config(cls, config: dict, file: str | None = None) -> "AutomationSettings":
        """Validated settings from a batch.toml's [automation] table (or its absence: off)."""
        table = config.get("automation", {}) or {}
        values = {}

        def number(key, *, low, high, low_open=True, high_open=True, integer=False):
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
                raise UserError(f"expected {'a whole number' if integer else 'a number'}, got {value!r}",
                                file=file, field=f"automation.{key}")
            below = value <= low if low_open else value < low
            above = value >= high if high_open else value > high
            if below or above:
                span = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
                raise UserError(f"expected a value in {span}, got {value!r}", file=file, field=f"automation.{key}")
            values[key] = value

        if "enabled" in table:
            if not isinstance(table["enabled"], bool):
                raise UserError(f"expected true or false, got {table['enabled']!r}", file=file, field="automation.enabled")
            values["enabled"] = table["enabled"]
        if "target_accuracy" in table:
            number("target_accuracy", low=0, high=1)
        if "confidence_level" in table:
            number("confidence_level", low=0.5, high=1, low_open=False)
        if "folds" in table:
            number("folds", low=2, high=20, low_open=False, high_open=False, integer=True)
        for key in ("initial", "step"):
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (
                        value >= 1 and value != int(value)):
                    raise UserError(f"expected a share of the items (0 < x < 1) or a whole number of items, got {value!r}",
                                    file=file, field=f"automation.{key}")
                values[key] = value
        if "min_validation" in table:
            number("min_validation", low=1, high=10**9, low_open=False, integer=True)
        if "seed" in table:
            number("seed", low=0, high=2**32, low_open=False, integer=True)
        return cls(**values)


@dataclass(frozen=True)
class Batch:
    name: str
    dir: Path
    config: dict[str, Any]
    template: str
    items_file: Path
    items: list[Item]
    hit: HitSettings
    labels: list[str]
    answer_field: str
    instructions: str
    task_type: str
    label_attribute: str
    gold_column: str | None
    consensus: dict[str, Any] = field(default_factory=dict)
    budget_usd: Decimal | None = None
    workers: "WorkerSettings | None" = None
    test: Any = None  # annotate.qualification_test.QualificationTest, when [workers] test is set
    automation: "AutomationSettings | None" = None

    def annotation(self, item_id: str) -> str:
        """The HIT's RequesterAnnotation: ties a HIT back to its batch and item (workers never see it)."""
        return f"{self.name}/{item_id}"

    def gold_annotations(self) -> dict[str, str]:
        """RequesterAnnotation → gold label, for simulated crowds. Empty without a gold column."""
        return {self.annotation(i.id): (i.gold if i.gold is not None else i.known)
                for i in self.items if i.gold is not None or i.known is not None}

    def source_of(self, item: Item) -> tuple[str, str] | None:
        """The manifest source of an item: ("source-ref", uri) or ("source", text), if it has one."""
        for key in ("source-ref", "source"):
            if item.data.get(key) not in (None, ""):
                return key, str(item.data[key])
        return None


def parse_duration(value: Any, where: str, file: str) -> int:
    """Seconds from an int or a string like '90', '10m', '2h', '3d'."""
    if isinstance(value, bool):
        raise UserError(f"expected seconds or a duration like '10m', got {value!r}", file=file, field=where)
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", value)):
        seconds = int(m.group(1)) * _UNITS.get(m.group(2) or "s", 1)
    else:
        raise UserError(f"expected seconds or a duration like '10m', got {value!r}", file=file, field=where)
    lo, hi = DURATION_RANGES[where.split(".")[-1]]
    if not lo <= seconds <= hi:
        raise UserError(f"{seconds} s is outside MTurk's range {lo}..{hi} s", file=file, field=where)
    return seconds


def parse_reward(value: Any, file: str, where: str = "hit.reward") -> Decimal:
    if isinstance(value, float):
        raise UserError("write money as a string, e.g. reward = \"0.05\" (floats lose cents)", file=file, field=where)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise UserError(f"not an amount of money: {value!r}", file=file, field=where)
    text = str(value).strip()
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        raise UserError(f"not an amount of money: {value!r}", file=file, field=where) from None
    if not amount.is_finite() or amount < 0:
        raise UserError(f"must be zero or more, got {value!r}", file=file, field=where)
    # MTurk's CurrencyAmount (botocore's model): plain digits with at most two decimals, so no
    # exponent ("1e30"), sign or separator.
    if not model_pattern("mturk", "CurrencyAmount").fullmatch(text):
        if re.fullmatch(r"[0-9]*\.[0-9]+", text):
            raise UserError(f"MTurk takes whole cents, got {value!r}", file=file, field=where)
        raise UserError(f"write dollars and cents like \"0.05\" (MTurk's CurrencyAmount), got {value!r}",
                        file=file, field=where)
    if len(text) > MONEY_DIGITS:
        raise UserError(f"more than {MONEY_DIGITS} digits: {value!r}", file=file, field=where)
    return amount.quantize(Decimal("0.01"))


MONEY_DIGITS = 20  # far above any account's balance, within Decimal's 28-digit precision


def _require_str(table: dict, key: str, section: str, file: str, *, default: str | None = None, maxlen: int | None = None) -> str:
    value = table.get(key, default)
    if value is None:
        raise UserError("missing required setting", file=file, field=f"{section}.{key}")
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"expected a non-empty string, got {value!r}", file=file, field=f"{section}.{key}")
    if maxlen and len(value) > maxlen:
        raise UserError(f"longer than MTurk's limit of {maxlen} characters ({len(value)})", file=file, field=f"{section}.{key}")
    return value


def load_batch(batch_dir: str | Path) -> Batch:
    """Read and validate a batch directory. Raises UserError naming file, line or field."""
    root = Path(batch_dir)
    if not root.is_dir():
        raise UserError("not a batch directory (it should hold batch.toml and an items file)", file=str(root))
    toml_path = root / BATCH_FILE
    file = str(toml_path)
    if not toml_path.is_file():
        raise UserError("missing batch.toml", file=file)
    try:
        config = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError carries the position only in its message.
        m = re.search(r"at line (\d+)", str(exc))
        raise UserError(f"TOML syntax error: {exc}", file=file, line=int(m.group(1)) if m else None) from None

    for section, known in _KNOWN.items():
        table = config.get(section, {})
        if not isinstance(table, dict):
            raise UserError("expected a table", file=file, field=section)
        for key in table if known is not None else ():
            if key not in known:
                raise UserError(f"unknown setting (known: {', '.join(sorted(known))})", file=file, field=f"{section}.{key}")
    for key in ("consensus", "training"):
        if not isinstance(config.get(key, {}), dict):
            raise UserError("expected a table", file=file, field=key)

    b = config.get("batch", {})
    name = b.get("name", root.resolve().name)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserError(f"batch names are 1-64 letters, digits, '-', '_' or '.', got {name!r}", file=file, field="batch.name")
    from annotate.tasktypes import TASK_TYPES

    task_type = b.get("task_type", "image-classification")
    if not isinstance(task_type, str) or task_type not in TASK_TYPES:
        raise UserError(f"unknown task type {task_type!r} (known: {', '.join(sorted(TASK_TYPES))})",
                        file=file, field="batch.task_type")
    label_attribute = b.get("label_attribute", default_label_attribute(name))
    if not isinstance(label_attribute, str) or len(label_attribute) > 127 \
            or not _label_attribute_pattern().fullmatch(label_attribute) \
            or label_attribute.endswith(_RESERVED_ATTRIBUTE_SUFFIXES):
        raise UserError(f"a label attribute (Ground Truth's LabelAttributeName) is 1-127 letters, digits and '-', "
                        f"starting and ending with a letter or digit, not ending in -ref or -metadata; "
                        f"got {label_attribute!r}", file=file, field="batch.label_attribute")

    t = config.get("task", {})
    labels = t.get("labels")
    if labels is None:
        raise UserError("missing required setting", file=file, field="task.labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in labels):
        raise UserError("expected a non-empty list of label names", file=file, field="task.labels")
    labels = [str(x) for x in labels]
    if len(set(labels)) != len(labels):
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        raise UserError(f"duplicate labels: {', '.join(dupes)}", file=file, field="task.labels")
    answer_field = _require_str(t, "field", "task", file, default="label")
    from annotate.answers import SERVICE_FIELDS

    if answer_field in SERVICE_FIELDS:
        # MTurk (or our base template) fills these itself; the worker's answer would be dropped.
        raise UserError(f"{answer_field!r} is a form field MTurk fills in itself (as are "
                        f"{', '.join(sorted(SERVICE_FIELDS - {answer_field}))}); name the answer field otherwise",
                        file=file, field="task.field")
    instructions = t.get("instructions", "")
    if not isinstance(instructions, str):
        raise UserError("expected a string", file=file, field="task.instructions")

    h = config.get("hit", {})
    frame_height = h.get("frame_height", 0)
    if not isinstance(frame_height, int) or isinstance(frame_height, bool) or frame_height < 0:
        raise UserError(f"expected pixels (0 = automatic), got {frame_height!r}", file=file, field="hit.frame_height")
    qualifications = h.get("qualifications", [])
    if not isinstance(qualifications, list) or not all(isinstance(q, dict) and "QualificationTypeId" in q and "Comparator" in q for q in qualifications):
        raise UserError("expected a list of tables with QualificationTypeId and Comparator (MTurk's QualificationRequirement)",
                        file=file, field="hit.qualifications")
    if len(qualifications) > QUALIFICATIONS_MAX:
        raise UserError(f"MTurk takes at most {QUALIFICATIONS_MAX} qualification requirements, got {len(qualifications)}",
                        file=file, field="hit.qualifications")
    wrong = problems(qualifications, input_shape("mturk", "CreateHITType").members["QualificationRequirements"])
    if wrong:
        raise UserError("not MTurk's QualificationRequirement: " + "; ".join(wrong), file=file, field="hit.qualifications")
    hit = HitSettings(
        title=_require_str(h, "title", "hit", file, maxlen=TITLE_MAX),
        description=_require_str(h, "description", "hit", file, maxlen=DESCRIPTION_MAX),
        keywords=_require_str(h, "keywords", "hit", file, default="annotation", maxlen=KEYWORDS_MAX),
        reward=parse_reward(h["reward"], file) if "reward" in h else _missing(file, "hit.reward"),
        assignment_duration=parse_duration(h.get("assignment_duration", "10m"), "hit.assignment_duration", file),
        lifetime=parse_duration(h.get("lifetime", "3d"), "hit.lifetime", file),
        auto_approval_delay=parse_duration(h.get("auto_approval_delay", "1d"), "hit.auto_approval_delay", file),
        frame_height=frame_height,
        qualifications=qualifications,
        approval=_approval(h.get("approval", "harvest"), file),
    )

    if "notify_queue" in h:
        # Its shape here; whether the target takes it (sandbox and production: Amazon SQS only) at harvest.
        from annotate.notification_harvest import check_queue_url

        try:
            check_queue_url(h["notify_queue"], "local")
        except UserError as exc:
            raise UserError(exc.message, file=file, field="hit.notify_queue") from None
    for key in ("title", "description", "keywords"):
        if (bad := xml_invalid(getattr(hit, key))) is not None:
            raise UserError(f"holds {bad}, a control character MTurk cannot take", file=file, field=f"hit.{key}")
    for where, text in [("task.instructions", instructions), *(("task.labels", x) for x in labels)]:
        if (bad := xml_invalid(text)) is not None:
            raise UserError(f"holds {bad}, a character an MTurk question (XML) cannot hold", file=file, field=where)

    budget = config.get("budget", {})
    budget_usd = parse_reward(budget["max_usd"], file, "budget.max_usd") if "max_usd" in budget else None
    if "account_max_usd" in budget:
        parse_reward(budget["account_max_usd"], file, "budget.account_max_usd")

    template = _require_str(b, "template", "batch", file)
    items_name = _require_str(b, "items", "batch", file, default=_default_items(root))
    items_file = root / items_name
    id_column = _require_str(b, "id_column", "batch", file, default="id")
    gold_column = b.get("gold_column")
    if gold_column is not None and (not isinstance(gold_column, str) or not gold_column):
        raise UserError("expected a column name", file=file, field="batch.gold_column")
    known_column = b.get("known_answer_column")
    if known_column is not None and (not isinstance(known_column, str) or not known_column or known_column == gold_column):
        raise UserError("expected a column name (other than the gold column)", file=file, field="batch.known_answer_column")
    items = load_items(items_file, id_column=id_column, gold_column=gold_column, labels=labels,
                       single_label=TASK_TYPES[task_type].single_label, known_column=known_column)
    room = ANNOTATION_MAX - len(name) - 1  # RequesterAnnotation is "<name>/<item id>"
    for item in items:
        if len(item.id) > room:
            raise UserError(f"item id {item.id[:40]!r}… is {len(item.id)} characters; with the batch name "
                            f"{name!r} it passes MTurk's {ANNOTATION_MAX}-character RequesterAnnotation "
                            f"(at most {room} here)", file=str(items_file), line=item.line, field=id_column)

    w = config.get("workers", {})
    workers = parse_workers(w, file)
    from annotate.qualification_test import load_test

    test = load_test(w, file=file, root=root, name=name, items=items, labels=labels,
                     single_label=TASK_TYPES[task_type].single_label, title=hit.title, instructions=instructions)
    if test is not None:
        # Items asked in the test are held back from the HITs, so their answers never score anyone.
        items = [i for i in items if i.id not in test.item_ids]
        if not items:
            raise UserError("every item is a test question; no item is left for the HITs", file=file,
                            field="workers.test_questions")
        if len(hit.qualifications) >= QUALIFICATIONS_MAX:
            raise UserError(f"the test adds a qualification requirement; MTurk takes at most {QUALIFICATIONS_MAX}",
                            file=file, field="hit.qualifications")
    automation = _automation(config, file, task_type, items)

    return Batch(
        name=name, dir=root.resolve(), config=config, template=template, items_file=items_file,
        items=items, hit=hit, labels=labels, answer_field=answer_field, instructions=instructions,
        task_type=task_type, label_attribute=label_attribute, gold_column=gold_column,
        consensus=dict(config.get("consensus", {})), budget_usd=budget_usd, workers=workers, test=test,
        automation=automation,
    )


def _automation(config: dict, file: str, task_type: str, items: list[Item]) -> AutomationSettings:
    """[automation], and what turning it on needs: a single-label task and a model to train."""
    from annotate.tasktypes import TASK_TYPES

    settings = AutomationSettings.from_config(config, file)
    if not settings.enabled:
        return settings
    if not TASK_TYPES[task_type].single_label:
        raise UserError(f"automated labelling needs a single-label classification task, not {task_type!r}",
                        file=file, field="automation.enabled")
    algorithm = (config.get("training") or {}).get("algorithm")
    if algorithm not in (None, "sklearn"):
        raise UserError(f"automated labelling trains the scikit-learn script in-process, not {algorithm!r}",
                        file=file, field="training.algorithm")
    features = (config.get("training") or {}).get("features")
    features = [features] if isinstance(features, str) else features
    if not features:
        raise UserError("automated labelling trains the batch's model: name its input columns in [training] features",
                        file=file, field="training.features")
    missing = [f for f in features if f not in items[0].data]
    if missing:
        raise UserError(f"[training] features {', '.join(map(repr, missing))} are not columns of the items",
                        file=file, field="training.features")
    return settings


# Ground Truth's LabelAttributeName (botocore's sagemaker model); "-ref" and "-metadata" endings
# mean something else in an augmented manifest.
_RESERVED_ATTRIBUTE_SUFFIXES = ("-ref", "-metadata")


def _label_attribute_pattern() -> re.Pattern:
    return model_pattern("sagemaker", "LabelAttributeName")


def default_label_attribute(name: str) -> str:
    """A legal label attribute from a batch name: '_' and '.' (allowed in names, not in attribute
    names) become '-', and a trailing '-' goes; the name rule guarantees a letter or digit first."""
    attribute = re.sub(r"[^A-Za-z0-9-]", "-", str(name)).strip("-")[:127].rstrip("-") or "label"
    return attribute + "-label" if attribute.endswith(_RESERVED_ATTRIBUTE_SUFFIXES) else attribute


def _approval(value: Any, file: str) -> str:
    if value not in ("harvest", "auto"):
        raise UserError(f"expected \"harvest\" (annotate approves each stored answer) or \"auto\" (MTurk approves "
                        f"at AutoApprovalTime, saving one API call per assignment), got {value!r}",
                        file=file, field="hit.approval")
    return value


def _missing(file: str, where: str):
    raise UserError("missing required setting", file=file, field=where)


def _default_items(root: Path) -> str:
    for name in ("items.csv", "items.jsonl", "items.manifest"):
        if (root / name).exists():
            return name
    return "items.csv"


def load_items(path: Path, *, id_column: str = "id", gold_column: str | None = None, labels: list[str] | None = None,
               single_label: bool = True, known_column: str | None = None) -> list[Item]:
    """Items from CSV, JSON Lines or a Ground Truth input manifest, validated row by row.

    For single-label tasks the gold must be one of the labels; other task types keep it as
    given (JSON text for structured gold such as boxes) for their simulated crowds."""
    file = str(path)
    if not path.is_file():
        raise UserError("items file not found", file=file)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", file=file, line=line) from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(text, file)
    elif suffix in (".jsonl", ".manifest", ".json"):
        rows = _jsonl_rows(text, file, manifest=suffix == ".manifest")
    else:
        raise UserError(f"unknown items format {suffix!r} (use .csv, .jsonl or .manifest)", file=file)
    if not rows:
        raise UserError("no items", file=file)

    items: list[Item] = []
    seen: dict[str, int] = {}
    label_set = set(labels or [])
    has_id = any(id_column in row for _, row in rows)
    for position, (line, row) in enumerate(rows):
        if (bad := _unpostable(row)) is not None:
            column, problem = bad
            raise UserError(problem, file=file, line=line, field=column)
        if has_id:
            value = row.get(id_column)
            if value is None or str(value).strip() == "":
                raise UserError("empty item id", file=file, line=line, field=id_column)
            item_id = str(value).strip()
        else:
            item_id = str(position + 1)
        if "/" in item_id or len(item_id) > 200:
            raise UserError(f"item ids must be at most 200 characters without '/', got {item_id[:40]!r}", file=file, line=line, field=id_column)
        if item_id in seen:
            raise UserError(f"duplicate item id {item_id!r} (first on line {seen[item_id]})", file=file, line=line, field=id_column)
        seen[item_id] = line
        gold = None
        if gold_column is not None and not single_label:
            if gold_column not in row:
                raise UserError(f"gold column {gold_column!r} is missing", file=file, line=line, field=gold_column)
            raw_gold = row[gold_column]
            gold = None if raw_gold in (None, "") else (raw_gold if isinstance(raw_gold, str) else json.dumps(raw_gold))
        elif gold_column is not None:
            if gold_column not in row:
                raise UserError(f"gold column {gold_column!r} is missing", file=file, line=line, field=gold_column)
            raw_gold = row[gold_column]
            gold = None if raw_gold in (None, "") else str(raw_gold)
            if gold is not None and label_set and gold not in label_set:
                raise UserError(f"gold label {gold!r} is not one of the task's labels ({', '.join(labels)})",
                                file=file, line=line, field=gold_column)
        known = None
        if known_column is not None and row.get(known_column) not in (None, ""):
            known = str(row[known_column])
            if single_label and label_set and known not in label_set:
                raise UserError(f"known answer {known!r} is not one of the task's labels ({', '.join(labels)})",
                                file=file, line=line, field=known_column)
        data = {k: v for k, v in row.items() if k not in (gold_column, known_column)}
        data.setdefault(id_column, item_id)
        items.append(Item(id=item_id, data=data, gold=gold, known=known, line=line, position=position))
    return items


ITEM_DEPTH_MAX = 32  # nesting in a JSON item; deeper is no annotation task and would overflow the stack later


def _unpostable(value: Any, path: str = "", depth: int = 0) -> tuple[str, str] | None:
    """(field path, problem) for the first thing in an item's keys or values that no HIT can carry: a
    character XML forbids (control characters, NUL, a lone surrogate from a JSON "\\ud800" escape; MTurk
    would refuse the HIT after the ones before it were paid for), or absurd nesting."""
    if isinstance(value, str):
        bad = xml_invalid(value)
        return None if bad is None else (path, f"holds {bad}, a character an MTurk question (XML) cannot hold")
    if depth >= ITEM_DEPTH_MAX and isinstance(value, (dict, list)):
        return path, f"nested more than {ITEM_DEPTH_MAX} levels deep"
    if isinstance(value, dict):
        for key, inner in value.items():
            name = str(key).encode("utf-8", "backslashreplace").decode("utf-8")  # printable even if a surrogate
            where = f"{path}.{name}" if path else name
            if (bad := xml_invalid(str(key))) is not None:
                return where, f"the name holds {bad}, a character an MTurk question (XML) cannot hold"
            if (found := _unpostable(inner, where, depth + 1)) is not None:
                return found
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            if (found := _unpostable(inner, f"{path}[{i}]", depth + 1)) is not None:
                return found
    return None


def _csv_rows(text: str, file: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise UserError("no header row", file=file, line=1)
    header = [h.strip() if h else h for h in reader.fieldnames]
    if any(not h for h in header):
        raise UserError("empty column name in the header", file=file, line=1)
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise UserError(f"duplicate columns: {', '.join(dupes)}", file=file, line=1)
    reader.fieldnames = header
    rows = []
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                raise UserError(f"more fields than the header's {len(header)}", file=file, line=line)
            if any(v is None for v in row.values()):
                missing = [k for k, v in row.items() if v is None]
                raise UserError(f"fewer fields than the header (missing {', '.join(missing)})", file=file, line=line)
            if all(v == "" for v in row.values()):
                continue  # a blank line
            rows.append((line, row))
    except csv.Error as exc:
        raise UserError(f"CSV error: {exc}", file=file, line=reader.line_num) from None
    return rows


def _jsonl_rows(text: str, file: str, *, manifest: bool) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"not JSON: {exc.msg} (column {exc.colno})", file=file, line=line_no) from None
        except RecursionError:
            raise UserError("JSON nested too deeply", file=file, line=line_no) from None
        if not isinstance(row, dict):
            raise UserError("each line must be a JSON object", file=file, line=line_no)
        if manifest and "source-ref" not in row and "source" not in row:
            raise UserError("a manifest line needs 'source-ref' or 'source'", file=file, line=line_no)
        rows.append((line_no, row))
    return rows
