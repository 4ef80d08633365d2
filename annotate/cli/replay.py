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
@json_option
def replay(dataset_dir, policy, seed, workdir, no_block, as_json):
    """Replay DATASET_DIR (answers.csv + truth.csv) against a consensus policy, over the local marketplace."""
    from annotate.replay import run_replay

    with progress_bar(err, not as_json) as bar:
        task = bar.add_task("Items decided", total=None)
        summary = run_replay(dataset_dir, policy=policy, seed=seed, workdir=workdir, block=not no_block,
                             on_progress=lambda done, total, _: bar.update(task, completed=done, total=total))
    table = Table(title=f"Replay of {summary['dataset']} with policy {summary['policy']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key in ("items", "accuracy", "n_scored", "answers_per_item", "available_per_item", "fraction_bought",
                "cost_usd", "unresolved", "excluded_workers", "passes", "seconds"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    err.print(table)
    if as_json:
        emit_json(summary)


commands = [replay]
