"""post, harvest, export, status, workers: the batch lifecycle commands."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from annotate.cli._common import confirm_or_refuse, console, progress_bar, wide_console, emit_json, endpoint_option, json_option, target_option, yes_option
from annotate.errors import UserError
from annotate.fees import format_money

err = console(stderr=True)
out = wide_console()


_confirm = _confirm_or_refuse = confirm_or_refuse  # the shared one (cli/_common.py)


def _progress(description: str, enabled: bool = True):
    return progress_bar(err, enabled)


@click.command()
@click.argument("batch_dir", type=click.Path(file_okay=False, path_type=Path))
@target_option
@endpoint_option
@yes_option
@click.option("--dry-run", is_flag=True, help="Validate, render, estimate the cost and check the balance; post nothing.")
@click.option("--concurrency", type=int, default=None, help="API calls in flight [env ANNOTATE_CONCURRENCY; default 8].")
@json_option
@click.pass_obj
def post(ws, batch_dir, target, endpoint_url, yes, dry_run, concurrency, as_json):
    """Post a batch: one HIT per item (a re-run never posts an item twice)."""
    from annotate.post import post_batch

    with _progress("Creating HITs", not as_json) as bar:
        task = bar.add_task("Creating HITs", total=None)
        result = post_batch(ws, batch_dir, target=target, endpoint_url=endpoint_url, confirm=_confirm(yes),
                            dry_run=dry_run, concurrency=concurrency, progress=lambda n, total: bar.update(task, completed=n, total=total))
    summary = {
        "batch": result.batch, "target": result.target, "hit_type_id": result.hit_type_id, "items": result.items,
        "created": result.created, "recovered": result.recovered, "already_posted": result.already_posted,
        "estimate_usd": format_money(result.estimate_usd),
        "balance_usd": format_money(result.balance_usd) if result.balance_usd is not None else None,
        "dry_run": result.dry_run, "api_calls": result.api_calls, "notes": result.notes,
    }
    if result.qualification_request is not None:  # a batch with a qualification test ([workers] test)
        summary["qualification_type_id"] = result.qualification_type_id
        if dry_run:
            summary["create_qualification_type"] = result.qualification_request
    if as_json:
        emit_json(summary)
        return
    verb = "Would post" if dry_run else "Posted"
    to_post = result.items - result.already_posted
    err.print(f"{verb} {result.created if not dry_run else to_post} HIT(s) for batch [bold]{result.batch}[/] "
              f"on {result.target} (estimate ${format_money(result.estimate_usd)}"
              + (f", balance ${format_money(result.balance_usd)}" if result.balance_usd is not None else "") + ").")
    for note in result.notes:
        err.print(f"[yellow]Note: {note}.[/]")
    if result.qualification_request is not None:
        from annotate.cli.qualify import print_request

        if dry_run:
            print_request(err, result.qualification_request)
        elif result.qualification_type_id:
            err.print(f"HITs require qualification test {result.qualification_type_id} "
                      f"({result.qualification_request['Name']}).", markup=False)
    if result.recovered:
        err.print(f"Recovered {result.recovered} HIT(s) created by an interrupted run (no duplicates).")
    if result.already_posted:
        err.print(f"{result.already_posted} item(s) were already posted; left as they are.")


def _add_pass(totals: dict, r) -> None:
    """Fold one --watch pass into the batch's running totals (HarvestResult.then)."""
    totals[r.batch] = totals[r.batch].then(r) if r.batch in totals else r


def _results_table(results, title: str = "Harvest") -> Table:
    table = Table(title=title)
    for col in ("batch", "new answers", "approved", "labelled", "extended", "unresolved", "quarantined", "decided", "API calls"):
        table.add_column(col, justify="right" if col != "batch" else "left")
    for r in results:
        table.add_row(r.batch, str(r.new_answers), str(r.approved), str(r.labelled), str(r.extended),
                      str(r.unresolved), str(r.quarantined), f"{r.decided}/{r.items}", str(sum(r.api_calls.values())))
    return table


def _result_json(r) -> dict:
    return {"batch": r.batch, "new_answers": r.new_answers, "approved": r.approved, "labelled": r.labelled,
            "extended": r.extended, "unresolved": r.unresolved, "over_budget": r.over_budget, "excluded": r.excluded, "pooled": r.pooled,
            "quarantined": r.quarantined, "items": r.items, "decided": r.decided, "done": r.done,
            "api_calls": r.api_calls, "failure": r.failure.as_json() if r.failure else None}


