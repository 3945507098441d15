"""``python -m hwcompress``: the same command line as the ``hwcompress`` script."""

from hwcompress.cli import main

if __name__ == "__main__":
    main()
