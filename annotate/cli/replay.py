"""`annotate replay`: replay a real crowd's answers through the marketplace and score the policy."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from annotate.cli._common import console, emit_json, json_option, progress_bar

err = console(stderr=True)


@click.command()
@click.argument("dataset_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--policy", default=None, help="Consensus policy (default: the engine's default).")
@click.option("--seed", type=int, default=0, show_default=True, help="Orders each item's recorded answers.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Where the replay's folder (annotate-replay/<dataset>/) goes.")
@click.option("--no-block", is_flag=True, help="Do not exclude workers who answer at random.")
@click.option("--known-share", type=float, default=0.0, show_default=True,
              help="Give this share of the items (at least 30) their known answer: bought for like any item, "
                   "they calibrate the accuracy estimate and are not scored.")
@json_option
def replay(dataset_dir, policy, seed, workdir, no_block, known_share, as_json):
    """Replay DATASET_DIR (answers.csv + truth.csv) against a consensus policy, over the local marketplace."""
    from annotate.replay import run_replay

    with progress_bar(err, not as_json) as bar:
        task = bar.add_task("Items decided", total=None)
        summary = run_replay(dataset_dir, policy=policy, seed=seed, workdir=workdir, block=not no_block,
                             known_share=known_share,
                             on_progress=lambda done, total, _: bar.update(task, completed=done, total=total))
    table = Table(title=f"Replay of {summary['dataset']} with policy {summary['policy']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key in ("items", "accuracy", "n_scored", "answers_per_item", "available_per_item", "fraction_bought",
                "cost_usd", "unresolved", "excluded_workers", "known_items", "passes", "seconds"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    est = summary["accuracy_estimate"]
    if est:
        low, high = est["interval"]
        table.add_row("estimated accuracy", f"{est['estimated_accuracy']:.4f} ({low:.4f}–{high:.4f}), "
                      + ("calibrated on known answers" if est.get("calibrated_on") else "from the answers alone"))
    err.print(table)
    if as_json:
        emit_json(summary)


commands = [replay]
