"""Read a TSV export of books (``csv`` module, ``excel-tab`` dialect) into the tracker."""

from __future__ import annotations

import asyncio
import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from book_pipeline.records import ATTRIBUTE_OF, BookRecord
from book_pipeline.tracker import PAGE_SIZE, SQLiteBookTracker


class TsvError(ValueError):
    """Raised when the TSV cannot be loaded; the message names the file and line."""


@dataclass(frozen=True)
class LoadStats:
    """What :func:`load_books_tsv` did."""

    rows: int
    """Data rows read from the TSV."""
    columns: list[str]
    """The TSV's columns, in its order."""


def read_header(path: Path) -> list[str]:
    """The TSV's column names, checked: known, unique, ``Barcode`` among them."""
    with path.open(encoding="utf-8-sig", newline="") as f:  # utf-8-sig: spreadsheets often add a BOM
        header = next(csv.reader(f, dialect="excel-tab"), None)
    if not header:
        raise TsvError(f"{path}: the file is empty; the first line must name the columns")
    header = [name.strip() for name in header]
    unknown = [name for name in header if name not in ATTRIBUTE_OF]
    if unknown:
        raise TsvError(
            f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"the columns are those of BookRecord.csv_headers(), e.g. 'Barcode', 'Title', 'MARC Subjects'"
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise TsvError(f"{path}: column(s) {', '.join(map(repr, duplicates))} appear more than once")
    if "Barcode" not in header:
        raise TsvError(f"{path}: there is no 'Barcode' column; every book needs one")
    return header


def read_books(path: Path) -> Iterator[BookRecord]:
    """Yield one :class:`BookRecord` per data row of the TSV at ``path``.

    A quoted field may hold tabs and newlines. A row shorter than the header
    has empty trailing fields; a longer one is an error.

    Raises:
        TsvError: a bad header, a row with too many fields, an empty barcode
            or a bad boolean (the message gives the line).
    """
    header = read_header(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, dialect="excel-tab", strict=True)
        try:
            next(reader)
            for row in reader:
                if not row:
                    continue  # a blank line
                if len(row) > len(header):
                    raise TsvError(
                        f"{path}, line {reader.line_num}: {len(row)} fields but the header has {len(header)}; "
                        "quote a field that holds a tab"
                    )
                fields = dict(itertools.zip_longest(header, row, fillvalue=""))
                try:
                    yield BookRecord.from_csv_fields(fields)
                except ValueError as exc:
                    raise TsvError(f"{path}, line {reader.line_num}: {exc}") from None
        except csv.Error as exc:
            raise TsvError(f"{path}, line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise TsvError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); save the TSV as UTF-8") from None


async def load_books_tsv(tracker: SQLiteBookTracker, path: str | Path) -> LoadStats:
    """Load the TSV at ``path`` into ``tracker``, parsing and saving in worker threads, a page at a time.

    Only the TSV's columns are written to books already in the tracker.
    """
    path = Path(path)
    header = await asyncio.to_thread(read_header, path)
    fields = [ATTRIBUTE_OF[name] for name in header]
    books = read_books(path)
    rows = 0
    while page := await asyncio.to_thread(lambda: list(itertools.islice(books, PAGE_SIZE))):
        rows += await tracker.save_books(page, fields)
    return LoadStats(rows=rows, columns=header)
