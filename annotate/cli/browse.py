"""`annotate browse`: the store in Datasette (pip install 'annotate[browse]')."""

from __future__ import annotations

import click

from annotate.cli._common import console

err = console(stderr=True)


@click.command()
@click.option("--port", type=int, default=8001, show_default=True, help="Port Datasette listens on (127.0.0.1).")
@click.option("--no-open", is_flag=True, help="Do not open a web browser.")
@click.pass_obj
def browse(ws, port, no_open):
    """Browse the store in Datasette: tables described, canned queries (low-confidence labels, workers by
    accuracy, spend by batch, quarantined answers, unresolved items, progress by batch). Read-only;
    Ctrl-C stops it."""
    from annotate.browse import browse as serve, require_datasette

    require_datasette()
    err.print(f"Browsing {ws.store_path} at http://127.0.0.1:{port}/ (read-only; Ctrl-C stops)",
              markup=False, highlight=False, soft_wrap=True)
    serve(ws.store_path, port=port, open_browser=not no_open)


commands = [browse]
