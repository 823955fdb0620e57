"""Rows into CSV bytes: the shape of a row source's records, and the formatter.

Records are records with ``to_csv_row()`` (their class has ``csv_headers()``),
mappings, dataclass instances or sequences; :mod:`csvpublish.sources` finds
them in whatever the caller passed. Values are written as :mod:`csv` writes
them: ``None`` is an empty field, a string is itself, anything else is its
``str()`` (integers in decimal, ``True``/``False``, floats as Python's shortest
round-trip form, dates and times in ISO 8601: ``2026-11-26``,
``2026-11-26 05:37:08+00:00``). The Arrow path writes the same text
(:mod:`csvpublish.columnar`).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .dialect import Dialect
from .errors import InputError

if TYPE_CHECKING:
    from .changes import KeyCollector

BATCH_ROWS = 100
"""Rows pulled and formatted per batch: about 55 KB of CSV for 54-column book
records. Small batches are formatted while the records they hold are still in
the CPU cache, and a batch takes under a millisecond, so the formatter can hand
the GIL to the compressor between batches often enough."""

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@runtime_checkable
class CsvRecord(Protocol):
    """A record that renders itself as a CSV row (its class has ``csv_headers()``)."""

    def to_csv_row(self) -> Sequence[Any]: ...


Converter = Callable[[list[Any], int], list[Sequence[Any]]]


def _dataclass_names(record: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(record)]


def plan_rows(
    first: Any, headers: Sequence[str] | None, *, escape_formulas: bool = False
) -> tuple[list[str], Converter]:
    """Choose the header row and the function that turns record batches into rows.

    ``first`` is the first record; it decides the source's shape.
    """
    if isinstance(first, (str, bytes, bytearray)):
        raise InputError(
            f"row 1 is a {type(first).__name__}, not a row: yield sequences, mappings, "
            "dataclasses or records with to_csv_row()"
        )
    columns: list[str]
    convert: Callable[[Any], Sequence[Any]]
    if hasattr(first, "to_csv_row"):
        if headers is None:
            headers_of = getattr(type(first), "csv_headers", None)
            if headers_of is None:
                raise InputError(
                    f"{type(first).__name__} has to_csv_row() but no csv_headers() classmethod; pass headers="
                )
            headers = list(headers_of())
        columns = [str(h) for h in headers]

        def convert(record: Any) -> Sequence[Any]:
            return record.to_csv_row()  # type: ignore[no-any-return]

        return columns, _checked(columns, convert, escape_formulas)
    if isinstance(first, Mapping) or (dataclasses.is_dataclass(first) and not isinstance(first, type)):
        is_mapping = isinstance(first, Mapping)
        if headers is None:
            headers = list(first) if isinstance(first, Mapping) else _dataclass_names(first)
        columns = [str(h) for h in headers]
        return columns, _keyed(columns, is_mapping, escape_formulas)
    if isinstance(first, Iterable):
        if headers is None:
            raise InputError("rows are sequences without column names: pass headers=[...] with one name per field")
        columns = [str(h) for h in headers]
        return columns, _checked(
            columns, lambda row: row if isinstance(row, (list, tuple)) else list(row), escape_formulas
        )
    raise InputError(
        f"row 1 is a {type(first).__name__}: yield sequences, mappings, dataclasses or records with to_csv_row()"
    )


def _escape(row: Sequence[Any]) -> list[Any]:
    return ["'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v for v in row]


def _checked(columns: list[str], convert: Callable[[Any], Sequence[Any]], escape: bool) -> Converter:
    width = len(columns)

    def run(batch: list[Any], first_row: int) -> list[Sequence[Any]]:
        rows = [convert(record) for record in batch]
        if any(len(row) != width for row in rows):
            for offset, row in enumerate(rows):
                if len(row) != width:
                    raise InputError(
                        f"row {first_row + offset} has {len(row)} fields but the header has {width} "
                        f"columns; every row needs exactly {width} values"
                    )
        return [_escape(row) for row in rows] if escape else rows

    return run


def _keyed(columns: list[str], is_mapping: bool, escape: bool) -> Converter:
    known = set(columns)

    def run(batch: list[Any], first_row: int) -> list[Sequence[Any]]:
        rows: list[Sequence[Any]] = []
        for offset, record in enumerate(batch):
            if is_mapping:
                if not isinstance(record, Mapping):
                    raise InputError(f"row {first_row + offset} is a {type(record).__name__}, not a mapping like row 1")
                values: Mapping[str, Any] = record
            else:
                if not dataclasses.is_dataclass(record):
                    raise InputError(
                        f"row {first_row + offset} is a {type(record).__name__}, not a dataclass like row 1"
                    )
                values = {name: getattr(record, name) for name in _dataclass_names(record)}
            if not known.issuperset(values):
                extra = sorted(str(k) for k in values if k not in known)
                raise InputError(
                    f"row {first_row + offset} has field(s) {', '.join(map(repr, extra))} that are not columns "
                    f"({', '.join(columns)}); add them to headers= or drop them from the records"
                )
            row = [values.get(column) for column in columns]
            rows.append(_escape(row) if escape else row)
        return rows

    return run


class CsvFormatter:
    """Formats rows to UTF-8 CSV bytes, exactly as ``csv.writer`` (excel dialect) would.

    ``csv.writer`` looks at every character of every field in a C loop, which
    makes it the slowest step of a publish. The same text comes out about twice
    as fast column by column: a batch is turned into columns, each column is
    joined once and searched for the four characters that need quoting
    (``,``, ``"``, ``\\r``, ``\\n``), only the columns that hold one are looked
    at value by value, and each line is one ``",".join``. Values convert as
    ``csv.writer`` converts them (``None`` is an empty field, other objects
    ``str()``). Batches this path does not cover (one column, rows of different
    widths) go through ``csv.writer`` itself. Not thread-safe.

    ``others_waiting``: formatting holds the GIL, and a thread waiting for it
    (the compressor) would otherwise wait for the interpreter's switch
    interval (5 ms) at each step it takes between zlib calls. When
    ``others_waiting()`` is true after a batch (the pipeline passes "the
    compressor has a chunk in hand"), the formatter releases the GIL
    (``time.sleep(0)``).

    >>> CsvFormatter().format([["a", "b,c"], [1, None]])
    b'a,"b,c"\\r\\n1,\\r\\n'
    """

    def __init__(self, others_waiting: Callable[[], bool] | None = None, dialect: Dialect | None = None) -> None:
        self.dialect = dialect or Dialect()
        self._parts: list[str] = []
        self._writer = csv.writer(
            _ListSink(self._parts), delimiter=self.dialect.delimiter, lineterminator=self.dialect.lineterminator
        )
        self._others_waiting = others_waiting

    def format(self, rows: Iterable[Sequence[Any]], keys: KeyCollector | None = None) -> bytes:
        """The CSV bytes of ``rows``; ``keys`` collects each row's key text and hashes (a keyed publish)."""
        rows = rows if isinstance(rows, list) else list(rows)
        widths = set(map(len, rows))
        if len(widths) == 1 and rows and len(rows[0]) >= 1:
            text = _format_columns(rows, self.dialect, keys)
        else:  # rows of different widths (never from a publish: every row has the header's width)
            for row in rows if keys is not None else ():
                _format_columns([row], self.dialect, keys)
            self._writer.writerows(rows)
            text = "".join(self._parts)
            self._parts.clear()
        if self._others_waiting is not None and self._others_waiting():
            time.sleep(0)  # release the GIL: see the class docstring
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"a value cannot be written as UTF-8 ({exc.reason} at {exc.object[exc.start : exc.end]!r}); "
                "clean lone surrogates from the source"
            ) from None


def _format_columns(rows: list[Sequence[Any]], dialect: Dialect, keys: KeyCollector | None = None) -> str:
    """CSV text of rows of one width, built column by column."""
    sep, a, b, c = dialect.special
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for i, values in enumerate(columns):
        try:
            joined = "".join(values)
        except TypeError:  # None, numbers, other objects: convert as csv.writer does
            columns[i] = ["" if v is None else v if isinstance(v, str) else str(v) for v in values]
            joined = "".join(columns[i])
        if sep in joined or a in joined or b in joined or c in joined:
            columns[i] = [
                '"' + v.replace('"', '""') + '"' if (sep in v or a in v or b in v or c in v) else v for v in columns[i]
            ]
    if len(columns) == 1:  # a row whose only field is empty is written "", not as a blank line
        columns[0] = [v or '""' for v in columns[0]]
    lines = list(map(sep.join, zip(*columns, strict=True)))
    if keys is not None:
        chosen = [columns[i] for i in keys.indexes]
        keys.add_rows(chosen[0] if len(chosen) == 1 else list(map(sep.join, zip(*chosen, strict=True))), lines)
    lines.append("")
    return dialect.lineterminator.join(lines)


class _ListSink:
    __slots__ = ("write",)

    def __init__(self, parts: list[str]) -> None:
        self.write = parts.append


def count_records(chunk: bytes, in_quotes: bool) -> tuple[int, bool]:
    """Count CSV record ends (``\\n`` outside quotes) in ``chunk``.

    Returns the count and whether the chunk ends inside a quoted field, to pass
    to the next call. A doubled quote inside a field toggles the state twice,
    so the parity rule is exact for RFC 4180 CSV.

    >>> count_records(b'a,"b\\nc"\\r\\n1,2\\r\\n', False)
    (2, False)
    """
    pieces = chunk.split(b'"')
    start = 1 if in_quotes else 0
    count = sum(pieces[i].count(b"\n") for i in range(start, len(pieces), 2))
    in_quotes = in_quotes ^ (len(pieces) % 2 == 0)
    return count, in_quotes


class RecordCounter:
    """Counts the data records of a CSV fed chunk by chunk: one pass, any chunking, the header not counted.

    >>> counter = RecordCounter()
    >>> for chunk in (b'a,b\\r\\n1,"x\\n', b'y"\\r\\n2,z'):
    ...     counter.feed(chunk)
    >>> counter.records
    2
    """

    def __init__(self, *, header: bool = True) -> None:
        self.header = header
        self.lines = 0
        self.in_quotes = False
        self.last = b""

    def feed(self, chunk: bytes) -> None:
        n, self.in_quotes = count_records(chunk, self.in_quotes)
        self.lines += n
        self.last = chunk[-1:] or self.last

    @property
    def records(self) -> int:
        """Records so far, a last one without a line end included, the header row excluded."""
        lines = self.lines + (1 if self.last and self.last != b"\n" else 0)
        return max(lines - 1, 0) if self.header else lines
