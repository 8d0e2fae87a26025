"""`python -m pipeline.apps.cli VERB ...`: the same commands as `trajpred`."""

import sys

from pipeline.apps.cli import main

sys.exit(main(prog="python -m pipeline.apps.cli"))
