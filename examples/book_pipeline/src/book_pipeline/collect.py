"""``book-collect``: load a TSV of books into the tracker, export the CSV, publish it when storage is not local.

The upload happens in the ``finally`` block, after the collection's own work,
and its failure never fails the collection: it is logged with its cause, shown
as one warning line on stderr and recorded in the JSON summary printed on
stdout, and the command still exits 0.

Exit codes: 0 collected (even if the upload failed), 1 the load or export
failed, 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import csvpublish
from book_pipeline._cli import add_logging_arguments, configure_logging, describe
from book_pipeline.storage import PUBLISHED_NAME, SettingsError, StorageSettings, add_storage_arguments, option_keys
from book_pipeline.tracker import SQLiteBookTracker
from book_pipeline.tsv import TsvError, load_books_tsv

PROG = "book-collect"
logger = logging.getLogger("book_pipeline.collect")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Load books from a TSV export into the tracker, write them as CSV, and publish "
        "the CSV with csvpublish when --storage is not local. Prints a JSON summary on stdout.",
    )
    parser.add_argument("--db", required=True, type=Path, help="the tracker's SQLite file (created if missing)")
    parser.add_argument(
        "--input", required=True, type=Path, metavar="BOOKS.tsv", help="TSV with a header row; Barcode required"
    )
    parser.add_argument("--output", required=True, type=Path, metavar="CSV_PATH", help="where to write the CSV")
    add_storage_arguments(parser)
    add_logging_arguments(parser)
    return parser


async def collect(
    db: Path, input_tsv: Path, output: Path, settings: StorageSettings, *, compress: bool = True
) -> dict[str, Any]:
    """Run the collection and return its summary (the JSON the command prints).

    Raises:
        TsvError: the TSV cannot be loaded.
        csvpublish.CsvPublishError, OSError: the export failed.
        The upload's failure is never raised: it is in ``summary["upload"]``.
    """
    summary: dict[str, Any] = {
        "command": PROG,
        "input": str(input_tsv),
        "books_loaded": None,
        "csv_path": str(output.absolute()),
        "record_count": None,
        "storage": settings.kind,
        "destination": settings.display_destination,
        "upload": None,
    }
    tracker = SQLiteBookTracker(db)
    exported = False
    try:
        await tracker.init_db()
        stats = await load_books_tsv(tracker, input_tsv)
        summary["books_loaded"] = stats.rows
        logger.info("loaded %d books (%d columns) from %s into %s", stats.rows, len(stats.columns), input_tsv, db)
        # Streamed from SQLite a page at a time: memory stays flat for a million books.
        record_count = await csvpublish.export_csv_to_file(tracker.iter_books(), output)
        summary["record_count"] = record_count
        exported = True
        logger.info("CSV exported locally: %s (%d records)", output, record_count)
    finally:
        summary["upload"] = await _upload(output, settings, compress=compress, exported=exported)
    return summary


async def _upload(output: Path, settings: StorageSettings, *, compress: bool, exported: bool) -> dict[str, Any]:
    """Publish the CSV written by this run; report, never raise, a failure."""
    if not settings.uses_block_storage:
        return {"status": "skipped", "reason": "local storage"}
    if not exported:
        # Whatever is at `output` is not this run's CSV: publishing it could replace a good latest with a stale one.
        return {"status": "skipped", "reason": "the export failed"}
    assert settings.destination is not None
    logger.info(
        "uploading %s to %s (storage options given: %s)",
        output,
        settings.display_destination,
        ", ".join(option_keys(settings.options)) or "none",
    )
    try:
        latest = await csvpublish.upload_csv_to_storage(
            output,
            settings.destination,
            compress,
            name=PUBLISHED_NAME,
            storage_options=settings.options,
        )
    except Exception as exc:  # the collection is done and kept: an upload failure must not undo it
        logger.warning(
            "CSV upload to %s failed, the collection is kept and %s is intact: %s",
            settings.display_destination,
            output,
            describe(exc),
            exc_info=exc,
        )
        return {"status": "failed", "error": describe(exc)}
    logger.info("CSV uploaded to storage: %s", latest)
    return {"status": "uploaded", "latest_uri": latest}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``book-collect``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(PROG, verbose=args.verbose, log_file=args.log_file)
    try:
        settings = StorageSettings.from_args(args)
    except SettingsError as exc:
        parser.error(str(exc))
    try:
        summary = asyncio.run(collect(args.db, args.input, args.output, settings, compress=args.compress))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (TsvError, csvpublish.CsvPublishError, OSError, sqlite3.Error) as exc:
        logger.error("collection failed: %s", describe(exc), exc_info=exc)
        return 1
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
