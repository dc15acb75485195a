"""``python -m sketchrnn``: the command line (what torchrun runs with -m)."""

import sys

from sketchrnn.cli import main

sys.exit(main())
