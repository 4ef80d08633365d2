"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

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


class _WaitLine:
    """What a wait's callback updates: the text beside the spinner (a job's status, the time)."""

    def __init__(self, progress, task):
        self._progress, self._task = progress, task

    def update(self, text: str) -> None:
        self._progress.update(self._task, description=text)


@contextmanager
def wait_bar(stderr_console: StreamConsole, description: str, enabled: bool = True) -> Iterator[_WaitLine]:
    """A spinner, a status text and the elapsed time on stderr, for waits with no known end (a
    training job, an endpoint coming up); drawn under the same rules as progress_bar (a terminal
    only, not with --quiet nor when `enabled` is false). Yields a line with `.update(text)`."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    target = stderr_console.get()
    context = click.get_current_context(silent=True)
    enabled = enabled and not (context is not None and context.meta.get(QUIET))
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=target,
                  transient=True, disable=not (enabled and target.is_terminal)) as progress:
        yield _WaitLine(progress, progress.add_task(description, total=None))


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
