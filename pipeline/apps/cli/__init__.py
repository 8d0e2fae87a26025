"""Command-line entry point: `trajpred VERB ...` (installed), or `python run.py VERB ...` in a checkout.

One small module per verb (track, live, batch, calibrate, bench, train, eval, bench-forecast, eval-events), each
with `add_parser` (its flags: the parent groups of common.py it shares with other verbs, then its own) and `run`
(the command). This package is the only place that reads argparse and YAML; the pipeline takes typed config
dataclasses. Modules load the pipeline only inside `run`, so `--help` and usage errors stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from types import TracebackType
from typing import NoReturn

from pipeline.apps.cli import batch, bench, bench_forecast, calibrate, eval_events, evaluate, live, track, train

os.environ.setdefault("YOLO_OFFLINE", "1")  # no settings sync / pip auto-installs from ultralytics
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own stderr chatter; we report errors ourselves
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

VERBS = (track, live, batch, calibrate, bench, train, evaluate, bench_forecast, eval_events)  # --help's order

__all__ = ["VERBS", "build_parser", "main"]


class _OneLineParser(argparse.ArgumentParser):
    """argparse's usage errors as one `error:` line (credentials masked) and exit code 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        from pipeline.core.redact import mask_credentials

        words = self.prog.split()  # "run.py track" or "trajpred track" (a subcommand's parser), "run.py" (the main)
        launcher = f"python {words[0]}" if words[0].endswith(".py") else words[0]
        print(f"error: {mask_credentials(message)}; see `{' '.join([launcher, *words[1:], '--help'])}`", file=sys.stderr)
        sys.exit(2)


def _masked_excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """A bug still prints its traceback (to be reported), but never a credential from a URL."""
    import traceback

    from pipeline.core.redact import mask_credentials

    sys.stderr.write(mask_credentials("".join(traceback.format_exception(kind, exc, tb))))


def build_parser(prog: str = "trajpred") -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=prog, description="Video trajectory prediction: YOLO + tracker + LSTM.")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: list[str] | None = None, prog: str = "trajpred") -> int:
    """Run one command (argv: the arguments after the program name; default sys.argv[1:]); returns the exit code."""
    from pipeline.core.errors import UserError

    sys.excepthook = _masked_excepthook
    args = build_parser(prog).parse_args(argv)
    handlers = {verb.NAME: verb.run for verb in VERBS}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout piped into e.g. `head`: nothing left to tell
        sys.stderr.close()
        return 0
