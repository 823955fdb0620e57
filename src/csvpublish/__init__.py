"""csvpublish: turn records into a CSV snapshot and publish it safely to any fsspec storage.

>>> import csvpublish
>>> publisher = csvpublish.Publisher("memory://doc-init", name="books")
>>> publisher.publish_sync([{"Barcode": "1"}]).record_count
1
"""

from __future__ import annotations

from typing import Any

from .changes import ChangeSummary
from .compression import GzipCompressor
from .dialect import Dialect
from .errors import (
    AccessDeniedError,
    ConflictError,
    CsvPublishError,
    InputError,
    IntegrityError,
    MissingBackendError,
    MissingInputError,
    SchemaChangedError,
    SnapshotRejectedError,
    StorageError,
    StorageNotFoundError,
    TransientStorageError,
    VersionNotFoundError,
)
from .export import export_csv_to_file, export_csv_to_file_sync
from .manifest import Manifest
from .pipeline import Progress
from .publisher import Publisher
from .results import CleanupReport, DownloadResult, PublishResult, VerifyReport, VersionInfo
from .retry import RetryPolicy
from .storage import Storage
from .upload import upload_csv_to_storage, upload_csv_to_storage_sync

__all__ = [
    "AccessDeniedError",
    "ChangeSummary",
    "CleanupReport",
    "ConflictError",
    "CsvPublishError",
    "Dialect",
    "DownloadResult",
    "GzipCompressor",
    "InputError",
    "IntegrityError",
    "Manifest",
    "MissingBackendError",
    "MissingInputError",
    "Progress",
    "PublishResult",
    "Publisher",
    "RetryPolicy",
    "SchemaChangedError",
    "SnapshotRejectedError",
    "Storage",
    "StorageError",
    "StorageNotFoundError",
    "TransientStorageError",
    "VerifyReport",
    "VersionInfo",
    "VersionNotFoundError",
    "__version__",
    "export_csv_to_file",
    "export_csv_to_file_sync",
    "upload_csv_to_storage",
    "upload_csv_to_storage_sync",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read from the package metadata when first asked for
        from ._version import version

        return version()
    raise AttributeError(f"module 'csvpublish' has no attribute {name!r}")
