"""review, reject, approve, bonus, notify, cancel, results: a requester's review of a batch."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from annotate.cli._common import confirm_or_refuse, emit_json, endpoint_option, json_option, target_option, wide_console, yes_option
from annotate.errors import UserError

err = Console(stderr=True)
out = wide_console()


_confirm = confirm_or_refuse  # asks on a terminal; without one, refuses unless --yes (cli/_common.py)


def _say(text: str) -> None:
    err.print(text, markup=False, highlight=False, soft_wrap=True)


@click.command()
@click.argument("assignments", nargs=-1, required=True)
@click.option("--feedback", required=True, help="Why (the worker sees it; at most 1024 characters).")
@target_option
@endpoint_option
@yes_option
@json_option
@click.pass_obj
def reject(ws, assignments, feedback, target, endpoint_url, yes, as_json):
    """Reject Submitted assignments with feedback (undo with `annotate approve --override`)."""
    from annotate.reject import reject as run

    result = run(ws, list(assignments), feedback, confirm=_confirm(yes), target=target, endpoint_url=endpoint_url)
    if as_json:
        emit_json(result.as_json())
    else:
        _say(f"Rejected {len(result.assignments)} assignment(s) of {len(result.workers)} worker(s); "
             f"the next harvest leaves them out of consensus.")


@click.command()
@click.argument("assignments", nargs=-1, required=True)
@click.option("--override", is_flag=True, help="Approve Rejected assignments too (OverrideRejection): pays them.")
@click.option("--feedback", default=None, help="A note to the worker.")
@target_option
@endpoint_option
@yes_option
@json_option
@click.pass_obj
def approve(ws, assignments, override, feedback, target, endpoint_url, yes, as_json):
    """Approve Submitted assignments now; with --override, undo a rejection."""
    from annotate.reject import approve as run

    result = run(ws, list(assignments), override=override, feedback=feedback, confirm=_confirm(yes), target=target,
                 endpoint_url=endpoint_url)
    if as_json:
        emit_json(result.as_json())
    else:
        _say(f"Approved {len(result.assignments)} assignment(s) of {len(result.workers)} worker(s).")


@click.command()
@click.argument("batch")
@click.option("--worker", default=None, help="The worker to pay (on their first assignment in the batch).")
@click.option("--agreeing", is_flag=True, help="Pay for every answer that agreed with its item's consensus label.")
@click.option("--amount", required=True, help="Dollars per bonus, e.g. 0.05 (MTurk adds its 20% fee, $0.01 minimum).")
@click.option("--reason", required=True, help="Why (the worker sees it).")
@target_option
@endpoint_option
@yes_option
@json_option
@click.pass_obj
def bonus(ws, batch, worker, agreeing, amount, reason, target, endpoint_url, yes, as_json):
    """Pay a bonus to one worker, or for every answer that agreed with consensus (a retry never pays twice)."""
    from annotate.bonus import bonus as run
    from annotate.fees import format_money

    result = run(ws, batch, amount=amount, reason=reason, worker=worker, agreeing=agreeing, confirm=_confirm(yes),
                 target=target, endpoint_url=endpoint_url)
    if as_json:
        emit_json(result.as_json())
        return
    _say(f"Paid {len(result.paid)} bonus(es) in {batch}, ${format_money(result.total_usd)} with MTurk's fee"
         + (f"; {result.already_paid} were paid before and not again." if result.already_paid else "."))


@click.command()
@click.argument("batch")
@click.option("--subject", required=True, help="At most 200 characters.")
@click.option("--message", required=True, help="At most 4096 characters.")
@click.option("--worker", "workers", multiple=True, help="Only these workers (repeatable) [default: every worker of the batch].")
@target_option
@endpoint_option
@json_option
@click.pass_context
def notify(ctx, batch, subject, message, workers, target, endpoint_url, as_json):
    """Message a batch's workers (NotifyWorkers, 100 per call); exit 2 if some could not be reached."""
    from annotate.notify import notify as run

    result = run(ctx.obj, batch, subject=subject, message=message, workers=list(workers) or None, target=target,
                 endpoint_url=endpoint_url)
    if as_json:
        emit_json(result.as_json())
    else:
        _say(f"Sent to {len(result.sent)} worker(s) in {result.calls} call(s).")
        for worker, reason in result.failed.items():
            _say(f"  not sent to {worker}: {reason}")
    if result.failed:
        ctx.exit(2)


