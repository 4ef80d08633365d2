"""Options and output helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

TARGETS = ("local", "sandbox", "production")

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


def wide_console():
    """Tables stay readable when piped (rich would squeeze them to 80 columns)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)
