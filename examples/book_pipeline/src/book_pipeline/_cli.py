"""What both commands share: logging set-up and one-line error text."""

from __future__ import annotations

import argparse
import logging
import sys


class _OneLineFormatter(logging.Formatter):
    """``book-collect: warning: message``; no traceback, newlines folded, so each record is one line."""

    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        message = " ".join(record.getMessage().split("\n"))
        return f"{self.prog}: {record.levelname.lower()}: {message}"


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose`` and ``--log-file``."""
    group = parser.add_argument_group("logging")
    group.add_argument("-v", "--verbose", action="store_true", help="also log progress (INFO) on stderr")
    group.add_argument("--log-file", metavar="PATH", help="append a full log, with tracebacks, to this file")


def configure_logging(prog: str, *, verbose: bool, log_file: str | None) -> None:
    """stderr gets one line per warning or error (and per INFO line with ``verbose``); the log file gets all.

    Only the pipeline's and csvpublish's INFO lines are shown; other libraries
    (botocore, gcsfs) speak from WARNING up.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_OneLineFormatter(prog))
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(console)
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for name in ("book_pipeline", "csvpublish"):
        logging.getLogger(name).setLevel(logging.INFO)


def describe(exc: BaseException) -> str:
    """One line naming the error and its cause: ``StorageNotFoundError: s3://x: the bucket does not exist``."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
