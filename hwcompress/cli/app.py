"""The ``hwcompress`` Typer application, its command groups and its consoles (the command
modules register themselves on them)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console


def _metavar_only(self: typer.core.TyperOption, ctx: object) -> str | None:
    """An option's value placeholder in help: its metavar where one explains the value
    (``METRIC=VALUE``), else nothing, instead of Typer's ``<bool>`` / ``<int>`` tags."""
    return self.metavar


# help rendering only: the tags repeat what the option's text says and wrap every line at 80
# columns
typer.core.TyperOption.display_type_rich = _metavar_only  # type: ignore[method-assign]

#: ``-h`` as well as ``--help`` on every command.
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="hwcompress",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=HELP_OPTIONS,
    help="Hardware-aware neural-network compression: search, distil, quantize, export.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"hwcompress {version('hwcompress')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            console.print("hwcompress (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Hardware-aware neural-network compression: search, distil, quantize, export."""


profile_app = typer.Typer(
    no_args_is_help=True, context_settings=HELP_OPTIONS, help="List and inspect device profiles."
)
app.add_typer(profile_app, name="profile")
teacher_app = typer.Typer(
    no_args_is_help=True, context_settings=HELP_OPTIONS, help="Train and inspect teachers."
)
app.add_typer(teacher_app, name="teacher")

console = Console()
err_console = Console(stderr=True)
