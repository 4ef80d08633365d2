"""The command line: a thin click layer over the library.

Every module in this package that defines `commands` (a list of click commands or groups)
is picked up, so each part of annotate owns its commands in its own file.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from annotate import __version__
from annotate.errors import UserError


class AnnotateGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=AnnotateGroup)
@click.version_option(__version__, prog_name="annotate")
@click.option("--home", envvar="ANNOTATE_HOME", type=click.Path(file_okay=False),
              default=None, help="Project home holding the store and the local marketplace [env ANNOTATE_HOME; default ./.annotate].")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """annotate: post HITs to Mechanical Turk, harvest, reach consensus, export, train."""
    from annotate.workspace import Workspace

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