def _report_failures(failures) -> None:
    """One line per failed batch on stderr (a bug's traceback before its line: tracebacks are for bugs)."""
    if not failures:
        return
    for f in failures:
        if f.detail:
            err.print(f.detail.rstrip(), markup=False, highlight=False, soft_wrap=True)
    for f in failures:
        if f.batch is None:  # the pass itself could not run
            err.print(f"error: {f.reason}", markup=False, highlight=False, soft_wrap=True)
    per_batch = [f for f in failures if f.batch is not None]
    if per_batch:
        err.print(f"[red]Harvest failed for {len(per_batch)} batch(es):[/]")
        for f in per_batch:
            err.print(f"  {f.batch}: {f.reason}", markup=False, highlight=False, soft_wrap=True)


@click.command()
@click.argument("batches", nargs=-1)
@target_option
@endpoint_option
@click.option("--watch", is_flag=True, help="Keep harvesting until every item is decided.")
@click.option("--interval", type=float, default=30.0, show_default=True, help="Seconds between passes with --watch.")
@click.option("--timeout", type=float, default=None, help="Give up watching after this many seconds.")
@click.option("--notify", "notify_queue", metavar="QUEUE_URL", default=None,
              help="With --watch: have MTurk send each batch's HIT events to this SQS queue and harvest the HITs "
                   "they name as they come (default: a batch's [hit] notify_queue).")
@click.option("--sweep-interval", type=float, default=300.0, show_default=True,
              help="With notifications: seconds between ListReviewableHITs sweeps that catch lost events.")
@click.option("--wait", "wait_for_lock", is_flag=True, help="If another harvest is running, wait for it instead of exiting.")
@click.option("--concurrency", type=int, default=None, help="API calls in flight [env ANNOTATE_CONCURRENCY; default 8].")
@yes_option
@json_option
@click.pass_context
def harvest(ctx, batches, target, endpoint_url, watch, interval, timeout, notify_queue, sweep_interval, wait_for_lock,
            concurrency, yes, as_json):
    """Harvest answers: store, approve, reach consensus, buy more assignments. One pass (for cron) unless --watch.

    A batch that fails does not stop the others: each failure is reported in one line, and the
    exit code is 0 when nothing failed, 2 when every failure needs a person (a user error, an
    endpoint that does not answer, a request MTurk refuses), 1 otherwise (a bug, or an MTurk fault
    that outlasted the retries). With --json the last stdout line is always the JSON summary."""
    from annotate.harvest import BatchFailure, HarvestBusy, exit_code, harvest as run_pass, harvest_until_done, skipped_production
    from annotate.store import Store

    ws = ctx.obj
    results, failures, skipped, title = [], [], [], "Harvest"
    notifications = None
    try:
        if notify_queue is not None and not watch:
            raise UserError("--notify reads MTurk's events while watching: add --watch", field="--notify")
        skipped = skipped_production(Store(ws.ensure().store_path), list(batches), target)
        if skipped:
            err.print(f"[yellow]Left alone: production batch(es) {', '.join(skipped)} "
                      "(harvest them with --target production --yes).[/]")
        kwargs = dict(target=target, endpoint_url=endpoint_url, wait_for_lock=wait_for_lock, concurrency=concurrency,
                      confirm=_confirm_or_refuse(yes))
        if watch:
            totals: dict = {}

            def show(results):
                _report_failures([r.failure for r in results if r.failure])
                ok = [r for r in results if not r.failure]
                for r in ok:
                    _add_pass(totals, r)
                if not as_json:
                    err.print(f"pass {len(passes) + 1}: " + " · ".join(
                        f"{r.batch}: {r.decided}/{r.items} decided, +{r.new_answers} answers "
                        f"({totals[r.batch].new_answers} in all), {r.extended} extended "
                        f"({totals[r.batch].extended} in all)" for r in ok))
                passes.append(len(ok))

            passes: list[int] = []
            from annotate import notification_harvest

            if notification_harvest.wants_notifications(ws, list(batches) or None, target, notify_queue):
                def show_events(results):
                    # Passes driven by events come often: only those that did something are shown.
                    _report_failures([r.failure for r in results if r.failure])
                    busy = [r for r in results if not r.failure and (r.new_answers or r.extended)]
                    if busy and not as_json:
                        err.print(" · ".join(f"{r.batch}: {r.decided}/{r.items} decided, +{r.new_answers} answers, "
                                             f"{r.extended} extended" for r in busy))
                    passes.append(len(results))

                report = notification_harvest.watch(
                    ws, list(batches) or None, queue_url=notify_queue, sweep_interval=sweep_interval,
                    poll_interval=interval, timeout=timeout, on_pass=show_events, **kwargs)
                results = report.results  # summed over every pass already
                notifications = {k: getattr(report, k) for k in (
                    "passes", "sweeps", "messages", "events", "duplicates", "quarantined", "foreign", "pings",
                    "sqs_calls", "timed_out")}
            else:
                last = harvest_until_done(ws, list(batches) or None, interval=interval, timeout=timeout, on_pass=show,
                                          **kwargs)
                # The table sums every pass (answers, approvals, extensions, calls); states are the last pass's.
                results = [totals.get(r.batch, r) if not r.failure else r for r in last]
            title = f"Harvest: {len(passes)} pass(es) in all"
        else:
            results = run_pass(ws, list(batches) or None, **kwargs)
            _report_failures([r.failure for r in results if r.failure])
            title = "Harvest"
    except HarvestBusy as exc:
        # Overlapping cron runs: the second one steps aside cleanly.
        err.print(f"[yellow]{exc}[/]")
        if as_json:
            emit_json({"busy": True, "message": str(exc), "batches": [], "failures": [], "exit_code": 0})
        return
    except Exception as exc:  # noqa: BLE001 — the pass could not start (the store, an option): still one line, and the JSON
        failures.append(BatchFailure.from_exception(None, exc))
        _report_failures(failures)
    code = exit_code(results, failures)
    if as_json:
        emit_json({"busy": False, "batches": [_result_json(r) for r in results], "skipped_production": skipped,
                   "failures": [f.as_json() for f in [r.failure for r in results if r.failure] + failures],
                   **({"notifications": notifications} if notifications is not None else {}),
                   "exit_code": code})
    else:
        ok = [r for r in results if not r.failure]
        if ok or not code:
            out.print(_results_table(ok, title))
    if code:
        ctx.exit(code)


