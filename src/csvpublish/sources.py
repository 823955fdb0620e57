"""Sources: whatever table the caller holds, found as rows or as a stream of Arrow record batches.

Tried in this order:

1. an object with ``get_all_books_csv_data()`` (the seed plan's tracker; sync or
   async, also a test double such as ``AsyncMock``): always read through it;
2. an awaitable: awaited, then read as what it returns;
3. a columnar table, streamed as Arrow record batches (with pyarrow,
   ``pip install 'csvpublish[arrow]'``): a pandas ``DataFrame`` (its index is not
   written: ``reset_index()`` first to keep it), a polars ``DataFrame`` or
   ``LazyFrame``, a pyarrow ``Table``, ``RecordBatch``, ``RecordBatchReader``,
   ``pyarrow.dataset`` dataset or scanner, a DuckDB relation, and anything with
   ``__arrow_c_stream__`` or ``__arrow_c_array__``. Without pyarrow, pandas and
   polars frames are read row by row;
4. rows that carry their column names: a DB-API 2.0 cursor after ``execute()``
   (``description``, read with ``fetchmany``), an SQLAlchemy ``Result`` (``keys()``);
5. a sync or async iterable of records (:mod:`csvpublish.rows`).

>>> import asyncio, sqlite3
>>> cursor = sqlite3.connect(":memory:").execute("select 1 as id, 'Dune' as title")
>>> found = asyncio.run(resolve(cursor))
>>> found.columns, list(found.rows)
(['id', 'title'], [(1, 'Dune')])
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError

BATCH_ROWS = 100
"""Rows pulled and formatted per batch: about 55 KB of CSV for 54-column book
records. Small batches are formatted while the records they hold are still in
the CPU cache, and a batch takes under a millisecond, so the formatter can hand
the GIL to the compressor between batches often enough."""

FETCH_ROWS = 1000
"""Rows asked of a cursor or a result per ``fetchmany`` (and of a frame read row by row)."""

SUPPORTED = (
    "an iterable or async iterable of records (objects with to_csv_row(), mappings, dataclasses, or sequences "
    "with headers=), an object with get_all_books_csv_data(), a pandas or polars DataFrame, a polars LazyFrame, "
    "a pyarrow Table, RecordBatch, RecordBatchReader or dataset, a DuckDB relation, an object with "
    "__arrow_c_stream__, a DB-API cursor after execute(), or an SQLAlchemy Result"
)


@dataclass(frozen=True)
class RowSource:
    """A source read row by row."""

    rows: Iterable[Any] | AsyncIterable[Any]
    columns: list[str] | None = None
    """Column names the source carries (a cursor's description, a result's keys, a frame's columns)."""
    types: list[str | None] | None = None


@dataclass(frozen=True)
class ArrowSource:
    """A source read as Arrow record batches."""

    reader: Any
    """A ``pyarrow.RecordBatchReader``."""

    @property
    def columns(self) -> list[str]:
        return [str(name) for name in self.reader.schema.names]

    @property
    def types(self) -> list[str | None]:
        return [str(field.type) for field in self.reader.schema]


async def resolve(source: Any) -> RowSource | ArrowSource:
    """Find the rows, or the Arrow stream, in what the caller passed.

    Raises:
        InputError: the source is of a kind csvpublish cannot read (the message lists those it can).
    """
    tracker = getattr(source, "get_all_books_csv_data", None)
    if callable(tracker):
        source = tracker()
    if inspect.isawaitable(source):
        source = await source
    found = _columnar(source)
    if found is not None:
        return found
    named = _named_rows(source)
    if named is not None:
        return named
    if isinstance(source, (str, bytes, bytearray, Mapping)) or not isinstance(source, (Iterable, AsyncIterable)):
        raise InputError(f"cannot read rows from a {type(source).__name__}: pass {SUPPORTED}")
    return RowSource(source)


def _loaded(module: str) -> Any:
    """The module if the program imported it (a source of its kind cannot exist otherwise)."""
    return sys.modules.get(module)


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        return None
    return pyarrow


def _columnar(source: Any) -> RowSource | ArrowSource | None:
    """A columnar table as an Arrow stream (or, without pyarrow, as rows where it can be read so)."""
    pandas, polars = _loaded("pandas"), _loaded("polars")
    if polars is not None and isinstance(source, polars.LazyFrame):
        source = source.collect()
    if pandas is not None and isinstance(source, pandas.DataFrame):
        return _pandas(source)
    pa = _pyarrow() if _looks_columnar(source) else None
    if pa is None:
        if polars is not None and isinstance(source, polars.DataFrame):
            return RowSource(source.iter_rows(), list(source.columns), [str(t) for t in source.dtypes])
        if _looks_columnar(source) and _named_rows(source) is None:
            raise InputError(
                f"a {type(source).__name__} is read as Arrow record batches, which needs pyarrow: "
                "pip install 'csvpublish[arrow]'"
            )
        return None
    if polars is not None and isinstance(source, polars.DataFrame):
        return ArrowSource(_polars(pa, source))
    return ArrowSource(_reader(pa, source))


def _polars(pa: Any, frame: Any) -> Any:
    """A polars frame as Arrow, converted slice by slice (about 8 MiB each) as the formatter asks.

    Its ``__arrow_c_stream__`` copies the whole frame up front: for the 1M-row book
    table, 650 MB more peak memory (measured: 2.5 GB against 1.9 GB), at the same speed.
    """
    rows = max(1, min(65_536, (8 << 20) * frame.height // max(1, frame.estimated_size())))

    def batches() -> Iterator[Any]:
        for piece in frame.iter_slices(n_rows=rows):
            yield from piece.to_arrow().to_batches()

    return pa.RecordBatchReader.from_batches(frame.head(0).to_arrow().schema, batches())


def _looks_columnar(source: Any) -> bool:
    if hasattr(source, "__arrow_c_stream__") or hasattr(source, "__arrow_c_array__"):
        return True
    dataset = _loaded("pyarrow.dataset")
    return dataset is not None and isinstance(source, (dataset.Dataset, dataset.Scanner))


def _reader(pa: Any, source: Any) -> Any:
    """A ``RecordBatchReader`` over any columnar source pyarrow can read."""
    dataset = _loaded("pyarrow.dataset")
    if isinstance(source, pa.RecordBatchReader):
        return source
    if dataset is not None and isinstance(source, dataset.Dataset):
        return source.scanner().to_reader()
    if dataset is not None and isinstance(source, dataset.Scanner):
        return source.to_reader()
    if hasattr(source, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(source)
    batch = pa.record_batch(source)  # __arrow_c_array__
    return pa.RecordBatchReader.from_batches(batch.schema, [batch])


def _pandas(frame: Any) -> RowSource | ArrowSource:
    """A pandas DataFrame without its index: as Arrow when pyarrow can convert it, else row by row."""
    pa = _pyarrow()
    if pa is not None:
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            pass  # mixed-type object columns: read the values as Python objects instead
        else:
            return ArrowSource(table.to_reader())
    return RowSource(_pandas_rows(frame), [str(c) for c in frame.columns], [str(t) for t in frame.dtypes])


def _pandas_rows(frame: Any) -> Iterator[tuple[Any, ...]]:
    """The rows of a DataFrame, slice by slice, its missing values (NaN, NaT, NA) as None."""
    for start in range(0, len(frame), FETCH_ROWS):
        part = frame.iloc[start : start + FETCH_ROWS]
        yield from part.astype(object).where(part.notna(), None).itertuples(index=False, name=None)


def _named_rows(source: Any) -> RowSource | None:
    """A DB-API cursor or an SQLAlchemy result: rows that carry their column names."""
    fetchmany = getattr(source, "fetchmany", None)
    if not callable(fetchmany) or isinstance(source, Mapping):
        return None
    if hasattr(source, "description"):
        description = source.description
        if description is None:
            raise InputError(f"the {type(source).__name__} has no result: call execute() with a query first")
        columns = [str(d[0]) for d in description]
        if not columns:
            return None
        types = [None if d[1] is None else str(d[1]) for d in description]
        return RowSource(_fetched(fetchmany), columns, types if any(types) else None)
    keys = getattr(source, "keys", None)
    if callable(keys):
        return RowSource(_fetched(fetchmany), [str(k) for k in keys()])
    return None


def _fetched(fetchmany: Any) -> Iterator[Any]:
    while True:
        rows = list(fetchmany(FETCH_ROWS))
        if not rows:
            return
        yield from rows


async def batches(rows: Iterable[Any] | AsyncIterable[Any], size: int = BATCH_ROWS) -> AsyncIterator[list[Any]]:
    """Yield lists of at most ``size`` records from a sync or async iterable."""
    if isinstance(rows, AsyncIterable):
        batch: list[Any] = []
        async for item in rows:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    if isinstance(rows, list):
        for start in range(0, len(rows), size):
            yield rows[start : start + size]
        return
    iterator = iter(rows)
    while True:
        batch = []
        for item in iterator:
            batch.append(item)
            if len(batch) >= size:
                break
        if not batch:
            return
        yield batch
        if len(batch) < size:
            return
