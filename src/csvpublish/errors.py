"""The csvpublish exception tree.

::

    CsvPublishError
     ├── InputError (ValueError)              bad source, rows, name or options
     │    └── MissingInputError (FileNotFoundError)   the CSV to publish is not there
     ├── MissingBackendError (ImportError)    the fsspec backend package is not installed
     ├── StorageError (OSError)               the storage refused or failed an operation
     │    ├── StorageNotFoundError (FileNotFoundError)   bucket/container/object missing
     │    ├── AccessDeniedError (PermissionError)        credentials lack a permission
     │    └── TransientStorageError                      retryable error, retries exhausted
     ├── SnapshotRejectedError                a guard refused the snapshot (empty, min_records)
     │    └── SchemaChangedError              its columns differ from the latest's
     ├── VersionNotFoundError (LookupError)   no archived version has that identifier
     ├── ConflictError                        another publisher holds the destination's lock
     └── IntegrityError                       stored bytes do not match their manifest

Each subclass also derives from the builtin a caller would already catch, so
``except FileNotFoundError`` keeps working. Errors raised by fsspec backends
(botocore, gcsfs, OSError) are translated in one place,
:func:`csvpublish.storage.translate.translate`, with each backend's table of codes.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "ConflictError",
    "CsvPublishError",
    "InputError",
    "IntegrityError",
    "MissingBackendError",
    "MissingInputError",
    "SchemaChangedError",
    "SnapshotRejectedError",
    "StorageError",
    "StorageNotFoundError",
    "TransientStorageError",
    "VersionNotFoundError",
]


class CsvPublishError(Exception):
    """Root of every error csvpublish raises on purpose."""


class InputError(CsvPublishError, ValueError):
    """Raised when the source, a row, the name or an option is unusable."""


class MissingInputError(InputError, FileNotFoundError):
    """Raised when the CSV file to publish does not exist."""


class MissingBackendError(CsvPublishError, ImportError):
    """Raised when a URL's protocol needs a package that is not installed."""


class StorageError(CsvPublishError, OSError):
    """Raised when the storage backend fails an operation."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """Raised when the bucket, container or object does not exist."""


class AccessDeniedError(StorageError, PermissionError):
    """Raised when the credentials do not allow an operation."""


class TransientStorageError(StorageError):
    """Raised when a retryable error (throttling, 5xx, dropped connection) outlasts the retries."""


class SnapshotRejectedError(CsvPublishError):
    """Raised when a guard refuses a snapshot: an empty file or fewer than ``min_records`` rows."""


class SchemaChangedError(SnapshotRejectedError):
    """Raised when a snapshot's columns differ from the current latest's (added, removed, renamed or reordered).

    Nothing is written; ``on_schema_change="allow"`` (CLI: ``--allow-schema-change``) publishes it.
    """


class VersionNotFoundError(CsvPublishError, LookupError):
    """Raised when no archived version has the identifier asked for."""


class ConflictError(CsvPublishError):
    """Raised when another publisher kept the destination's lock for too long."""


class IntegrityError(CsvPublishError):
    """Raised by a strict ``verify`` when stored bytes do not match their manifest."""