@click.command()
@click.argument("batch", required=False)
@click.option("--format", "formats", multiple=True, type=click.Choice(["manifest", "csv", "segmentation-channels"]),
              help="manifest (Ground Truth augmented manifest) and/or csv; both by default. segmentation-channels: "
                   "the built-in semantic-segmentation algorithm's train/, train_annotation/, validation/, "
                   "validation_annotation/, label_map/ layout from a segmentation manifest.")
@click.option("--from-manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="With segmentation-channels: a Ground Truth semantic-segmentation output manifest to convert "
                   "(default: the batch's own export).")
@click.option("--label-attribute", default=None, help="With --from-manifest: the mask attribute, if the manifest has several.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where exports go: the batch's files are written in OUT/<batch>/, so batches never replace "
                   "each other's [default: <home>/exports].")
@click.option("--split", type=float, default=0.8, show_default=True, help="Training share of a stratified train/validation split.")
@click.option("--no-split", is_flag=True, help="Write only the full files.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--raw-csv", is_flag=True,
              help="Write CSV cells exactly as stored. By default a text cell starting with = + - @ tab or CR "
                   "(a formula to a spreadsheet: CSV injection) gets a leading ' (OWASP); numbers stay numbers.")
@click.option("--source-ref", "source_ref", type=click.Choice(["absolute", "s3"]), default=None,
              help="How the manifest and the CSV both name each item's media: absolute local paths, or s3 "
                   "(its path in the batch folder under --s3-prefix) [default: s3 with --s3-prefix, else absolute].")
