"""Per-item results a person can read: label, confidence, answers, votes, quarantined answers.

And, for `status`, what the quarantined answers of a batch say: how many, their most common
reason, and a warning when so many are quarantined that the batch cannot end well.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from decimal import Decimal

from annotate.errors import UserError
from annotate.fees import format_money
from annotate.store import Store
from annotate.workspace import Workspace

STATUSES = ("labelled", "unresolved", "known", "pending")
COLUMNS = ("item", "status", "label", "confidence", "answers", "votes", "quarantined", "rejected")
# A batch whose quarantine rate passes this, over at least this many answers, gets a warning.
WARN_RATE = 0.20
WARN_MIN_ANSWERS = 10
_MISSING_FIELD = re.compile(r"^no '(?P<field>[^']*)' field in the answer(?: \(fields: (?P<present>.*)\))?$")


def results(ws: Workspace, batch: str, *, status: str | None = None,
            min_confidence: float | None = None) -> list[dict]:
    store = Store(ws.store_path, readonly=True)
    if store.get_batch(batch) is None:
        raise UserError(f"no batch named {batch!r} (known: {', '.join(store.batch_names()) or 'none'})")
    if status is not None and status not in STATUSES:
        raise UserError(f"--status is one of {', '.join(STATUSES)}, got {status!r}", field="--status")
    out = []
    for r in store.item_results(batch):
        if status is not None and r["status"] != status:
            continue
        if min_confidence is not None and (r["confidence"] is None or r["confidence"] < min_confidence):
            continue
        out.append({"item": r["item_id"], "status": r["status"], "label": r["label"],
                    "confidence": r["confidence"], "answers": r["answers"] or 0, "votes": r["votes"],
                    "quarantined": r["quarantined"], "rejected": r["rejected"]})
    return out


def accuracy_estimate(store: Store, batch: str) -> dict | None:
    """How accurate the batch's labels probably are: the expected share of right labels over the
    labelled items (mean of their calibrated confidences) with a 95% interval, or None before any
    item is labelled. The interval's model term comes from the harvest's last `estimate` event:
    the known-answer map's own uncertainty when the batch has enough known answers, else how far
    calibration moved the Dawid–Skene estimate (annotate.consensus.calibration). `calibrated_on`
    says which known answers calibrated it (None: the crowd's answers alone)."""
    from annotate.consensus.calibration import batch_estimate  # numpy: only when there are labels

    p = [r[0] for r in store.db.execute(
        "select confidence from labels where batch = ? and status = 'labelled' and confidence is not null", [batch])]
    if not p:
        return None
    events = store.events(batch, ("estimate",))
    last = events[-1] if events else {}
    if last.get("model_variance") is not None:
        # calibrated on known answers: the interval carries the fitted map's own uncertainty
        est = batch_estimate(p, model_variance=float(last["model_variance"]))
    else:
        gap = float(last.get("raw") or 0.0) - float(last.get("calibrated") or 0.0)
        est = batch_estimate(p, raw_mean=None if not events else sum(p) / len(p) + gap)
    out = est.as_dict()
    out.pop("temperature")
    out.pop("raw_estimate")
    out["calibrated_on"] = last.get("known_answers") or None
    return out


def to_csv(rows: list[dict]) -> str:
    """CSV with votes as JSON; a cell a spreadsheet would run as a formula is neutralised."""
    from annotate.export import neutralise_formula  # pandas comes with it: not for `status`

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**{k: neutralise_formula(v) for k, v in r.items()},
                         "votes": json.dumps(r["votes"], sort_keys=True)})
    return buffer.getvalue()


def _general(reason: str) -> str:
    """A reason without the parts that differ answer by answer (the fields present)."""
    return re.sub(r" \(fields: .*\)$", "", reason)


def quarantine_summary(store: Store, batch: dict, answers: int) -> dict:
    """{count, rate, reasons (most common first), warning}: the warning names the likely cause."""
    reasons = store.quarantine_reasons(batch["name"])
    count = len(reasons)
    rate = count / answers if answers else 0.0
    common = Counter(_general(r) for r in reasons).most_common()
    warning = None
    if answers >= WARN_MIN_ANSWERS and rate > WARN_RATE:
        top, n = common[0]
        warning = (f"{count} of {answers} answers ({rate:.0%}) quarantined; most often ({n}): {top}. "
                   f"{_likely_cause(reasons, top, batch)}")
    return {"count": count, "rate": round(rate, 4), "reasons": dict(common), "warning": warning}


def _likely_cause(reasons: list[str], top: str, batch: dict) -> str:
    match = _MISSING_FIELD.match(top)
    if match:
        present = Counter(m.group("present") for m in map(_MISSING_FIELD.match, reasons) if m and m.group("present"))
        sent = f" (the form sends: {present.most_common(1)[0][0]})" if present else ""
        return (f"Likely cause: the template's form field is not the batch's [task] field = "
                f"'{match.group('field')}'{sent}; fix the template or the field, then post again.")
    return "Likely cause: the answers do not fit the task as configured; see `annotate results` and the template."


def review_summary(store: Store, batch: str) -> dict:
    """What the requester did by hand (reject, approve --override, bonus, notify, cancel), from the events."""
    events = store.events(batch, ("reject", "approve", "notify", "cancel"))
    bonuses = [b for b in store.bonuses(batch).values() if b["paid"]]
    return {
        "rejected": sum(e["kind"] == "reject" for e in events),
        "overridden": sum(e["kind"] == "approve" and bool(e.get("override")) for e in events),
        "bonuses": len(bonuses),
        "bonus_usd": format_money(sum((Decimal(b["amount"]) + Decimal(b["fee"]) for b in bonuses), Decimal(0))),
        "notices": sum(e["kind"] == "notify" for e in events),
        "notified_workers": sum(e.get("sent", 0) for e in events if e["kind"] == "notify"),
        "cancelled": any(e["kind"] == "cancel" for e in events),
    }
