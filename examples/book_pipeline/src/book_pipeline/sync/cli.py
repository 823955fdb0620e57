"""``book-sync``: run the ``export_csv`` task on the tracker and print its result as one JSON object.

Exit codes: 0 done, 1 the export or the upload failed (one line on stderr),
2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from pathlib import Path

import csvpublish
from book_pipeline._cli import add_logging_arguments, configure_logging, describe
from book_pipeline.storage import SettingsError, StorageSettings, add_storage_arguments
from book_pipeline.sync.pipeline import SyncPipeline
from book_pipeline.sync.result import ExportCsvData, Result
from book_pipeline.sync.tasks import export_csv
from book_pipeline.tracker import SQLiteBookTracker

PROG = "book-sync"
logger = logging.getLogger("book_pipeline.sync")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export every book of the tracker to <staging>/meta/books_latest.csv and publish it with "
        "csvpublish when --storage is not local. Prints the task's result as JSON on stdout.",
    )
    parser.add_argument("--db", required=True, type=Path, help="the tracker's SQLite file (made by book-collect)")
    parser.add_argument("--staging", required=True, type=Path, metavar="DIR", help="the local staging folder")
    add_storage_arguments(parser)
    add_logging_arguments(parser)
    return parser


async def sync(db: Path, staging: Path, settings: StorageSettings, *, compress: bool = True) -> Result[ExportCsvData]:
    """Build the pipeline and run its ``export_csv`` task."""
    pipeline = SyncPipeline(
        db_tracker=SQLiteBookTracker(db),
        storage=settings,
        compression_enabled=compress,
        staging_path=staging.absolute(),  # the result names the CSV by an absolute path
    )
    return await export_csv.main(pipeline)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``book-sync``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(PROG, verbose=args.verbose, log_file=args.log_file)
    try:
        settings = StorageSettings.from_args(args)
    except SettingsError as exc:
        parser.error(str(exc))
    if not args.db.is_file():
        logger.error("no tracker database at %s; run book-collect first", args.db)
        return 1
    try:
        result = asyncio.run(sync(args.db, args.staging, settings, compress=args.compress))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (csvpublish.CsvPublishError, OSError, sqlite3.Error) as exc:
        logger.error("export_csv failed: %s", describe(exc), exc_info=exc)
        return 1
    print(json.dumps(result.to_dict(), ensure_ascii=False))
    return 0
