"""``python -m hwcompress.cli``: the same as the ``hwcompress`` command."""

from hwcompress.cli import main

main()
