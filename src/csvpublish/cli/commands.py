"""The ``csvpublish`` subcommands: each calls one :class:`~csvpublish.Publisher` method and prints what it did."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, BinaryIO

from csvpublish.errors import CsvPublishError, IntegrityError
from csvpublish.pipeline import Progress
from csvpublish.publisher import Publisher

from .output import (
    Output,
    locations,
    manifest_lines,
    one_line,
    records_text,
    size_text,
    verify_failure,
    version_table,
)
from .parser import PROG

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

logger = logging.getLogger("csvpublish.cli")


def make_publisher(args: argparse.Namespace, destination: str, options: dict[str, Any]) -> Publisher:
    if args.command == "publish":
        return Publisher(
            destination,
            name=args.name if args.name is not None else Path(args.file).stem,
            compression=args.compress,
            storage_options=options or None,
            keep=args.keep,
            skip_unchanged=args.skip_unchanged,
            min_records=args.min_records,
            on_schema_change="allow" if args.allow_schema_change else "refuse",
            delimiter=args.delimiter,
            header=args.header,
            key=args.key,
            unique_key=args.unique_key,
        )
    return Publisher(destination, name=args.name, storage_options=options or None)


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
        output.text(f"published {publisher.name}: {records_text(result.record_count)}, {size_text(result.size)}")
    output.text(*locations(result))
    if not result.skipped and not result.latest_updated:
        output.text("note: a publish that started later is already the latest; this one is archived only")
    if result.changes is not None:
        c = result.changes
        output.text(
            f"  changes:  {c.added:,} added, {c.removed:,} removed, {c.changed:,} changed, {c.unchanged:,} unchanged, "
            f"{c.duplicate_keys:,} duplicate keys (since {c.previous_version or 'nothing'})"
        )
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
    output.text(*version_table(versions))
    return EXIT_OK


async def cmd_verify(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    report = await publisher.verify(args.version)
    output.data(report.to_dict())
    if not report.ok:
        # the verdict is the error line: one line on stderr, even with --quiet
        print(f"{PROG}: error: {one_line(verify_failure(report))}", file=output.err)
        return EXIT_FAILED
    output.text(
        f"ok: {report.uri} matches its manifest",
        f"  version:  {report.version}",
        f"  records:  {records_text(report.record_count, bare=True)}",
        f"  sha256:   {report.sha256}",
        *(f"  note:     {note}" for note in report.notes),
    )
    return EXIT_OK


async def cmd_get(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    if args.output == "-":
        return await _get_to_stdout(publisher, args, output)
    path = args.output or await _file_name(publisher, args)
    result = await publisher.download(
        path, version=args.version, decompress=args.decompress, datapackage=args.datapackage
    )
    output.data(result.to_dict())
    output.text(
        f"downloaded {publisher.name} version {result.version} to {result.path}: "
        f"{records_text(result.record_count)}, {size_text(result.size)}",
        f"  from:     {result.uri}",
        f"  sha256:   {result.sha256} (matches its manifest)",
        *([f"  package:  {result.descriptor}"] if result.descriptor else []),
        *(f"  note:     {note}" for note in result.notes),
    )
    return EXIT_OK


async def cmd_diff(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    summary = await publisher.diff(args.old, args.new, key=args.key)
    output.data(summary.to_dict())
    kinds: list[tuple[str, int, tuple[str, ...]]] = [
        ("added", summary.added, summary.added_examples),
        ("removed", summary.removed, summary.removed_examples),
        ("changed", summary.changed, summary.changed_examples),
        ("unchanged", summary.unchanged, ()),
        ("duplicate", summary.duplicate_keys, summary.duplicate_examples),
    ]
    output.text(
        f"{publisher.name} {summary.previous_version} -> {summary.version}, by {', '.join(summary.key)}:",
        *(f"  {kind + ':':11}{count:>12,}" + (f"  e.g. {', '.join(ex)}" if ex else "") for kind, count, ex in kinds),
    )
    return EXIT_OK


async def _file_name(publisher: Publisher, args: argparse.Namespace) -> str:
    """The object's own name (``books_latest.csv.gz``, ``books_<version>.csv``), without ``.gz`` when decompressed."""
    manifest = await publisher.read_manifest(args.version)
    base = manifest.archive.rsplit("/", 1)[-1]
    suffix = base[len(f"{manifest.name}_{manifest.version}") :] or ".csv"
    if args.decompress and suffix.endswith(".gz"):
        suffix = suffix[: -len(".gz")]
    return f"{publisher.name}_{'latest' if args.version is None else manifest.version}{suffix}"


class _Counted:
    """A binary stream that counts what went through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.written = stream, 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return self.stream.write(data)


async def _get_to_stdout(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    """``get -o -``: the bytes go out as they stream, so a failed check can only be reported after them."""
    if output.json:
        print(f"{PROG} get: error: --json and '-o -' both write to stdout; choose one", file=output.err)
        return EXIT_USAGE
    text = output.unmasked or output.out  # the data itself is never masked: it is the object's bytes
    text.flush()
    sink = _Counted(text.buffer)
    try:
        result = await publisher.download(sink, version=args.version, decompress=args.decompress)
    except (CsvPublishError, OSError) as exc:
        sink.stream.flush()
        if not sink.written and not isinstance(exc, IntegrityError):
            raise
        print(f"{PROG}: error: {one_line(str(exc))}; the {sink.written} bytes written to stdout are not "
              "the published data: discard them", file=output.err)  # fmt: skip
        return EXIT_FAILED
    sink.stream.flush()
    if not output.quiet:
        for note in result.notes:
            print(f"{PROG}: note: {note}", file=output.err)
    return EXIT_OK


async def cmd_show(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    manifest = await publisher.read_manifest(args.version)
    output.data(json.loads(manifest.to_json()))
    output.text(*manifest_lines(manifest))
    return EXIT_OK


async def cmd_restore(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    result = await publisher.restore(args.version)
    output.data(result.to_dict())
    output.text(
        f"restored {publisher.name} version {result.version} as the latest: "
        f"{records_text(result.record_count)}, {size_text(result.size)}",
        *locations(result),
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


async def cmd_url(publisher: Publisher, args: argparse.Namespace, output: Output) -> int:
    url = await publisher.share_url(args.version, expires=args.expires)
    if output.json:
        output.url(json.dumps({"name": publisher.name, "version": args.version, "expires": args.expires, "url": url}))
    else:
        output.url(url)  # also with --quiet: the URL is what the command is for
    return EXIT_OK


COMMANDS: dict[str, Callable[[Publisher, argparse.Namespace, Output], Coroutine[Any, Any, int]]] = {
    "publish": cmd_publish,
    "versions": cmd_versions,
    "verify": cmd_verify,
    "get": cmd_get,
    "show": cmd_show,
    "diff": cmd_diff,
    "restore": cmd_restore,
    "cleanup": cmd_cleanup,
    "url": cmd_url,
}
