"""Arrow record batches into CSV bytes, column by column, in pyarrow's compute kernels.

Each column becomes one Arrow string array (cast, formula-escaped, quoted
where it holds the delimiter, a quote, CR or LF), the columns are joined row by
row with the delimiter, and the CSV bytes of a slice are the data buffer of that
one array. No Python object is made per value for strings, integers, booleans,
nulls, dates, times and timestamps (naive or UTC) down to microseconds, and
floats (except the few whose Arrow text is not ``repr()``'s: integral values and
exponents). Every other type (decimals, other time zones, nanoseconds, binary,
nested) is written as its Python value's ``str()``. Either way a value gives the
same text here as in a row (:mod:`csvpublish.rows`).
The kernels release the GIL, so formatting overlaps compression. They allocate
from jemalloc where pyarrow has it (:func:`memory_pool`).

>>> import pyarrow as pa
>>> batch = pa.record_batch({"a": ["x", "y,z", None], "n": [1, None, 3], "ok": [True, False, None]})
>>> bytes(ArrowFormatter(batch.schema).format(batch))
b'x,1,True\\r\\n"y,z",,False\\r\\n,3,\\r\\n'
"""

from __future__ import annotations

import os
import re
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .dialect import Dialect
from .rows import FORMULA_PREFIXES

if TYPE_CHECKING:
    from .changes import KeyCollector

SLICE_BYTES = 8 * 2**20
"""Rows are formatted in slices of about this much CSV: memory stays bounded whatever a batch holds."""
MAX_SLICE_ROWS = 65_536

_TEXT, _NATIVE, _FLOAT, _CLOCK, _BOOL, _NULL, _PYTHON = "text", "native", "float", "clock", "bool", "null", "python"

_SAME_AS_REPR = r"^-?(?:[1-9][0-9]*\.[0-9]+|0\.(?:[1-9]|0[1-9]|00[1-9]|000[1-9])[0-9]*)$"
"""Arrow's text of a float that ``repr()`` writes the same: both give the shortest digits that read
back as the float; they differ only where they switch to an exponent (``1e-05`` / ``0.00001``,
``1e+16``) and in integral values (``1.0`` / ``1``), and those are written by ``repr()``."""


_UTC = ("UTC", "Etc/UTC", "+00:00")
"""Time zones whose timestamps are formatted natively: ``str()`` writes their offset as ``+00:00``."""


def _kind(pa: Any, data_type: Any) -> str:
    """How a column of this type becomes text."""
    types = pa.types
    if types.is_dictionary(data_type):
        return _kind(pa, data_type.value_type)
    if types.is_string(data_type) or types.is_large_string(data_type) or types.is_string_view(data_type):
        return _TEXT
    if types.is_integer(data_type) or types.is_date32(data_type):
        # Arrow's cast writes what str() writes: decimal integers, ISO dates (0001-01-01); not date64,
        # whose milliseconds off a day boundary Arrow truncates toward 1970 where Python floors
        return _NATIVE
    if types.is_floating(data_type):
        return _FLOAT
    # Python's datetime and time hold microseconds: nanoseconds go through Python, and so do time
    # zones off UTC (Arrow writes an offset of -04:56:02 as -0456)
    clock = types.is_time(data_type) or (types.is_timestamp(data_type) and data_type.tz in (None, *_UTC))
    if clock and data_type.unit in ("s", "ms", "us"):
        return _CLOCK
    if types.is_boolean(data_type):
        return _BOOL
    if types.is_null(data_type):
        return _NULL
    return _PYTHON


