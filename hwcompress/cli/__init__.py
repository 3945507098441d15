"""The ``hwcompress`` command line: parse options, call one library function, render.

The core never sees Typer objects. Every :class:`~hwcompress.errors.HwCompressError` becomes
one red line on stderr and exit code 2. One module per command group registers its commands
on :data:`~hwcompress.cli.app.app`, in the order ``--help`` lists them.
"""

from __future__ import annotations

import sys

# the command modules register their commands, in the order --help lists them
from hwcompress.cli import search  # noqa: F401

# isort: split
from hwcompress.cli import export  # noqa: F401

# isort: split
from hwcompress.cli import bench, board, profile, teacher  # noqa: F401

# isort: split
from hwcompress.cli.app import app, console, err_console
from hwcompress.cli.search import SEARCH_OPTIONS, _search_flag
from hwcompress.errors import ConfigError, HwCompressError

__all__ = ["SEARCH_OPTIONS", "app", "console", "err_console", "main"]


def main() -> None:
    """Console-script entry point.

    Typer reports usage errors itself (exit code 2); hwcompress' own errors become one red
    line and exit code 2 as well, never a traceback.
    """
    try:
        app()
    except HwCompressError as err:
        # settings are named by their flags here (the Python API names the fields)
        text = err.render(_search_flag) if isinstance(err, ConfigError) else str(err)
        err_console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
