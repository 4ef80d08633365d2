"""qualify create | show: a batch's qualification test ([workers] test in batch.toml)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from annotate.cli._common import emit_json, endpoint_option, json_option, target_option, wide_console

err = Console(stderr=True)
out = wide_console()


def print_request(console: Console, request: dict) -> None:
    """CreateQualificationType's request, as a dry run shows it (the documents shortened)."""
    console.print("CreateQualificationType request:", markup=False)
    for key, value in request.items():
        text = str(value)
        if key in ("Test", "AnswerKey") and len(text) > 160:
            text = f"{text[:160]}… ({len(text.encode('utf-8'))} bytes)"
        console.print(f"  {key}: {text}", markup=False, highlight=False, soft_wrap=True)


@click.group()
def qualify() -> None:
    """A batch's qualification test: a QualificationType whose test workers must pass to see its HITs."""


@qualify.command("create")
@click.argument("batch_dir", type=click.Path(file_okay=False, path_type=Path))
@target_option
@endpoint_option
@click.option("--dry-run", is_flag=True, help="Validate offline and print the CreateQualificationType request.")
@json_option
@click.pass_obj
def create(ws, batch_dir, target, endpoint_url, dry_run, as_json):
    """Create the batch's qualification test (once: a re-run, or `post`, reuses it)."""
    from annotate.qualify import create as run

    result = run(ws, batch_dir, target=target, endpoint_url=endpoint_url, dry_run=dry_run)
    if as_json:
        emit_json({"batch": result.batch, "target": result.target, "qualification_type_id": result.qualification_type_id,
                   "name": result.name, "created": result.created, "dry_run": result.dry_run,
                   "questions": result.questions, "requirement": result.requirement,
                   **({"create_qualification_type": result.request} if dry_run else {})})
        return
    if dry_run:
        print_request(err, result.request)
        if result.qualification_type_id:
            err.print(f"Already created: {result.qualification_type_id}.", markup=False)
        return
    verb = "Created" if result.created else "Already there:"
    err.print(f"{verb} qualification test {result.qualification_type_id} ({result.name}, {result.questions} "
              f"questions) for batch {result.batch} on {result.target}.", markup=False)


@qualify.command("show")
@click.argument("batch")
@endpoint_option
@json_option
@click.pass_obj
def show(ws, batch, endpoint_url, as_json):
    """The batch's qualification test(s): id, status, workers tested and passing."""
    from annotate.qualify import show as run

    rows = run(ws, batch, endpoint_url=endpoint_url)
    if as_json:
        emit_json({"batch": batch, "qualification_types": rows})
        return
    table = Table(title=f"Qualification tests of {batch}")
    cols = ("qualification_type_id", "name", "target", "status", "passing_score", "questions", "workers_tested",
            "workers_passing")
    for col in cols:
        table.add_column(col)
    for r in rows:
        table.add_row(*("-" if r.get(c) is None else str(r.get(c)) for c in cols))
    out.print(table, markup=False)


commands = [qualify]
