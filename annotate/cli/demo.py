"""`annotate demo`: the whole pipeline on the local target, with a simulated crowd."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from annotate.cli._common import console, emit_json, json_option, progress_bar

err = console(stderr=True)


@click.command()
@click.option("--example", default="digits", show_default=True, help="Which sample batch (see examples/).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where the demo's folder goes: each run in a new annotate-demo/run-<N>/.")
@click.option("--reuse", is_flag=True, help="Run in the latest annotate-demo/run-<N>/ instead, emptied first.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the simulated crowd and the split.")
@click.option("--workers", type=int, default=25, show_default=True, help="Simulated workers.")
@click.option("--spammers", type=float, default=0.1, show_default=True, help="Share of workers who answer at random.")
@click.option("--no-train", is_flag=True, help="Stop after the export.")
@click.option("--template", type=click.Choice(["plain", "crowd"]), default="plain", show_default=True,
              help="The example's own HTML form, or its Crowd HTML Elements layout (crowd-form, crowd-classifier …).")
@json_option
def demo(example, workdir, reuse, seed, workers, spammers, no_train, template, as_json):
    """Run the end-to-end demo on the local target: post, harvest while a simulated crowd works, export, train."""
    from annotate.demo import CrowdSettings, run_demo

    with progress_bar(err, not as_json) as bar:
        tasks = {}

        def show(stage, done, total):
            label = {"post": "Posting HITs", "harvest": "Items decided"}[stage]
            if stage not in tasks:
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = run_demo(example, workdir, seed=seed, crowd=CrowdSettings(workers=workers, spammer_share=spammers),
                           train=not no_train, on_progress=show, template=template, reuse=reuse)
    table = Table(title=f"annotate demo: {example}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key in ("items", "labelled", "unresolved", "accuracy", "assignments", "answers_per_item", "cost_usd",
                "model_accuracy", "training", "seconds", "manifest", "csv"):
        if key in summary:
            table.add_row(key.replace("_", " "), str(summary[key]))
    err.print(table)
    err.print(f"Look around: annotate --home {summary['home']} status {summary['batch']}")
    if as_json:
        emit_json(summary)


commands = [demo]
