"""The ``export_csv`` task: export the tracker to the staging CSV, then publish it on block storage."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import csvpublish
from book_pipeline.sync.result import ExportCsvData, Result, TaskAction, TaskType

if TYPE_CHECKING:
    from book_pipeline.sync.pipeline import SyncPipeline

logger = logging.getLogger("book_pipeline.sync.export_csv")


async def main(pipeline: SyncPipeline) -> Result[ExportCsvData]:
    """Export book metadata to ``<staging>/meta/books_latest.csv`` and publish it when storage is not local.

    Returns a result whose ``csv_file_path`` is the published latest's URI, or
    the local CSV when nothing was uploaded.

    Raises:
        csvpublish.CsvPublishError: the export or the upload failed.
    """
    csv_path = pipeline.staging_path / "meta" / "books_latest.csv"

    # The tracker is passed as is: csvpublish calls its get_all_books_csv_data().
    record_count = await csvpublish.export_csv_to_file(pipeline.db_tracker, csv_path)

    csv_file_path = str(csv_path)
    if pipeline.uses_block_storage:
        published = await pipeline.publisher().publish_file(csv_path)
        csv_file_path = published.latest_uri
        logger.info("CSV uploaded to storage: %s (archived as %s)", published.latest_uri, published.archive_uri)
    else:
        logger.info("CSV exported locally: %s", csv_path)

    return Result(
        task_type=TaskType.EXPORT_CSV,
        action=TaskAction.COMPLETED,
        data={"csv_file_path": csv_file_path, "record_count": record_count},
    )
