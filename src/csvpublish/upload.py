"""``upload_csv_to_storage``: the seed plan's function, a thin wrapper over :class:`Publisher`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._sync import run_sync
from .publisher import Publisher
from .storage import Storage


def default_name(csv_path: str | os.PathLike[str]) -> str:
    """The published name for a CSV file: its stem, without a trailing ``_latest``.

    >>> default_name("staging/meta/books_latest.csv")
    'books'
    >>> default_name("books.csv")
    'books'
    """
    stem = Path(csv_path).name
    for suffix in (".gz", ".csv"):
        stem = stem.removesuffix(suffix)
    return stem.removesuffix("_latest") or stem


async def upload_csv_to_storage(
    csv_path: str | os.PathLike[str],
    destination: str | os.PathLike[str] | Storage,
    compression_enabled: bool = True,
    *,
    name: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Publish an existing CSV to ``destination`` and return the display URI of the latest object.

    The layout is ``<destination>/<name>_latest.csv.gz`` plus
    ``<destination>/timestamped/<name>_<UTC YYYYmmdd_HHMMSS>.csv.gz`` (``.csv``
    without compression). ``name`` defaults to :func:`default_name` of the file.

    Example:
        >>> # await upload_csv_to_storage("out/books.csv", "s3://bucket/meta")
        >>> # 's3://bucket/meta/books_latest.csv.gz'
    """
    publisher = Publisher(
        destination,
        name=name or default_name(csv_path),
        compression=compression_enabled,
        storage_options=storage_options,
    )
    result = await publisher.publish_file(csv_path)
    return result.latest_uri


def upload_csv_to_storage_sync(
    csv_path: str | os.PathLike[str],
    destination: str | os.PathLike[str] | Storage,
    compression_enabled: bool = True,
    **kwargs: Any,
) -> str:
    """Blocking :func:`upload_csv_to_storage`."""
    return run_sync(upload_csv_to_storage(csv_path, destination, compression_enabled, **kwargs))
