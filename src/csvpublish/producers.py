"""The source stage of a pass: what turns the caller's table (or file) into CSV chunks for the compressor.

* records (:class:`~csvpublish.sources.RowSource`) are pulled in small batches
  and formatted on the event loop's thread, while they are in its cache (a
  sqlite3 cursor of that thread works);
* Arrow record batches (:class:`~csvpublish.sources.ArrowSource`) are formatted
  in a worker thread by pyarrow's kernels (:mod:`csvpublish.columnar`), which
  release the GIL;
* an existing CSV file is read once in a worker thread, its header found and
  its records counted on the way.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fsspec.callbacks import Callback

from .changes import KeyCollector, key_indexes
from .dialect import BOM, Dialect
from .errors import InputError, MissingInputError
from .handoff import CHUNK_BYTES, DONE, Aborted, Flow, Found
from .rows import CsvFormatter, RecordCounter, plan_rows
from .sources import BATCH_ROWS, ArrowSource, RowSource, batches, resolve

Submit = Callable[..., None]
"""Runs a blocking stage in the pass's thread pool."""


@dataclass(frozen=True)
class Plan:
    """How the source becomes CSV: the header, the dialect, formula escaping, and who hears of each batch."""

    headers: Sequence[str] | None
    escape_formulas: bool
    rows_callback: Callback
    dialect: Dialect
    key: tuple[str, ...] | None = None
    """The key columns of a keyed publish: each row's key and hashes are collected as it is formatted."""

    def collector(self, columns: Sequence[str]) -> KeyCollector | None:
        """A key collector for these columns (None unkeyed); :class:`InputError` when a key column is missing."""
        if self.key is None:
            return None
        return KeyCollector(key_indexes(columns, self.key), self.dialect.delimiter)

    columns_known: Callable[[Sequence[str]], None] | None = None
    """Told the columns as soon as they are known, before any byte is passed on; it may raise to stop the pass."""

    def found_columns(self, found: Found, columns: list[str]) -> None:
        found.columns = columns
        if self.columns_known is not None:
            self.columns_known(columns)
        found.keys = self.collector(columns)


async def produce(
    source: Any,
    csv_file: Path | None,
    plan: Plan,
    *,
    flow: Flow,
    found: Found,
    submit: Submit,
    failed: Callable[[], bool],
) -> None:
    """Start the source stage of a pass: a file reader, an Arrow formatter, or the record formatter here."""
    found.dialect = plan.dialect
    if csv_file is not None:
        submit(read_file, csv_file, plan, flow, found)
        return
    resolved = await resolve(source)
    if isinstance(resolved, ArrowSource):
        submit(format_arrow, resolved, plan, flow, found)
    else:
        await format_records(resolved, plan, flow=flow, found=found, failed=failed)


def _head(columns: Sequence[str], formatter: CsvFormatter) -> list[bytes]:
    """What comes before the first row: the byte-order mark and the header line, as the dialect asks."""
    dialect = formatter.dialect
    return ([BOM] if dialect.bom else []) + ([formatter.format([list(columns)])] if dialect.header else [])


async def format_records(
    source: RowSource, plan: Plan, *, flow: Flow, found: Found, failed: Callable[[], bool]
) -> None:
    """Pull records in small batches and format them here, on the event loop's thread.

    The bytes go to the compressor thread in chunks of about :data:`CHUNK_BYTES`;
    the loop runs its other tasks between chunks.
    """
    headers = list(plan.headers) if plan.headers is not None else source.columns
    rows_callback, q_bytes = plan.rows_callback, flow.csv
    if isinstance(source.rows, list):
        rows_callback.set_size(len(source.rows))
    formatter = CsvFormatter(others_waiting=lambda: q_bytes.unfinished_tasks > 0, dialect=plan.dialect)
    convert: Callable[[list[Any], int], list[Sequence[Any]]] | None = None
    pending: list[bytes] = []
    pending_size = count = 0
    async for batch in batches(source.rows, BATCH_ROWS):
        if convert is None:
            columns, convert = plan_rows(batch[0], headers, escape_formulas=plan.escape_formulas)
            plan.found_columns(found, columns)
            pending += _head(found.columns, formatter)
        data = formatter.format(convert(batch, count + 1), found.keys)
        pending.append(data)
        pending_size += len(data)
        count += len(batch)
        rows_callback.relative_update(len(batch))
        if pending_size >= CHUNK_BYTES:
            await flow.put_async(q_bytes, b"".join(pending))
            pending, pending_size = [], 0
            await asyncio.sleep(0)  # let the event loop run its other tasks
            if failed():  # a stage died: stop pulling the source
                raise Aborted
    if convert is None:
        if headers is None:
            raise InputError(
                "the source produced no rows and no headers were given: pass headers=[...] to write a header-only CSV"
            )
        plan.found_columns(found, [str(h) for h in headers])
        pending += _head(found.columns, formatter)
    if plan.headers is None and source.columns is not None:
        found.types = source.types
    await flow.put_async(q_bytes, b"".join(pending))
    await flow.put_async(q_bytes, DONE)
    found.records = count