@click.option("--s3-prefix", default=None, help="With --source-ref s3: s3://bucket/prefix holding the batch folder's media.")
@json_option
@click.pass_obj
def export(ws, batch, formats, from_manifest, label_attribute, out_dir, split, no_split, seed, raw_csv, source_ref,
           s3_prefix, as_json):
    """Export a batch's consensus labels as an augmented manifest and/or CSV (or segmentation channels)."""
    from annotate.export import export_batch

    if "segmentation-channels" in formats:
        from annotate.sagemaker.segmentation import segmentation_channels

        if len(formats) > 1:
            raise UserError("segmentation-channels is exported on its own", field="--format")
        if from_manifest is None:
            if not batch:
                raise UserError("name a BATCH or give --from-manifest", field="--format")
            own = export_batch(ws, batch, ws.exports, formats=("manifest",), split=None, seed=seed)
            from_manifest, label_attribute = own.manifest, label_attribute or f"{own.label_attribute}-ref"
        target = out_dir or (ws.exports / (batch or from_manifest.stem) / "segmentation-channels")
        channels = segmentation_channels(from_manifest, target, label_attribute=label_attribute,
                                         split=1.0 if no_split else split, seed=seed)
        summary = {"out": str(channels.out_dir), "train": len(channels.train), "validation": len(channels.validation),
                   "classes": {str(k): v for k, v in channels.classes.items()}}
        if as_json:
            emit_json(summary)
        else:
            err.print(f"Wrote {len(channels.train)} training and {len(channels.validation)} validation image(s) "
                      f"with their masks under {channels.out_dir}")
        return
    if not batch:
        raise UserError("name the BATCH to export", field="BATCH")
    with _progress("Exporting", not as_json) as bar:
        task = bar.add_task(f"Exporting {batch}", total=None)
        result = export_batch(ws, batch, out_dir or ws.exports, formats=tuple(formats) or ("manifest", "csv"),
                              split=None if no_split else split, seed=seed, raw_csv=raw_csv,
                              source_ref=source_ref or ("s3" if s3_prefix else "absolute"), s3_prefix=s3_prefix,
                              progress=lambda n, total: bar.update(task, completed=n, total=total))
    summary = {"batch": result.batch, "items": result.n_items, "train": result.n_train, "dir": str(result.dir),
               "validation": result.n_validation, "files": [str(p) for p in result.files],
               "manifest": str(result.manifest) if result.manifest else None,
               "csv": str(result.csv) if result.csv else None, "accuracy_estimate": result.accuracy_estimate}
    if as_json:
        emit_json(summary)
        return
    err.print(f"Exported {result.n_items} labelled item(s) of [bold]{batch}[/]"
              + (f" ({result.n_train} train / {result.n_validation} validation)" if result.n_train else "") + ":")
    for path in result.files:
        out.print(f"  {path}")
    if result.accuracy_estimate:
        err.print(f"{batch}: {describe_estimate(result.accuracy_estimate)}; each item's confidence is the calibrated "
                  f"probability that its label is right", markup=False, highlight=False, soft_wrap=True)


@click.command()
@click.argument("batch", required=False)
@json_option
@click.pass_obj
def status(ws, batch, as_json):
    """Where batches stand: items, assignments, money spent and committed, API calls."""
    from annotate.status import status as get_status

    rows = get_status(ws, batch)
    if as_json:
        emit_json({"batches": rows})
        return
    if not rows:
        err.print(f"No batches in {ws.store_path} yet: `annotate post BATCH_DIR` to start.")
        return
    table = Table(title="Batches")
    for col in ("batch", "target", "items", "labelled", "est. accuracy", "unresolved", "pending", "assignments", "quarantined", "spent", "committed", "budget", "API calls"):
        table.add_column(col, justify="left" if col in ("batch", "target") else "right")
    for r in rows:
        est = r.get("accuracy_estimate")
        table.add_row(r["batch"], r["target"], str(r["items"]), str(r["labelled"]),
                      f"{est['estimated_accuracy']:.3f} ({est['interval'][0]:.3f}–{est['interval'][1]:.3f})" if est else "-",
                      str(r["unresolved"]), str(r["pending"]),
                      f"{r['assignments']}/{r['assignments_bought']}", str(r["quarantined"]), f"${r['spent_usd']}", f"${r['committed_usd']}",
                      f"${r['budget_usd']}" if r["budget_usd"] else "-", str(sum(r["api_calls"].values())))
    out.print(table)
    for r in rows:
        if r.get("automation"):  # [automation]: what the model labelled
            a = r["automation"]
            err.print(f"{r['batch']}: {a['machine_labelled']} item(s) labelled by machine in {a['rounds']} round(s)"
                      + (f", last threshold {a['threshold']:.4f}" if a["threshold"] is not None else ""),
                      markup=False, highlight=False)
    for r in rows:
        if r.get("quarantine_warning"):
            err.print(f"warning: {r['batch']}: {r['quarantine_warning']}", style="yellow", markup=False, highlight=False,
                      soft_wrap=True)
    if batch:
        calls = Table(title=f"API calls for {batch}")
        calls.add_column("operation")
        calls.add_column("calls", justify="right")
        for op, n in rows[0]["api_calls"].items():
            calls.add_row(op, str(n))
        out.print(calls)


