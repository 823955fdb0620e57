"""The ``csvpublish`` command: publish, versions, verify, restore, cleanup and url from a shell.

A thin layer over :class:`~csvpublish.Publisher`: every subcommand parses its
arguments, calls one Publisher method and prints the result. Results go to
stdout (text, or one JSON object with ``--json``); progress bars, logs and
errors go to stderr. Exit codes: 0 success, 1 failed operation (or a verify
that found problems), 2 bad usage, 130 interrupted.

No output carries a credential: storage options whose key looks secret are
shown as ``***``, and as a last guard every byte written to stdout and stderr
has the secret values given on the command line or in the environment masked.
The one exception is the ``url`` command's URL on stdout, printed whole.

Modules: ``parser`` (arguments and storage options), ``commands`` (one
function per subcommand), ``output`` (text, JSON and masking).

Example::

    csvpublish publish books.csv s3://my-bucket/exports --keep 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import TextIO, cast

from csvpublish.credentials import redact, redactor
from csvpublish.errors import CsvPublishError, InputError
from csvpublish.publisher import Publisher
from csvpublish.storage.translate import translate  # the library's one place that turns backend errors into its own

from .commands import COMMANDS, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, make_publisher
from .output import MaskingStream, Output, one_line, secrets_in
from .parser import PROG, UsageError, build_parser, storage_options

__all__ = ["main"]

logger = logging.getLogger("csvpublish.cli")


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``csvpublish`` command with ``argv`` (default: ``sys.argv[1:]``); return its exit code.

    Example:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        csvpublish ...
        0
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    secrets = secrets_in(args_list, os.environ)
    saved = sys.stdout, sys.stderr
    tty = _isatty(sys.stderr)
    out = cast(TextIO, MaskingStream(sys.stdout, secrets))
    err = cast(TextIO, MaskingStream(sys.stderr, secrets))
    # argparse, warnings and logging's last resort write to sys.stdout/sys.stderr: mask those too
    sys.stdout, sys.stderr = out, err
    try:
        return _run(args_list, out, err, stderr_tty=tty, unmasked=saved[0])
    finally:
        for stream in (out, err):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        sys.stdout, sys.stderr = saved


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _run(argv: list[str], out: TextIO, err: TextIO, *, stderr_tty: bool, unmasked: TextIO) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    quiet = bool(getattr(args, "quiet", False))
    verbose = int(getattr(args, "top_verbose", 0) or 0) + int(getattr(args, "verbose", 0) or 0)
    output = Output(
        out=out,
        err=err,
        json=bool(getattr(args, "json", False)),
        quiet=quiet,
        progress=stderr_tty and not quiet,
        unmasked=unmasked,
    )
    destination: str = args.destination
    with _logs_to(err, verbose):
        try:
            publisher = _publisher(args, err)
            if publisher is None:
                return EXIT_USAGE
            return asyncio.run(COMMANDS[args.command](publisher, args, output))
        except KeyboardInterrupt:
            print(f"{PROG}: error: interrupted", file=err)
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # `csvpublish versions ... | head`
            _silence_stdout()
            return EXIT_FAILED
        except Exception as exc:
            if getattr(args, "debug", False):
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=err)
            print(f"{PROG}: error: {one_line(error_message(exc, destination))}", file=err)
            return EXIT_FAILED


def _publisher(args: argparse.Namespace, err: TextIO) -> Publisher | None:
    """The publisher the arguments ask for; None (after the usage line on ``err``) when they do not fit."""
    subparser: argparse.ArgumentParser = args.subparser
    try:
        options = storage_options(
            [*getattr(args, "top_storage_option", []), *getattr(args, "storage_option", [])],
            getattr(args, "endpoint_url", None),
            args.destination,
        )
        publisher = make_publisher(args, args.destination, options)
    except (UsageError, InputError) as exc:
        subparser.print_usage(err)
        print(f"{subparser.prog}: error: {one_line(str(exc))}", file=err)
        return None
    logger.info(
        "%s %s, name %s, storage options %s",
        args.command,
        publisher.storage.uri(),
        publisher.name,
        redact(options) or "none",
    )
    return publisher


@contextlib.contextmanager
def _logs_to(err: TextIO, verbose: int) -> Iterator[None]:
    """The package's log records on ``err`` for the command's run: opt-in, without -v only the error line shows."""
    package_logger = logging.getLogger("csvpublish")
    handler = logging.StreamHandler(err)
    handler.setFormatter(_LevelFormatter())
    handler.addFilter(redactor)  # registered credentials and signed URLs, in the package's own records too
    saved_level, saved_propagate = package_logger.level, package_logger.propagate
    package_logger.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.CRITICAL + 1)
    package_logger.addHandler(handler)
    package_logger.propagate = False
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(saved_level)
        package_logger.propagate = saved_propagate


def error_message(exc: BaseException, where: str) -> str:
    """The message to show for ``exc``: the library's own, with backend errors translated first.

    Messages of csvpublish errors name objects by display URI, never by credential.
    """
    if isinstance(exc, OSError) and not isinstance(exc, CsvPublishError):
        exc = translate(exc, where)
    message = str(exc) or type(exc).__name__
    if isinstance(exc, (CsvPublishError, OSError)):
        return message
    return f"unexpected {type(exc).__name__}: {message} (rerun with --debug for the traceback)"


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    except (OSError, ValueError):
        pass
