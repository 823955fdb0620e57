"""The ``csvpublish`` command's arguments: the parser, its subcommands and the storage options it builds."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from csvpublish._version import version
from csvpublish.dialect import DELIMITERS
from csvpublish.errors import InputError
from csvpublish.storage.registry import with_endpoint

PROG = "csvpublish"


def parse_value(raw: str) -> Any:
    """A ``--storage-option`` value: JSON when it parses as JSON, else the string itself.

    >>> parse_value("true"), parse_value("3"), parse_value('{"a": 1}'), parse_value("us-east-1")
    (True, 3, {'a': 1}, 'us-east-1')
    """
    try:
        return json.loads(raw)
    except ValueError:
        return raw


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
    try:
        return with_endpoint(destination, options, endpoint_url)
    except InputError as exc:
        raise UsageError(f"--endpoint-url: {exc}") from None


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


def _delimiter(text: str) -> str:
    """A delimiter by name (``tab``) or as itself (``;``)."""
    names = {name: char for char, name in DELIMITERS.items()}
    value = names.get(text.lower(), "\t" if text == "\\t" else text)
    if value not in DELIMITERS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(names)}")
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
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Publish CSV snapshots to a folder or a bucket, list them, check them, roll them back.",
        epilog=(
            "examples:\n"
            "  csvpublish publish books.csv ./published\n"
            "  csvpublish versions s3://my-bucket/exports --name books\n"
            "  csvpublish verify gs://my-bucket/exports --name books\n"
            "  csvpublish get s3://my-bucket/exports --name books -o books.csv --decompress\n"
            "  csvpublish url s3://my-bucket/exports --name books --expires 600\n\n"
            "Credentials come from the environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS,\n"
            "FSSPEC_<PROTOCOL>_<OPTION>). Exit codes: 0 ok, 1 failed, 2 bad usage.\n"
            "Run 'csvpublish COMMAND --help' for a command's options."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    _add_common(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, top=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        _add_publish, _add_versions, _add_verify, _add_get, _add_show, _add_diff, _add_restore, _add_cleanup, _add_url,
    ):
        add(sub, common)
    return parser


def _add_publish(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _subcommand(
        sub,
        "publish",
        common=common,
        summary="publish a CSV file as the latest snapshot and archive it",
        description="Publish FILE.csv to DESTINATION: a timestamped archive, then the latest, each with a manifest.\n"
        "Prints where the latest and the archive are, with record count and size.",
        example="  csvpublish publish books.csv ./published\n"
        "  csvpublish publish books.csv s3://my-bucket/exports --keep 30 --min-records 1000\n"
        "  csvpublish publish books.csv s3://my-bucket/exports --endpoint-url http://localhost:9000 --json\n"
        "  csvpublish publish books.tsv ./published --delimiter tab",
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
    p.add_argument(
        "--allow-schema-change",
        action="store_true",
        help="publish even when the columns differ from the latest's (refused by default)",
    )
    p.add_argument(
        "--delimiter",
        metavar="D",
        type=_delimiter,
        default=",",
        help="the file's delimiter: comma (default), tab (publishes .tsv), semicolon or pipe",
    )
    p.add_argument("--no-header", dest="header", action="store_false", help="the file has no header row")
    _add_key(p, "record what changed since the latest by this key column (repeat for a key of several)")
    p.add_argument("--unique-key", action="store_true", help="refuse a file in which a key is on more than one row")


def _add_key(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--key", metavar="COLUMN", action="append", help=text)


def _add_diff(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _subcommand(
        sub,
        "diff",
        common=common,
        summary="count the rows added, removed and changed between two versions, by key",
        description="Compare version OLD with NEW (identifiers as 'versions' prints them, or 'latest') by their key\n"
        "files, written by publishes with --key: counts of keys added, removed, changed and unchanged, keys on\n"
        "more than one row, and examples of each. Reads neither CSV.",
        example="  csvpublish publish books.csv ./published --key Barcode\n"
        "  csvpublish diff ./published 20261126_053708 latest --name books\n"
        "  csvpublish diff s3://my-bucket/exports 20261126_053708 20261127_053708 --name books --json",
    )
    p.add_argument("destination", metavar="DESTINATION", help="the folder or URL published to")
    p.add_argument("old", metavar="OLD", help="the version to compare from")
    p.add_argument("new", metavar="NEW", help="the version to compare to ('latest' for the latest)")
    p.add_argument("--name", required=True, help="the snapshot's name")
    _add_key(p, "the key column (default: the versions' own key; repeat for a key of several)")


def _add_versions(sub: Any, common: argparse.ArgumentParser) -> None:
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
    _add_destination_and_name(p)


def _add_verify(sub: Any, common: argparse.ArgumentParser) -> None:
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
    _add_destination_and_name(p)
    p.add_argument("--version", dest="version", metavar="VERSION", help="check this archived version, not the latest")


def _add_get(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _subcommand(
        sub,
        "get",
        common=common,
        summary="download the latest (or a version), checked against its manifest",
        description="Download the latest of NAME (or an archived VERSION) to FILE, hashing it as it streams: FILE\n"
        "appears only when size and sha256 match the manifest (exit 1 and no file when not). '-o -' writes to\n"
        "stdout as it streams: a mismatch is found after the bytes were written (exit 1: discard them).\n"
        "Needs read and list permissions only.",
        example="  csvpublish get s3://my-bucket/exports --name books\n"
        "  csvpublish get ./published --name books --version 20261126_053708 -o old.csv.gz\n"
        "  csvpublish get ./published --name books --decompress -o - | head\n"
        "  csvpublish get ./published --name books --datapackage   # for frictionless validate",
    )
    _add_destination_and_name(p)
    p.add_argument("--version", dest="version", metavar="VERSION", help="download this archived version")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="where to write it, '-' for stdout (default: the object's file name)"
    )
    p.add_argument("--decompress", action="store_true", help="write the CSV of a .csv.gz (checked too)")
    p.add_argument(
        "--datapackage",
        action="store_true",
        help="also write a Data Package descriptor of FILE beside it (FILE's stem + .datapackage.json)",
    )


def _add_show(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _subcommand(
        sub,
        "show",
        common=common,
        summary="print the manifest of the latest (or a version)",
        description="Print the manifest of the latest of NAME (or an archived VERSION): version, sizes, sha256,\n"
        "record count, columns, dialect. With --json, the manifest itself.",
        example="  csvpublish show s3://my-bucket/exports --name books\n"
        "  csvpublish show ./published --name books --version 20261126_053708 --json",
    )
    _add_destination_and_name(p)
    p.add_argument("--version", dest="version", metavar="VERSION", help="show this archived version's manifest")


def _add_restore(sub: Any, common: argparse.ArgumentParser) -> None:
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


def _add_cleanup(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _subcommand(
        sub,
        "cleanup",
        common=common,
        summary="remove leftovers of interrupted publishes",
        description="Remove what interrupted publishes of NAME left behind: stale locks, archives without a\n"
        "manifest, incomplete multipart uploads, temp files. Publishes in flight are left alone.",
        example="  csvpublish cleanup s3://my-bucket/exports --name books",
    )
    _add_destination_and_name(p)


def _add_url(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _subcommand(
        sub,
        "url",
        common=common,
        summary="print a signed URL that downloads the latest (or a version) without credentials",
        description="Print a URL that downloads the latest of NAME (or an archived VERSION) for SECONDS, for someone\n"
        "without credentials: a presigned GET on S3, a signed URL on GCS (service-account key), a SAS on Azure.\n"
        "Anyone holding it can download the file until it expires: it is printed on stdout and nowhere else.",
        example="  csvpublish url s3://my-bucket/exports --name books\n"
        "  csvpublish url s3://my-bucket/exports --name books --version 20261126_053708 --expires 600",
    )
    _add_destination_and_name(p)
    p.add_argument("--version", dest="version", metavar="VERSION", help="sign this archived version, not the latest")
    p.add_argument(
        "--expires",
        metavar="SECONDS",
        type=_positive_int,
        default=3600,
        help="how long the URL works (default 3600; at most 604800, 7 days, on S3 and GCS)",
    )


def _add_destination_and_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("destination", metavar="DESTINATION", help="the folder or URL published to")
    p.add_argument("--name", required=True, help="the snapshot's name")