class _WorkersGroup(click.Group):
    """`annotate workers [BATCH]` lists (as it always did); `annotate workers block ID …` acts."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_WorkersGroup)
def workers():
    """Workers: answers, estimated accuracy, pool score, excluded or blocked (with the reason);
    block, unblock, exclude or include one."""


@workers.command("list")
@click.argument("batch", required=False)
@json_option
@click.pass_obj
def workers_list(ws, batch, as_json):
    """Workers: answers given, estimated accuracy, pool score, excluded / blocked and why (per batch, or across batches)."""
    from annotate.store import Store

    store = Store(ws.store_path, readonly=True)
    if batch and store.get_batch(batch) is None:
        raise UserError(f"no batch named {batch!r} (known: {', '.join(store.batch_names()) or 'none'})", field="BATCH")
    rows = store.workers(batch)
    if as_json:
        emit_json({"workers": rows})
        return
    table = Table(title=f"Workers{' in ' + batch if batch else ''}")
    for col in ("worker", "answers", "estimated accuracy", "known answers right", "pool", "standing", "reason"):
        table.add_column(col, justify="left" if col in ("worker", "standing", "reason") else "right")
    for r in rows:
        skill = r.get("skill")
        gold = f"{r['gold_correct']}/{r['gold_seen']}" if r.get("gold_seen") else "-"
        standing, reason = "", ""
        if r.get("blocked"):
            standing, reason = "blocked", r.get("block_reason") or ""
        elif r.get("excluded"):
            standing, reason = "excluded", r.get("exclude_reason") or ""
        elif r.get("pool") is not None:
            standing = "pool"
        table.add_row(r["worker_id"], str(r["answers"]), f"{skill:.3f}" if skill is not None else "-", gold,
                      str(r["pool"]) if r.get("pool") is not None else "-", standing, reason)
    out.print(table)


def _worker_command(action: str, help_text: str):
    @workers.command(action, help=help_text)
    @click.argument("worker_id")
    @click.option("--reason", required=True, help="Why (kept in the store; MTurk keeps it with a block).")
    @target_option
    @endpoint_option
    @yes_option
    @json_option
    @click.pass_obj
    def command(ws, worker_id, reason, target, endpoint_url, yes, as_json):
        from annotate.workers import act

        done = act(ws, action, worker_id, reason, confirm=_confirm(yes), target=target, endpoint_url=endpoint_url)
        if as_json:
            emit_json(done.as_json())
        else:
            err.print(f"{action.capitalize()}ed {worker_id}" if not action.endswith("e") else f"{action.capitalize()}d {worker_id}",
                      markup=False, highlight=False)
    return command


_worker_command("block", "Block a worker (CreateWorkerBlock): never automatic; it counts against their MTurk account.")
_worker_command("unblock", "Lift a block (DeleteWorkerBlock).")
_worker_command("exclude", "Exclude a worker: the project's exclusion qualification; no batch's HITs show to them.")
_worker_command("include", "Lift an exclusion: the worker sees this project's HITs again.")


def describe_estimate(est: dict) -> str:
    """'labels about 93.1% right (95% interval 90.2–96.0%)'."""
    low, high = est["interval"]
    known = est.get("calibrated_on")
    basis = (f"calibrated on {known['known_items']} known answer(s), the crowd right on {known['known_right']}"
             if known else "from the crowd's answers alone: add known-answer items to calibrate it")
    return (f"labels about {est['estimated_accuracy']:.1%} right (95% interval {low:.1%}–{high:.1%}, "
            f"over {est['items']} labelled item(s); {basis})")


commands = [post, harvest, export, status, workers]
