"""The ``csvpublish`` command: publish, versions, verify, restore and cleanup from a shell.

A thin layer over :class:`~csvpublish.Publisher`: every subcommand parses its
arguments, calls one Publisher method and prints the result. Results go to
stdout (text, or one JSON object with ``--json``); progress bars, logs and
errors go to stderr. Exit codes: 0 success, 1 failed operation (or a verify
that found problems), 2 bad usage, 130 interrupted.

No output carries a credential: storage options whose key looks secret are
shown as ``***``, and as a last guard every byte written to stdout and stderr
has the secret values given on the command line or in the environment masked.

Example::

    csvpublish publish books.csv s3://my-bucket/exports --keep 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast
from urllib.parse import urlsplit

from . import (
    CsvPublishError,
    InputError,
    Progress,
    Publisher,
    PublishResult,
    VerifyReport,
    VersionInfo,
)
from .storage.translate import translate  # the library's one place that turns backend errors into its own

__all__ = ["main"]

PROG = "csvpublish"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

logger = logging.getLogger("csvpublish.cli")

# --- credentials: recognise them, mask them ------------------------------------------------

_SECRET_KEY = re.compile(
    r"secret|key|token|passw|credential|private|signature|sas|auth|session|cookie|connection_string", re.IGNORECASE
)
_SECRET_ENV = re.compile(
    r"SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE|ACCESS_KEY|ACCOUNT_KEY|API_KEY|SAS|CONNECTION_STRING", re.IGNORECASE
)
# Values that secret-looking keys often hold but that are not secrets (masking them would garble output).
_NOT_SECRET = {"anon", "true", "false", "null", "none", "cloud", "cache", "browser", "google_default"}
MASK = "***"


def redact(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``options`` fit to print: values under secret-looking keys become ``***``.

    >>> redact({"secret": "s3cr3t", "client_kwargs": {"endpoint_url": "http://x", "aws_session_token": "t"}})
    {'secret': '***', 'client_kwargs': {'endpoint_url': 'http://x', 'aws_session_token': '***'}}
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        if _SECRET_KEY.search(str(key)):
            out[key] = MASK
        elif isinstance(value, Mapping):
            out[key] = redact(value)
        else:
            out[key] = value
    return out


def _secret_leaves(value: Any, secret: bool) -> Iterator[str]:
    """String values found under a secret-looking key, at any depth."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_leaves(item, secret or bool(_SECRET_KEY.search(str(key))))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _secret_leaves(item, secret)
    elif secret and value is not None and not isinstance(value, bool):
        text = str(value)
        yield text
        yield from (line.strip() for line in text.splitlines() if len(line.strip()) >= 16)  # PEM keys


