"""The command line: a thin click layer over the library.

Every module in this package that defines `commands` (a list of click commands or groups)
is picked up, so each part of annotate owns its commands in its own file.
"""

from __future__ import annotations

import errno
import importlib
import pkgutil
import sqlite3
import sys

import click

from annotate import __version__
from annotate.cli._common import QUIET
from annotate.errors import UserError

# A full disk, a read-only file system, a file annotate may not write: the machine's state, not a
# bug, so one line and exit 2. Every other OSError keeps its traceback.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


def _database_file(exc: BaseException, ctx: click.Context):
    """The SQLite file a failure is about: the innermost object in the traceback that says which
    (the store, the embedded marketplace: both have `db_path`), else the project's store."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        found = getattr(tb.tb_frame.f_locals.get("self"), "db_path", None) or found
        tb = tb.tb_next
    if found is None:
        from annotate.workspace import Workspace

        found = (ctx.obj if isinstance(ctx.obj, Workspace) else Workspace.resolve()).store_path
    return found


class AnnotateGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except sqlite3.DatabaseError as exc:
            from annotate.store import sqlite_problem

            problem = sqlite_problem(exc, _database_file(exc, ctx))
            if problem is None:
                raise  # a bad query or a broken constraint: a bug
            click.echo(f"error: {problem}", err=True)
            ctx.exit(problem.exit_code)
        except OSError as exc:
            if exc.errno not in ENVIRONMENT_ERRNOS:
                raise
            where = exc.filename if exc.filename is not None else getattr(ctx.obj, "home", "annotate")
            click.echo(f"error: {where}: {exc.strerror}", err=True)
            ctx.exit(UserError.exit_code)


@click.group(cls=AnnotateGroup)
@click.version_option(__version__, prog_name="annotate")
@click.option("--home", envvar="ANNOTATE_HOME", type=click.Path(file_okay=False),
              default=None, help="Project home holding the store and the local marketplace [env ANNOTATE_HOME; default ./.annotate].")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bars (they are only ever drawn on a terminal, on stderr).")
@click.pass_context
def cli(ctx: click.Context, home: str | None, quiet: bool) -> None:
    """annotate: post HITs to Mechanical Turk, harvest, reach consensus, export, train."""
    from annotate.workspace import Workspace

    ctx.meta[QUIET] = quiet  # meta is shared with every subcommand's context
    ctx.obj = Workspace.resolve(home)


def _load_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "commands", []):
            cli.add_command(command)


_load_commands()


def main() -> None:
    cli(prog_name="annotate")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
