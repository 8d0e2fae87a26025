#!/usr/bin/env python3
"""`python run.py track --source video.mp4` in a checkout: the same commands as the installed `trajpred`.

The CLI lives in pipeline/apps/cli/ (one module per verb); this wrapper only names the program run.py in usage and error lines.
"""

from __future__ import annotations

import sys

from pipeline.apps.cli import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv, prog="run.py")


if __name__ == "__main__":
    sys.exit(main())
