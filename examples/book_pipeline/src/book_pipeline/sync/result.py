"""What a sync task returns: ``Result(task_type, action, data)``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypedDict, TypeVar

T = TypeVar("T")


class TaskType(str, Enum):
    EXPORT_CSV = "export_csv"


class TaskAction(str, Enum):
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"


class ExportCsvData(TypedDict):
    """The data of an ``export_csv`` result."""

    csv_file_path: str
    """The latest object's URI after an upload (``s3://bucket/meta/books_latest.csv.gz``), else the local CSV path."""
    record_count: int


@dataclass(frozen=True)
class Result(Generic[T]):
    """The outcome of one task."""

    task_type: TaskType
    action: TaskAction
    data: T | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: enums as their values."""
        out: dict[str, Any] = {"task_type": self.task_type.value, "action": self.action.value, "data": self.data}
        if self.reason is not None:
            out["reason"] = self.reason
        return out
