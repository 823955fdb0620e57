"""The sync command: a small pipeline object and its tasks (only ``export_csv`` here)."""

from book_pipeline.sync.pipeline import SyncPipeline
from book_pipeline.sync.result import ExportCsvData, Result, TaskAction, TaskType

__all__ = ["ExportCsvData", "Result", "SyncPipeline", "TaskAction", "TaskType"]
