"""The ``csvpublish`` subcommands: each calls one :class:`~csvpublish.Publisher` method and prints what it did."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from csvpublish.pipeline import Progress
from csvpublish.publisher import Publisher

from .output import Output, locations, one_line, records_text, size_text, verify_failure, version_table
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
    "restore": cmd_restore,
    "cleanup": cmd_cleanup,
    "url": cmd_url,
}
