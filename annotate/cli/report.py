"""`annotate report`: one self-contained HTML file of plots for a batch."""

from __future__ import annotations

from pathlib import Path

import click

from annotate.cli._common import console, emit_json, json_option

err = console(stderr=True)


@click.command()
@click.argument("batch")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where the HTML goes [default: report-BATCH.html].")
@json_option
@click.pass_obj
def report(ws, batch, out, as_json):
    """Write a batch report: progress, money, answers, confidence, agreement, workers, sample labels."""
    from annotate.report import write_report

    path = write_report(ws, batch, out)
    if as_json:
        emit_json({"batch": batch, "report": str(path)})
    else:
        err.print(f"Report for {batch}: {path}")


commands = [report]