class ArrowFormatter:
    """Formats the record batches of one schema as CSV in one dialect.

    Args:
        schema: the ``pyarrow.Schema`` of the batches.
        dialect: delimiter and line ends (the header and BOM are the caller's).
        escape_formulas: prefix string cells starting with ``= + - @``, tab or CR with ``'``.
    """

    def __init__(self, schema: Any, dialect: Dialect | None = None, *, escape_formulas: bool = False) -> None:
        import pyarrow
        import pyarrow.compute

        self.pa, self.pc = pyarrow, pyarrow.compute
        self.pool = memory_pool(pyarrow)
        self.dialect = dialect or Dialect()
        self.kinds = [_kind(pyarrow, field.type) for field in schema]
        self.escape_formulas = escape_formulas
        self._needs_quotes = "[" + re.escape("".join(self.dialect.special)) + "]"
        self._formula = "^[" + re.escape("".join(FORMULA_PREFIXES)) + "]"
        self._s = {v: _scalar(pyarrow, v) for v in ("", '"', '""', "'", "True", "False")}
        self._false = pyarrow.Array.from_buffers(pyarrow.bool_(), 1, [None, pyarrow.py_buffer(b"\0")])[0]
        self._utc = _scalar(pyarrow, "+00:00")
        self._delimiter = _scalar(pyarrow, self.dialect.delimiter)
        self._terminator = _scalar(pyarrow, self.dialect.lineterminator)
        self._special = [c.encode() for c in self.dialect.special]

    def slices(self, batch: Any) -> Iterator[Any]:
        """``batch`` in slices of about :data:`SLICE_BYTES` of CSV."""
        rows = batch.num_rows
        if rows == 0:
            return
        per_row = max(1, batch.nbytes // rows + len(self.kinds))
        step = max(1, min(MAX_SLICE_ROWS, SLICE_BYTES // per_row))
        for start in range(0, rows, step):
            yield batch.slice(start, step)

    def format(self, batch: Any, keys: KeyCollector | None = None) -> memoryview:
        """The CSV bytes of ``batch``'s rows (no header), without a copy of the joined text.

        ``keys`` collects each row's key text and hashes (a keyed publish), one Python step per row.
        """
        pc, s, pool = self.pc, self._s, self.pool
        if not self.kinds:  # rows without columns: one empty line each, as csv.writer writes them
            return memoryview(self.dialect.lineterminator.encode() * batch.num_rows)
        columns = [self._text(batch.column(i), kind) for i, kind in enumerate(self.kinds)]
        if len(columns) == 1:  # a row whose only field is empty is written "", not as a blank line
            columns[0] = pc.if_else(pc.equal(columns[0], s[""]), s['""'], columns[0], memory_pool=pool)
        key_texts = None if keys is None else [columns[i] for i in keys.indexes]
        # the line end goes onto the last field: one column copied again, not every line
        columns[-1] = pc.binary_join_element_wise(columns[-1], s[""], self._terminator, memory_pool=pool)
        lines = pc.binary_join_element_wise(*columns, self._delimiter, memory_pool=pool)
        if keys is not None and key_texts is not None:
            texts = (
                key_texts[0]
                if len(key_texts) == 1
                else pc.binary_join_element_wise(*key_texts, self._delimiter, memory_pool=pool)
            )
            keys.add_encoded(
                _data(texts), _offsets(texts), _data(lines), _offsets(lines), len(self._terminator.as_py())
            )
        return _data(lines)

    def _text(self, column: Any, kind: str) -> Any:
        """One column as a string array without nulls, escaped and quoted."""
        pa, pc, s, pool = self.pa, self.pc, self._s, self.pool
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if kind == _PYTHON:
            texts = [None if v is None else str(v) for v in column.to_pylist()]
            column = pa.array(texts, pa.string(), memory_pool=pool)
        elif kind == _FLOAT:
            column = self._floats(column)
        elif kind == _CLOCK:
            column = self._clock(column)
        elif kind == _BOOL:
            column = pc.if_else(column, s["True"], s["False"], memory_pool=pool)
        elif kind == _NULL:
            column = pa.nulls(len(column), pa.string(), memory_pool=pool)
        if column.type != pa.string():
            column = pc.cast(column, pa.string(), memory_pool=pool)
        if kind == _TEXT and self.escape_formulas:
            formula = pc.match_substring_regex(column, self._formula, memory_pool=pool)
            quoted = pc.binary_join_element_wise(s["'"], column, s[""], memory_pool=pool)
            column = pc.if_else(formula, quoted, column, memory_pool=pool)
        if kind in (_TEXT, _PYTHON) and self._has_special(column):
            # quote only the few values that need it, then put them back in place
            needs = pc.match_substring_regex(column, self._needs_quotes, memory_pool=pool)
            needs = pc.coalesce(needs, self._false, memory_pool=pool) if needs.null_count else needs
            few = pc.replace_substring(pc.filter(column, needs, memory_pool=pool), '"', '""', memory_pool=pool)
            few = pc.binary_join_element_wise(s['"'], few, s['"'], s[""], memory_pool=pool)
            column = pc.replace_with_mask(column, needs, few, memory_pool=pool)
        # slices stay far below 2 GiB of text: string's 32-bit offsets suffice
        return pc.coalesce(column, s[""], memory_pool=pool) if column.null_count else column

    def _floats(self, column: Any) -> Any:
        """Floats as ``repr()`` writes them (:data:`_SAME_AS_REPR`), float32 as the double it reads back as."""
        pa, pc, pool = self.pa, self.pc, self.pool
        doubles = column if column.type == pa.float64() else pc.cast(column, pa.float64(), memory_pool=pool)
        text = pc.cast(doubles, pa.string(), memory_pool=pool)
        same = pc.match_substring_regex(text, _SAME_AS_REPR, memory_pool=pool)
        other = pc.invert(pc.coalesce(same, pc.is_null(text), memory_pool=pool), memory_pool=pool)
        if not pc.any(other).as_py():
            return text
        written = [repr(v) for v in pc.filter(doubles, other, memory_pool=pool).to_pylist()]
        return pc.replace_with_mask(text, other, pa.array(written, pa.string(), memory_pool=pool), memory_pool=pool)

    def _clock(self, column: Any) -> Any:
        """Times and timestamps as ``str()`` writes them: six digits of fraction, or none when it is zero.

        Arrow writes as many digits as the unit has (``05:37:08.120`` in milliseconds), and UTC as
        ``Z`` or ``+0000`` where ``str()`` writes ``+00:00``.
        """
        pa, pc, pool = self.pa, self.pc, self.pool
        text = pc.cast(column, pa.string(), memory_pool=pool)
        zoned = pa.types.is_timestamp(column.type) and column.type.tz is not None
        if zoned:
            text = pc.replace_substring_regex(text, r"(Z|\+0000)$", "", memory_pool=pool)
        if column.type.unit == "ms":
            text = pc.replace_substring_regex(text, r"\.([0-9]{3})$", r".\1000", memory_pool=pool)
        if column.type.unit != "s":
            text = pc.replace_substring_regex(text, r"\.000000$", "", memory_pool=pool)
        return pc.binary_join_element_wise(text, self._utc, self._s[""], memory_pool=pool) if zoned else text

    def _has_special(self, column: Any) -> bool:
        """Whether any value holds a character that needs quoting: one memchr per character over the values."""
        data = column.buffers()[2]
        if data is None:
            return False
        offsets = memoryview(column.buffers()[1]).cast("i")
        values = bytes(memoryview(data)[offsets[column.offset] : offsets[column.offset + len(column)]])
        return any(char in values for char in self._special)


def memory_pool(pa: Any) -> Any:
    """The pool the formatter's kernels allocate from: jemalloc where pyarrow has it.

    Each slice allocates and frees a few of its own size. pyarrow's default, mimalloc,
    hands those pages back to the system and faults them in again: measured at 1M book
    rows, 1.5 s of the formatter's 4.1 s CPU went to the kernel, against 0.2 s with
    jemalloc. A program that chose its pool with ``ARROW_DEFAULT_MEMORY_POOL`` keeps it.

    >>> memory_pool(__import__("pyarrow")).backend_name in ("jemalloc", "mimalloc", "system")
    True
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return pa.default_memory_pool()
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a build without jemalloc (Windows, some macOS wheels)
        return pa.default_memory_pool()


def _scalar(pa: Any, text: str) -> Any:
    """A string scalar built from its bytes: ``pyarrow.scalar()`` would import pandas (0.2 s) to check its input."""
    data = text.encode()
    offsets = pa.py_buffer(array("i", [0, len(data)]))
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])[0]


def _offsets(strings: Any) -> memoryview:
    """Where each value of a string array starts in :func:`_data`'s bytes, and where the last one ends."""
    offsets = memoryview(strings.buffers()[1]).cast("i")[strings.offset : strings.offset + len(strings) + 1]
    base = offsets[0]
    return memoryview(array("i", (o - base for o in offsets))) if base else offsets


def _data(lines: Any) -> memoryview:
    """The bytes of a string array's values, end to end (its data buffer between its offsets)."""
    offsets = memoryview(lines.buffers()[1]).cast("i")
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    data = lines.buffers()[2]
    return memoryview(data)[start:end] if data is not None else memoryview(b"")
