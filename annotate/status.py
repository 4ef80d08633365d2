"""What a batch stands at: items, assignments, money, API calls."""

from __future__ import annotations

from decimal import Decimal

from annotate import automation
from annotate.errors import UserError
from annotate.fees import format_money
from annotate.results import accuracy_estimate, quarantine_summary, review_summary
from annotate.store import Store
from annotate.workspace import Workspace


def batch_status(store: Store, name: str) -> dict:
    batch = store.get_batch(name)
    if batch is None:
        raise UserError(f"no batch named {name!r} (known: {', '.join(store.batch_names()) or 'none'})")
    items = len(store.item_ids(name))
    hits = store.hits(name)
    labels = store.labels(name)
    labelled = sum(1 for r in labels.values() if r["status"] == "labelled")
    unresolved = sum(1 for r in labels.values() if r["status"] == "unresolved")
    known = len(store.known_answers(name))
    automated = automation.summary(store, name)  # None unless [automation] is on
    machine = automated["machine_labelled"] if automated else 0
    posted = sum(1 for h in hits if h["hit_id"])
    counts = store.assignment_counts(name)
    quarantined = store.db["assignments"].count_where("batch = ? and quarantine is not null", [name])
    quarantine = quarantine_summary(store, batch, sum(counts.values()))
    money = store.money(name)
    bought = sum(h["max_assignments"] for h in hits if h["hit_id"])
    budget = Decimal(batch["budget_usd"]) if batch.get("budget_usd") else None
    return {
        "batch": name,
        "target": batch["target"],
        "hit_type_id": batch["hit_type_id"],
        "items": items,
        "posted": posted,
        "labelled": labelled,
        "unresolved": unresolved,
        # Items MTurk would not extend (harvest records MTurk's reason), so they ended unresolved.
        "unresolved_reasons": store.extension_refusals(name),
        "known_answer_items": known,
        # expected share of right labels (calibrated confidences) with a 95% interval; None: no labels yet
        "accuracy_estimate": accuracy_estimate(store, name) if labelled else None,
        "machine_labelled": machine,
        "automation": automated,
        "pending": items - labelled - unresolved - machine - sum(1 for r in labels.values() if r["status"] == "known"),
        "assignments_bought": bought,
        "assignments": sum(counts.values()),
        "assignments_by_status": counts,
        "quarantined": quarantined,
        # Most common reasons first, and a warning naming the likely cause when the rate is high.
        "quarantine_reasons": quarantine["reasons"],
        "quarantine_warning": quarantine["warning"],
        "spent_usd": format_money(money["spent"]),
        "committed_usd": format_money(money["committed"]),
        "budget_usd": format_money(budget) if budget is not None else None,
        "api_calls": store.api_calls(name),
        "review": review_summary(store, name),  # rejections, bonuses, notices, cancellation
    }


def status(ws: Workspace, name: str | None = None) -> list[dict]:
    store = Store(ws.store_path, readonly=True)  # reading never writes: works on a read-only store
    names = [name] if name else store.batch_names()
    return [batch_status(store, n) for n in names]