@click.command()
@click.argument("batch")
@target_option
@endpoint_option
@yes_option
@json_option
@click.pass_obj
def cancel(ws, batch, target, endpoint_url, yes, as_json):
    """Expire every open HIT of a batch now; answers are kept and a later harvest still collects them."""
    from annotate.cancel import cancel as run

    result = run(ws, batch, confirm=_confirm(yes), target=target, endpoint_url=endpoint_url)
    if as_json:
        emit_json(result.as_json())
    else:
        _say(f"Expired {len(result.expired)} HIT(s) of {batch}"
             + (f" ({len(result.gone)} were gone already)" if result.gone else "")
             + "; `annotate harvest` collects what was submitted.")


@click.command()
@click.argument("batch")
@click.option("--status", "status_", type=click.Choice(["labelled", "unresolved", "known", "pending"]), default=None,
              help="Only items with this status.")
@click.option("--min-confidence", type=float, default=None, help="Only items at least this confident.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout.")
@json_option
@click.pass_obj
def results(ws, batch, status_, min_confidence, as_csv, as_json):
    """Per item: label, confidence, answers, votes, quarantined and rejected answers."""
    from annotate.results import results as run, to_csv

    if as_csv and as_json:
        raise UserError("choose --csv or --json", field="--csv")
    from annotate.results import accuracy_estimate
    from annotate.store import Store

    rows = run(ws, batch, status=status_, min_confidence=min_confidence)
    # the whole batch's labels, whatever the filters: how accurate they probably are
    estimate = accuracy_estimate(Store(ws.store_path, readonly=True), batch)
    if as_json:
        emit_json({"batch": batch, "accuracy_estimate": estimate, "items": rows})
        return
    if as_csv:
        sys.stdout.write(to_csv(rows))
        return
    table = Table(title=f"Results of {batch}")
    for col in ("item", "status", "label", "confidence", "answers", "votes", "quarantined", "rejected"):
        table.add_column(col, justify="right" if col in ("confidence", "answers", "quarantined", "rejected") else "left")
    for r in rows:
        votes = ", ".join(f"{k}: {v}" for k, v in r["votes"].items())
        table.add_row(r["item"], r["status"], str(r["label"]) if r["label"] is not None else "-",
                      f"{r['confidence']:.3f}" if r["confidence"] is not None else "-", str(r["answers"]), votes,
                      str(r["quarantined"]), str(r["rejected"]), )
    out.print(table, markup=False)
    if estimate:
        from annotate.cli.batches import describe_estimate

        err.print(f"{batch}: {describe_estimate(estimate)}; confidence = the calibrated probability that "
                  f"an item's label is right", markup=False, highlight=False, soft_wrap=True)


@click.command()
@click.argument("batch")
@json_option
@click.pass_obj
def review(ws, batch, as_json):
    """What needs a person's eye: answers failing known answers, quarantined answers, workers near the bar."""
    from annotate.review import review as run

    found = run(ws, batch)
    if as_json:
        emit_json(found.as_json())
        return
    counts = found.counts
    _say(f"{batch}: {counts['failing_known']} answer(s) failing a known answer, {counts['quarantined']} quarantined, "
         f"{counts['workers_near_bar']} worker(s) near the bar and {counts['workers_below_bar']} below it "
         f"(accuracy bar {found.threshold:.2f}).")
    sections = (
        ("Answers failing a known answer", found.failing_known, ("assignment", "worker", "item", "answer", "known", "status")),
        ("Quarantined answers", found.quarantined, ("assignment", "worker", "item", "status", "reason")),
        ("Workers near the exclusion bar", found.workers,
         ("worker", "standing", "accuracy", "low", "high", "right", "scored", "basis", "answers")),
    )
    for title, rows, cols in sections:
        if not rows:
            continue
        table = Table(title=title)
        for col in cols:
            table.add_column(col, justify="right" if col in ("accuracy", "low", "high", "right", "scored", "answers")
                             else "left")
        for r in rows:
            table.add_row(*(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
        out.print(table, markup=False)


commands = [review, reject, approve, bonus, notify, cancel, results]