def secrets_in(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """Every secret the command line or the environment may carry, to be masked in all output.

    Looks at each ``KEY=VALUE`` argument (``--storage-option`` or a typo of it), at
    passwords in URLs, and at environment variables named like credentials.
    """
    found: list[str] = []
    for arg in argv:
        text = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        key, sep, raw = text.partition("=")
        if sep:
            found += [s for s in _secret_leaves({key: parse_value(raw)}, False) if len(s) >= 4]
        with_password = text if "://" in text else raw
        try:
            password = urlsplit(with_password).password if "://" in with_password else None
        except ValueError:
            password = None
        if password:
            found.append(password)
    for name, value in environ.items():
        if (
            _SECRET_ENV.search(name)
            and not name.endswith(("_FILE", "_PATH"))
            and name != "GOOGLE_APPLICATION_CREDENTIALS"
        ):
            found += [s for s in _secret_leaves(value, True) if len(s) >= 8]
    return sorted({s for s in found if s.lower() not in _NOT_SECRET}, key=len, reverse=True)


class MaskingStream:
    """A text stream that writes through to another one with every secret replaced by ``***``."""

    def __init__(self, stream: TextIO, secrets: Sequence[str]) -> None:
        self._stream = stream
        self._secrets = list(secrets)

    def write(self, text: str) -> int:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return self._stream.write(text)

    def writelines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def __getattr__(self, name: str) -> Any:  # encoding, errors, buffer...
        return getattr(self._stream, name)


# --- arguments -------------------------------------------------------------------------------


def parse_value(raw: str) -> Any:
    """A ``--storage-option`` value: JSON when it parses as JSON, else the string itself.

    >>> parse_value("true"), parse_value("3"), parse_value('{"a": 1}'), parse_value("us-east-1")
    (True, 3, {'a': 1}, 'us-east-1')
    """
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _protocol(destination: str) -> str:
    last = destination.rsplit("::", 1)[-1]
    return last.split("://", 1)[0].lower() if "://" in last else "file"


class UsageError(Exception):
    """Bad arguments found after parsing; reported like argparse's own errors (exit 2)."""


def storage_options(items: Sequence[str], endpoint_url: str | None, destination: str) -> dict[str, Any]:
    """Build the fsspec storage options from ``--storage-option`` items and ``--endpoint-url``.

    Raises:
        UsageError: an item is not ``KEY=VALUE``, or the endpoint does not fit the destination.
    """
    options: dict[str, Any] = {}
    for number, item in enumerate(items, 1):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            # never echo the item: it may be a bare secret
            raise UsageError(f"--storage-option number {number} is not KEY=VALUE")
        options[key.strip()] = parse_value(raw)
    if endpoint_url is None:
        return options
    if not endpoint_url.startswith(("http://", "https://")):
        raise UsageError("--endpoint-url must start with http:// or https://")
    protocol = _protocol(destination)
    if protocol in {"s3", "s3a"}:
        client_kwargs = options.get("client_kwargs") or {}
        if not isinstance(client_kwargs, dict):
            raise UsageError("--storage-option client_kwargs must be a JSON object")
        options["client_kwargs"] = {**client_kwargs, "endpoint_url": endpoint_url}
    elif protocol in {"gs", "gcs"}:
        options["endpoint_url"] = endpoint_url
    else:
        raise UsageError(f"--endpoint-url applies to s3:// and gs:// destinations, not {protocol}://")
    return options


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not 1 or more")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options every subcommand takes; accepted before or after the subcommand's name.

    Nothing gets a default here (``SUPPRESS``), so options given before the
    subcommand are not overwritten by the subcommand's defaults; lists and
    counts use a separate ``dest`` per level and are merged after parsing.
    """
    none = argparse.SUPPRESS
    group = parser.add_argument_group("storage and output options")
    group.add_argument(
        "--storage-option",
        metavar="KEY=VALUE",
        action="append",
        dest="top_storage_option" if top else "storage_option",
        default=none,
        help="an fsspec storage option; repeatable; VALUE is parsed as JSON when it can be",
    )
    group.add_argument(
        "--endpoint-url", metavar="URL", default=none, help="the endpoint of an S3-compatible store (R2, MinIO) or GCS"
    )
    group.add_argument("--json", action="store_true", default=none, help="print one JSON object on stdout")
    group.add_argument(
        "-q", "--quiet", action="store_true", default=none, help="no progress bar and no result text; errors still show"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        dest="top_verbose" if top else "verbose",
        default=none,
        help="log what happens on stderr (-vv for debug logs)",
    )
    group.add_argument("--debug", action="store_true", default=none, help="show the traceback of an error")


def _subcommand(
    subparsers: Any,
    name: str,
    *,
    common: argparse.ArgumentParser,
    summary: str,
    description: str,
    example: str,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description=description,
        epilog=("examples:\n" if "\n" in example else "example:\n") + example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(subparser=parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``csvpublish`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Publish CSV snapshots to a folder or a bucket, list them, check them, roll them back.",
        epilog=(
            "examples:\n"
            "  csvpublish publish books.csv ./published\n"
            "  csvpublish versions s3://my-bucket/exports --name books\n"
            "  csvpublish verify gs://my-bucket/exports --name books\n\n"
            "Credentials come from the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS,\n"
            "FSSPEC_<PROTOCOL>_<OPTION>). Exit codes: 0 ok, 1 failed, 2 bad usage.\n"
            "Run 'csvpublish COMMAND --help' for a command's options."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_common(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, top=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _subcommand(
        sub,
        "publish",
        common=common,
        summary="publish a CSV file as the latest snapshot and archive it",
        description="Publish FILE.csv to DESTINATION: a timestamped archive, then the latest, each with a manifest.\n"
        "Prints where the latest and the archive are, with record count and size.",
        example="  csvpublish publish books.csv ./published\n"
        "  csvpublish publish books.csv s3://my-bucket/exports --keep 30 --min-records 1000\n"
        "  csvpublish publish books.csv s3://my-bucket/exports --endpoint-url http://localhost:9000 --json",
    )
    p.add_argument("file", metavar="FILE.csv", help="the CSV file to publish")
    p.add_argument(
        "destination", metavar="DESTINATION", help="a folder or a URL: s3://bucket/prefix, gs://bucket/prefix"
    )
    p.add_argument("--name", help="the snapshot's name (default: the file name without .csv)")
    p.add_argument("--no-compress", dest="compress", action="store_false", help="store plain .csv instead of .csv.gz")
    p.add_argument("--keep", metavar="N", type=_positive_int, help="then delete archives older than the newest N")
    p.add_argument(
        "--skip-unchanged", action="store_true", help="write nothing when the latest already has these bytes"
    )
    p.add_argument(
        "--min-records", metavar="N", type=_non_negative_int, help="refuse a snapshot with fewer than N data rows"
    )

    p = _subcommand(
        sub,
        "versions",
        common=common,
        summary="list the archived versions, newest first",
        description="List the archived versions of NAME in DESTINATION, newest first; '*' in LATEST marks\n"
        "the one the latest came from. The VERSION column is what 'restore' and 'verify --version' take.",
        example="  csvpublish versions s3://my-bucket/exports --name books\n"
        "  csvpublish versions ./published --name books --json | jq -r '.versions[0].version'",
    )
    p.add_argument("destination", metavar="DESTINATION", help="the folder or URL published to")
    p.add_argument("--name", required=True, help="the snapshot's name")

    p = _subcommand(
        sub,
        "verify",
        common=common,
        summary="check the latest (or a version) against its manifest",
        description="Re-read the latest (or an archived version) and compare size, sha256 and record count with its\n"
        "manifest. Exits 0 when everything matches, 1 with the problems when not.",
        example="  csvpublish verify s3://my-bucket/exports --name books\n"
        "  csvpublish verify ./published --name books --version 20261126_053708",
    )
    p.add_argument("destination", metavar="DESTINATION", help="the folder or URL published to")
    p.add_argument("--name", required=True, help="the snapshot's name")
    p.add_argument("--version", dest="version", metavar="VERSION", help="check this archived version, not the latest")

    p = _subcommand(
        sub,
        "restore",
        common=common,
        summary="make an archived version the latest again",
        description="Roll the latest of NAME back to VERSION, an identifier printed by 'versions'.",
        example="  csvpublish versions s3://my-bucket/exports --name books\n"
        "  csvpublish restore s3://my-bucket/exports 20261126_053708 --name books",
    )
    p.add_argument("destination", metavar="DESTINATION", help="the folder or URL published to")
    p.add_argument("version", metavar="VERSION", help="the version identifier, as 'versions' prints it")
    p.add_argument("--name", required=True, help="the snapshot's name")

    p = _subcommand(
        sub,
        "cleanup",
        common=common,
        summary="remove leftovers of interrupted publishes",
        description="Remove what interrupted publishes of NAME left behind: stale locks, archives without a\n"
        "manifest, incomplete multipart uploads, temp files. Publishes in flight are left alone.",
        example="  csvpublish cleanup s3://my-bucket/exports --name books",
    )
    p.add_argument("destination", metavar="DESTINATION", help="the folder or URL published to")
    p.add_argument("--name", required=True, help="the snapshot's name")
    return parser


@dataclass(frozen=True)
class Output:
    """Where and how a command reports."""

    out: TextIO
    err: TextIO
    json: bool
    quiet: bool
    progress: bool

    def text(self, *lines: str) -> None:
        """Print result text on stdout, unless ``--json`` or ``--quiet``."""
        if not self.json and not self.quiet:
            for line in lines:
                print(line, file=self.out)

    def data(self, obj: Mapping[str, Any]) -> None:
        """Print the result as one JSON object on stdout, with ``--json``."""
        if self.json:
            print(json.dumps(obj, ensure_ascii=False, default=str), file=self.out)


# --- the subcommands ---------------------------------------------------------------------------


def _make_progress(output: Output, file: Path) -> Progress | None:
    if not output.progress:
        return None
    try:
        import tqdm  # noqa: F401 - only to know whether bars can be drawn
        from fsspec.callbacks import TqdmCallback
    except ImportError:
        logger.debug("tqdm is not installed: no progress bar (pip install 'csvpublish[cli]')")
        return None
    common = {"file": output.err, "unit": "B", "unit_scale": True, "unit_divisor": 1024, "dynamic_ncols": True}
    return Progress(
        rows=TqdmCallback(tqdm_kwargs={**common, "desc": f"read {file.name}", "position": 0}),
        uploaded=TqdmCallback(tqdm_kwargs={**common, "desc": "upload", "position": 1}),
    )


async def cmd_publish(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    progress = _make_progress(output, Path(args.file))
    if progress is not None and not publisher.compression and Path(args.file).is_file():
        progress.uploaded.set_size(Path(args.file).stat().st_size)  # stored bytes = file bytes
    try:
        result = await publisher.publish_file(args.file, progress=progress)
    finally:
        if progress is not None:
            progress.rows.close()
            progress.uploaded.close()
    output.data(result.to_dict())
    if result.skipped:
        output.text(
            f"unchanged: {publisher.name} already holds these bytes (version {result.version}); nothing written"
        )
    else:
        output.text(f"published {publisher.name}: {_records(result.record_count)}, {_size(result.size)}")
    output.text(*_locations(result))
    if not result.skipped and not result.latest_updated:
        output.text("note: a publish that started later is already the latest; this one is archived only")
    if result.pruned:
        output.text(f"  pruned:   {', '.join(result.pruned)}")
    return EXIT_OK


async def cmd_versions(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    versions = await publisher.versions()
    latest = next((v.version for v in versions if v.is_latest), None)
    output.data(
        {
            "name": publisher.name,
            "destination": publisher.storage.uri(),
            "latest": latest,
            "versions": [v.to_dict() for v in versions],
        }
    )
    if not versions:
        output.text(f"no archived versions of {publisher.name} in {publisher.storage.uri()}")
        return EXIT_OK
    output.text(*_table(versions))
    return EXIT_OK


async def cmd_verify(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    report = await publisher.verify(args.version)
    output.data(report.to_dict())
    if not report.ok:
        # the verdict is the error line: one line on stderr, even with --quiet
        print(f"{PROG}: error: {_one_line(_verify_failure(report))}", file=output.err)
        return EXIT_FAILED
    output.text(
        f"ok: {report.uri} matches its manifest",
        f"  version:  {report.version}",
        f"  records:  {_records(report.record_count, bare=True)}",
        f"  sha256:   {report.sha256}",
        *(f"  note:     {note}" for note in report.notes),
    )
    return EXIT_OK


async def cmd_restore(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    result = await publisher.restore(args.version)
    output.data(result.to_dict())
    output.text(
        f"restored {publisher.name} version {result.version} as the latest: "
        f"{_records(result.record_count)}, {_size(result.size)}",
        *_locations(result),
    )
    return EXIT_OK


async def cmd_cleanup(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    report = await publisher.cleanup()
    output.data(report.to_dict())
    if not report.removed and not report.aborted_uploads:
        output.text(f"nothing to clean up for {publisher.name} in {publisher.storage.uri()}")
        return EXIT_OK
    output.text(
        *(f"removed  {uri}" for uri in report.removed),
        *(f"aborted  {uri} (incomplete upload)" for uri in report.aborted_uploads),
    )
    return EXIT_OK


COMMANDS: dict[str, Callable[[Publisher, argparse.Namespace, Output], Coroutine[Any, Any, int]]] = {
    "publish": cmd_publish,
    "versions": cmd_versions,
    "verify": cmd_verify,
    "restore": cmd_restore,
    "cleanup": cmd_cleanup,
}


# --- formatting ------------------------------------------------------------------------------


def _size(n: int) -> str:
    """``1.2 MiB (1,258,291 bytes)``; plain bytes below 1 KiB."""
    return f"{n} bytes" if n < 1024 else f"{_short_size(n)} ({n:,} bytes)"


def _short_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _records(count: int | None, *, bare: bool = False) -> str:
    if count is None:
        return "unknown" if bare else "unknown record count"
    return f"{count:,}" if bare else f"{count:,} record{'s' if count != 1 else ''}"


def _locations(result: PublishResult) -> list[str]:
    return [
        f"  latest:   {result.latest_uri}",
        f"  archive:  {result.archive_uri}",
        f"  manifest: {result.manifest_uri}",
        f"  version:  {result.version}",
        f"  sha256:   {result.sha256}",
    ]


def _table(versions: Sequence[VersionInfo]) -> list[str]:
    header = ("VERSION", "CREATED (UTC)", "SIZE", "RECORDS", "LATEST", "URI")
    rows = [
        (
            v.version,
            v.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            _short_size(v.size),
            _records(v.record_count, bare=True),
            "*" if v.is_latest else "",
            v.uri,
        )
        for v in versions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    right = {2, 3}  # numbers align right

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        return "  ".join([*cells, row[-1]])

    return [line(header), *(line(row) for row in rows)]


def _verify_failure(report: VerifyReport) -> str:
    return f"verification failed for {report.uri}: " + "; ".join(report.problems)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- running ---------------------------------------------------------------------------------


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROG}: {record.levelname.lower()}: {record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``csvpublish`` command with ``argv`` (default: ``sys.argv[1:]``); return its exit code.

    Example:
        >>> main(["--version"])  # doctest: +SKIP
        csvpublish 0.1.0
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
        return _run(args_list, out, err, stderr_tty=tty)
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


def _run(argv: list[str], out: TextIO, err: TextIO, *, stderr_tty: bool) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    subparser: argparse.ArgumentParser = args.subparser
    quiet = bool(getattr(args, "quiet", False))
    debug = bool(getattr(args, "debug", False))
    verbose = int(getattr(args, "top_verbose", 0) or 0) + int(getattr(args, "verbose", 0) or 0)
    output = Output(
        out=out, err=err, json=bool(getattr(args, "json", False)), quiet=quiet, progress=stderr_tty and not quiet
    )

    package_logger = logging.getLogger("csvpublish")
    handler = logging.StreamHandler(err)
    handler.setFormatter(_LevelFormatter())
    saved_level, saved_propagate = package_logger.level, package_logger.propagate
    # logs are opt-in: without -v only the final error line reaches stderr
    package_logger.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.CRITICAL + 1)
    package_logger.addHandler(handler)
    package_logger.propagate = False
    destination: str = args.destination
    try:
        try:
            options = storage_options(
                [*getattr(args, "top_storage_option", []), *getattr(args, "storage_option", [])],
                getattr(args, "endpoint_url", None),
                destination,
            )
            publisher = _publisher(args, destination, options)
        except (UsageError, InputError) as exc:
            subparser.print_usage(err)
            print(f"{subparser.prog}: error: {_one_line(str(exc))}", file=err)
            return EXIT_USAGE
        logger.info(
            "%s %s, name %s, storage options %s",
            args.command,
            publisher.storage.uri(),
            publisher.name,
            redact(options) or "none",
        )
        return asyncio.run(COMMANDS[args.command](publisher, args, output))
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=err)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `csvpublish versions ... | head`
        _silence_stdout()
        return EXIT_FAILED
    except Exception as exc:
        if debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=err)
        print(f"{PROG}: error: {_one_line(error_message(exc, destination))}", file=err)
        return EXIT_FAILED
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(saved_level)
        package_logger.propagate = saved_propagate


def _publisher(args: argparse.Namespace, destination: str, options: dict[str, Any]) -> Publisher:
    if args.command == "publish":
        return Publisher(
            destination,
            name=args.name if args.name is not None else Path(args.file).stem,
            compression=args.compress,
            storage_options=options or None,
            keep=args.keep,
            skip_unchanged=args.skip_unchanged,
            min_records=args.min_records,
        )
    return Publisher(destination, name=args.name, storage_options=options or None)


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
