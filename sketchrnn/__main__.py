"""``python -m sketchrnn``: the command line (what torchrun runs with -m)."""

import sys

from sketchrnn.cli import main

if __name__ == "__main__":  # not when `serve --workers` starts a process (it imports this module as __mp_main__)
    sys.exit(main())
