"""`annotate preview`: one item's HIT as a worker sees it, served, saved as HTML, or as a PNG."""

from __future__ import annotations

import time
from pathlib import Path

import click

from annotate.cli._common import emit_json, json_option
from annotate.interrupt import stop_on_signals


@click.command()
@click.argument("batch_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--item", default=None, help="Item id, or 1-based position in the items file [default: the first].")
@click.option("--accept", is_flag=True, help="Accept the HIT as a preview worker first, so the form is live.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the task page's HTML here.")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG of the page here (headless Chromium).")
@click.option("--width", type=int, default=1000, show_default=True, help="Browser width for the screenshot.")
@click.option("--serve", is_flag=True, help="Keep serving the page until Ctrl+C (the default without --html/--screenshot).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port of the throwaway marketplace that serves the page (0: any free one).")
@json_option
def preview(batch_dir, item, accept, html_out, screenshot, width, serve, port, as_json):
    """Render one item's HIT on a throwaway local marketplace, as a worker sees it."""
    from annotate.preview import preview as run

    serve = serve or (html_out is None and screenshot is None)

    def hold(result):
        if not serve:
            return
        click.echo(f"serving {result.url}\n(Ctrl+C to stop)", err=as_json)
        with stop_on_signals():  # also SIGTERM, and SIGINT in a background job (started ignoring it)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass

    result = run(batch_dir, item, accept=accept, html_out=html_out, screenshot=screenshot, width=width, hold=hold, port=port)
    summary = {"item": result.item_id, "hit_id": result.hit_id, "url": result.url, "question_bytes": result.question_bytes,
               "html": str(result.html_path) if result.html_path else None,
               "screenshot": str(result.screenshot) if result.screenshot else None,
               "screenshot_tool": result.screenshot_tool}
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"item {result.item_id}: question {result.question_bytes:,} bytes")
        if result.html_path:
            click.echo(f"html:       {result.html_path}")
        if result.screenshot:
            click.echo(f"screenshot: {result.screenshot} ({result.screenshot_tool})")


commands = [preview]
