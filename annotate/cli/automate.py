"""`annotate automate`: one automated-labelling round now (annotate.automation)."""

from __future__ import annotations

import click

from annotate.cli._common import confirm_or_refuse, console, emit_json, endpoint_option, json_option, target_option, yes_option

err = console(stderr=True)


@click.command()
@click.argument("batch")
@target_option
@endpoint_option
@click.option("--concurrency", type=int, default=None, help="API calls in flight [env ANNOTATE_CONCURRENCY; default 8].")
@yes_option
@json_option
@click.pass_obj
def automate(ws, batch, target, endpoint_url, concurrency, yes, as_json):
    """Run an automated-labelling round ([automation] in batch.toml): train on the human labels, label by
    machine what the model is sure of, post HITs for the next share of the rest.

    The harvest runs a round by itself whenever every posted item of the batch is decided; this runs
    one now, with whatever human labels there are."""
    from annotate.automation import automate as run

    result = run(ws, batch, target=target, endpoint_url=endpoint_url, concurrency=concurrency,
                 confirm=confirm_or_refuse(yes))
    if result.round is None:
        err.print(f"{batch}: every item has a HIT or a machine label; nothing to do.")
    else:
        threshold = (f"threshold {result.threshold:.4f} (accuracy ≥ {result.bound:.4f} on {result.validation} "
                     f"held-out items)" if result.threshold is not None else f"no threshold: {result.note}")
        err.print(f"{batch} round {result.round}: {result.human_labels} human labels, {threshold}; "
                  f"{result.machine_labelled} labelled by machine, {result.released} sent to the crowd "
                  f"({result.posted} HITs posted), {result.remaining} left", markup=False, highlight=False)
    if as_json:
        emit_json(result.as_json())


commands = [automate]
