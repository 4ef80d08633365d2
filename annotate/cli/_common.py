"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

TARGETS = ("local", "sandbox", "production")
QUIET = "annotate.quiet"  # click context meta key: `annotate --quiet`

target_option = click.option(
    "--target", type=click.Choice(TARGETS), default=None,
    help="Marketplace: local (embedded, default), sandbox or production (real MTurk).")
endpoint_option = click.option(
    "--endpoint-url", default=None, help="Talk to this MTurk-compatible endpoint (e.g. `annotate marketplace serve`).")
yes_option = click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON object as the last line.")


def emit_json(obj: Any) -> None:
    """One JSON object on the last line of stdout."""
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


# Wide enough for any line annotate prints: off a terminal nothing is wrapped or cut with "…".
UNWRAPPED_WIDTH = 100_000


class StreamConsole:
    """A rich Console on stdout or stderr, made for the stream as it is when it prints (click's
    test runner and redirections swap the streams). On a terminal rich fits its width; anywhere
    else (a file, a pipe, cron's log) lines are never wrapped and table cells never cut."""

    def __init__(self, stderr: bool = False):
        self._stderr = stderr
        self._made: tuple[Any, Any] | None = None

    def get(self):
        """The rich Console for the stream in use now."""
        from rich.console import Console

        stream = sys.stderr if self._stderr else sys.stdout
        if self._made is None or self._made[0] is not stream:
            wide = {} if _isatty(stream) else {"width": UNWRAPPED_WIDTH, "soft_wrap": True}
            self._made = (stream, Console(file=stream, **wide))
        return self._made[1]

    def __getattr__(self, name: str):
        return getattr(self.get(), name)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or a file-less stream is no terminal
        return False


def console(stderr: bool = False) -> StreamConsole:
    return StreamConsole(stderr=stderr)


def wide_console() -> StreamConsole:
    """Tables stay whole when piped (rich would squeeze them to 80 columns and cut cells)."""
    return console()


def progress_bar(stderr_console: StreamConsole, enabled: bool = True):
    """A rich progress bar on stderr, drawn only on a terminal (never into a log), not with `annotate --quiet`
    nor when `enabled` is false (--json)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    target = stderr_console.get()
    context = click.get_current_context(silent=True)
    enabled = enabled and not (context is not None and context.meta.get(QUIET))
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=target, transient=True, disable=not (enabled and target.is_terminal))


def confirm_or_refuse(yes: bool):
    """A `confirm(question)` for the library: True with --yes; on a terminal, ask; without one (cron,
    a script), refuse with a message saying to pass --yes (exit 2)."""
    from annotate.errors import UserError

    def ask(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UserError(f"{question} needs confirmation and there is no terminal to ask on: pass --yes")
        return click.confirm(question, default=False, err=True)

    return ask