def format_arrow(source: ArrowSource, plan: Plan, flow: Flow, found: Found) -> None:
    """Format Arrow record batches column by column, in slices of about 8 MiB, and pass each slice on."""
    from .columnar import ArrowFormatter

    reader = source.reader
    columns = source.columns
    if plan.headers is not None:
        if len(plan.headers) != len(columns):
            raise InputError(
                f"headers= names {len(plan.headers)} columns but the table has {len(columns)} ({', '.join(columns)})"
            )
        columns = [str(h) for h in plan.headers]
    found.types = source.types
    plan.found_columns(found, columns)
    formatter = ArrowFormatter(reader.schema, plan.dialect, escape_formulas=plan.escape_formulas)
    for head in _head(columns, CsvFormatter(dialect=plan.dialect)):
        flow.put(flow.csv, head)
    count = 0
    for batch in reader:
        for part in formatter.slices(batch):
            flow.put(
                flow.csv, formatter.format(part, found.keys)
            )  # whole: the next slice is formatted while this one compresses
            count += part.num_rows
            plan.rows_callback.relative_update(part.num_rows)
    found.records = count
    flow.put(flow.csv, DONE)


def read_file(path: Path, plan: Plan, flow: Flow, found: Found) -> None:
    """Read an existing CSV once: pass its bytes on, find its header and line ends, count its records."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise MissingInputError(f"{path}: no such CSV file; export it first or fix the path") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a CSV file") from None
    with handle:
        plan.rows_callback.set_size(path.stat().st_size)
        counter = RecordCounter(header=plan.dialect.header)
        while chunk := handle.read(CHUNK_BYTES):
            if not counter.last:
                found.dialect = _dialect_of(chunk, plan.dialect)
                plan.found_columns(found, _header_of(chunk, found.dialect) if plan.dialect.header else [])
            counter.feed(chunk)
            flow.put(flow.csv, chunk)
            plan.rows_callback.relative_update(len(chunk))
        found.records = counter.records
    if plan.key is not None:
        found.keys = _file_keys(path, plan, found.columns)
    flow.put(flow.csv, DONE)


def _file_keys(path: Path, plan: Plan, columns: list[str]) -> KeyCollector | None:
    """The key records of an existing CSV: a second read, each row's fields written again as a publish writes them."""
    keys = plan.collector(columns)
    formatter = CsvFormatter(dialect=plan.dialect)
    width = len(columns)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=plan.dialect.delimiter)
            next(reader, None)  # the header row (a keyed file has one: the key names its columns)
            batch: list[list[str]] = []
            for row in reader:
                batch.append(row if len(row) >= width else row + [""] * (width - len(row)))
                if len(batch) == BATCH_ROWS * 10:
                    formatter.format(batch, keys)
                    batch = []
            formatter.format(batch, keys)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path} cannot be read as UTF-8 CSV for its keys ({exc})") from None
    return keys


def _dialect_of(first: bytes, told: Dialect) -> Dialect:
    """The file's own byte-order mark and line ends (from its first line); the delimiter and header as told."""
    end = first.find(b"\n")
    crlf = end > 0 and first[end - 1 : end] == b"\r"
    terminator = told.lineterminator if end < 0 else ("\r\n" if crlf else "\n")
    return replace(told, bom=first.startswith(BOM), lineterminator=terminator)


def _header_of(chunk: bytes, dialect: Dialect) -> list[str]:
    text = chunk.removeprefix(BOM).decode("utf-8", errors="replace")
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter))
    except (StopIteration, csv.Error):
        return []
