"""``export_csv_to_file``: records to a local CSV, streamed and atomic."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from . import pipeline
from ._sync import run_sync
from .dialect import Dialect
from .pipeline import Progress


async def export_csv_to_file(
    source: Any,
    output_path: str | os.PathLike[str],
    *,
    headers: Sequence[str] | None = None,
    escape_formulas: bool = False,
    progress: Progress | None = None,
    delimiter: str = ",",
    lineterminator: str = "\r\n",
    header: bool = True,
    bom: bool = False,
) -> int:
    """Write ``source`` as a UTF-8 CSV (header row first) and return the number of data rows.

    ``source`` is any table :mod:`csvpublish.sources` reads: an iterable or async
    iterable of records with ``to_csv_row()``, mappings, dataclasses or sequences
    (give ``headers=`` for plain sequences), an awaitable of one, an object with
    ``get_all_books_csv_data()``, a pandas or polars DataFrame, an Arrow table or
    record batch reader, a DuckDB relation, a DB-API cursor or an SQLAlchemy
    result. It is streamed in bounded batches. The file at ``output_path`` is
    replaced atomically: it is the complete new CSV or what was there before.
    Parent folders are created. ``delimiter``, ``lineterminator``, ``header`` and
    ``bom`` choose the dialect (:class:`~csvpublish.Dialect`).

    Raises:
        InputError: the source or a row is unusable (the message names the row).

    Example:
        >>> import asyncio, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "books.csv")
        >>> asyncio.run(export_csv_to_file([{"Barcode": "1", "Title": "Dune"}], path))
        1
    """
    stats = await pipeline.run(
        source=source,
        headers=headers,
        escape_formulas=escape_formulas,
        local_path=os.fspath(output_path),
        progress=progress,
        dialect=Dialect(delimiter=delimiter, lineterminator=lineterminator, header=header, bom=bom),
    )
    assert stats.record_count is not None
    return stats.record_count


def export_csv_to_file_sync(source: Any, output_path: str | os.PathLike[str], **kwargs: Any) -> int:
    """Blocking :func:`export_csv_to_file`."""
    return run_sync(export_csv_to_file(source, output_path, **kwargs))
