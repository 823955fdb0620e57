"""export_csv_to_file: every source shape, exact round trips, streaming, atomic replacement."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvpublish import InputError, Publisher, export_csv_to_file, export_csv_to_file_sync
from csvpublish.compression import GzipCompressor, gzip_bytes
from csvpublish.rows import count_records


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


class Book:
    """The shape the pipeline's tracker returns: to_csv_row() and a csv_headers() classmethod."""

    def __init__(self, barcode: str, title: str | None) -> None:
        self.barcode, self.title = barcode, title

    @classmethod
    def csv_headers(cls) -> list[str]:
        return ["Barcode", "Title"]

    def to_csv_row(self) -> list[Any]:
        return [self.barcode, self.title]


class Tracker:
    def __init__(self, books: list[Book]) -> None:
        self.books = books

    async def get_all_books_csv_data(self) -> list[Book]:
        return self.books


@dataclasses.dataclass
class BookDC:
    barcode: str
    title: str | None = None


async def test_records_with_to_csv_row_take_headers_from_their_class(tmp_path: Path) -> None:
    """Records with to_csv_row() are written under their class's csv_headers()."""
    count = await export_csv_to_file([Book("1", "Dune"), Book("2", None)], tmp_path / "b.csv")
    assert count == 2
    assert read_csv(tmp_path / "b.csv") == [["Barcode", "Title"], ["1", "Dune"], ["2", ""]]


async def test_tracker_object_is_accepted_unchanged(tmp_path: Path) -> None:
    """An object with get_all_books_csv_data() is a source, as in the seed plan."""
    count = await export_csv_to_file(Tracker([Book("1", "Dune")]), tmp_path / "b.csv")
    assert count == 1
    assert read_csv(tmp_path / "b.csv")[1] == ["1", "Dune"]


async def test_async_iterables_and_awaitables_are_sources(tmp_path: Path) -> None:
    """Async generators and awaitables returning rows both work."""

    async def gen() -> AsyncIterator[dict[str, str]]:
        for i in range(5):
            yield {"n": str(i)}

    async def later() -> list[dict[str, str]]:
        return [{"n": "x"}]

    assert await export_csv_to_file(gen(), tmp_path / "a.csv") == 5
    assert await export_csv_to_file(later(), tmp_path / "b.csv") == 1
    assert read_csv(tmp_path / "a.csv")[-1] == ["4"]


async def test_mappings_missing_keys_are_empty_and_unknown_keys_fail(tmp_path: Path) -> None:
    """A missing key is an empty field; a key that is no column raises an error naming it, writing nothing."""
    out = tmp_path / "m.csv"
    assert await export_csv_to_file([{"a": 1, "b": 2}, {"a": 3}], out) == 2
    assert read_csv(out) == [["a", "b"], ["1", "2"], ["3", ""]]
    before = out.read_bytes()
    with pytest.raises(InputError, match=r"row 2 has field\(s\) 'zzz'"):
        await export_csv_to_file([{"a": 1}, {"a": 2, "zzz": 3}], out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]  # no temp file left


async def test_dataclasses_take_headers_from_fields(tmp_path: Path) -> None:
    """Dataclass instances are written under their field names."""
    await export_csv_to_file([BookDC("1", "Dune"), BookDC("2")], tmp_path / "d.csv")
    assert read_csv(tmp_path / "d.csv") == [["barcode", "title"], ["1", "Dune"], ["2", ""]]


async def test_sequences_need_headers(tmp_path: Path) -> None:
    """Plain sequences need headers=, and the error says so."""
    with pytest.raises(InputError, match="pass headers="):
        await export_csv_to_file([["1", "2"]], tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()
    assert await export_csv_to_file([("1", "2")], tmp_path / "s.csv", headers=["a", "b"]) == 1


async def test_row_of_wrong_length_names_the_row_and_leaves_the_old_file(tmp_path: Path) -> None:
    """A short row raises an error naming its number; the previous file stays intact."""
    out = tmp_path / "s.csv"
    out.write_text("old\n")
    rows = [["1", "2"]] * 4500 + [["only-one"]]
    with pytest.raises(InputError, match="row 4501 has 1 fields but the header has 2 columns"):
        await export_csv_to_file(rows, out, headers=["a", "b"])
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]


async def test_empty_source_without_headers_is_refused_and_with_headers_writes_header(tmp_path: Path) -> None:
    """No rows and no headers is an error; with headers it is a header-only CSV."""
    with pytest.raises(InputError, match="no rows"):
        await export_csv_to_file([], tmp_path / "e.csv")
    assert not (tmp_path / "e.csv").exists()
    assert await export_csv_to_file([], tmp_path / "e.csv", headers=["a"]) == 0
    assert read_csv(tmp_path / "e.csv") == [["a"]]


async def test_parent_folders_are_created(tmp_path: Path) -> None:
    """The output's parent folders are made."""
    out = tmp_path / "x" / "y" / "b.csv"
    await export_csv_to_file([{"a": 1}], out)
    assert out.exists()


async def test_a_failing_source_leaves_no_partial_file(tmp_path: Path) -> None:
    """When the source raises halfway, the output is what it was before and no temp file remains."""

    def broken() -> Iterator[dict[str, int]]:
        for i in range(10_000):
            yield {"a": i}
        raise RuntimeError("database went away")

    out = tmp_path / "b.csv"
    with pytest.raises(RuntimeError, match="database went away"):
        await export_csv_to_file(broken(), out)
    assert list(tmp_path.iterdir()) == []


def test_strings_are_not_rows(tmp_path: Path) -> None:
    """A string as source or as a row gets a clear error, not a CSV of characters."""
    with pytest.raises(InputError, match="cannot read rows from a str"):
        export_csv_to_file_sync("a,b\n1,2", tmp_path / "x.csv")
    with pytest.raises(InputError, match="row 1 is a str"):
        export_csv_to_file_sync(["a,b"], tmp_path / "x.csv", headers=["a"])


def test_formula_escaping_is_opt_in(tmp_path: Path) -> None:
    """escape_formulas=True prefixes = + - @ tab CR cells with a quote; off by default."""
    rows = [{"v": "=HYPERLINK(1)"}, {"v": "+1"}, {"v": "-2"}, {"v": "@x"}, {"v": "\tx"}, {"v": "\rx"}, {"v": "ok"}]
    export_csv_to_file_sync(rows, tmp_path / "plain.csv")
    export_csv_to_file_sync(rows, tmp_path / "safe.csv", escape_formulas=True)
    assert [r[0] for r in read_csv(tmp_path / "plain.csv")[1:]] == [r["v"] for r in rows]
    assert [r[0] for r in read_csv(tmp_path / "safe.csv")[1:]] == ["'" + str(r["v"]) for r in rows[:-1]] + ["ok"]


def test_memory_stays_bounded_for_a_streaming_source(tmp_path: Path) -> None:
    """Python allocations while exporting 60k streamed rows stay far below the CSV's size."""

    def rows() -> Iterator[list[str]]:
        for i in range(60_000):
            yield [str(i), "x" * 200, "é" * 50]

    tracemalloc.start()
    try:
        export_csv_to_file_sync(rows(), tmp_path / "big.csv", headers=["a", "b", "c"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = (tmp_path / "big.csv").stat().st_size
    assert size > 15_000_000
    assert peak < size / 3, (peak, size)


cell = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.text(alphabet=',"\r\n \t', max_size=6),
    st.text(min_size=1, max_size=4).map(lambda s: s * 700),
)  # very long fields, cheaply


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    table=st.integers(min_value=1, max_value=4).flatmap(
        lambda w: st.lists(st.lists(cell, min_size=w, max_size=w), max_size=20)
    )
)
def test_any_table_round_trips_through_csv_reader(tmp_path: Path, table: list[list[str | None]]) -> None:
    """Any table of Unicode strings and None reads back identical (None as '')."""
    width = len(table[0]) if table else 2
    headers = [f"c{i}" for i in range(width)]
    out = tmp_path / "t.csv"
    count = export_csv_to_file_sync(table, out, headers=headers)
    assert count == len(table)
    expected = [headers] + [["" if v is None else v for v in row] for row in table]
    got = read_csv(out)
    if width == 1:  # csv writes a one-column row holding '' as '""'; reading gives [''] back
        got = [row if row else [""] for row in got]
    assert got == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=15))
def test_published_gzip_equals_the_local_csv(tmp_path: Path, table: list[list[str | None]]) -> None:
    """The published object's gunzip equals the local CSV written in the same pass."""
    import uuid

    publisher = Publisher(f"memory://prop-{uuid.uuid4().hex}", name="t")
    local = tmp_path / f"{uuid.uuid4().hex}.csv"
    result = publisher.publish_sync(table, headers=["a", "b", "c"], local_path=local)
    stored = publisher.storage.fs.cat_file(publisher.storage.path("t_latest.csv.gz"))
    assert gzip.decompress(stored) == local.read_bytes()
    assert result.record_count == len(table)


class Tag(str):
    """A str subclass: csv.writer writes its text, not its __str__."""

    def __str__(self) -> str:
        return "not this"


class Shelf:
    def __str__(self) -> str:
        return 'shelf "A", row\n2'


any_value = st.one_of(
    cell,
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.decimals(allow_nan=False),
    st.text(alphabet='x,"\r\n', max_size=5).map(Tag),
    st.just(Shelf()),
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.one_of(
        st.integers(min_value=0, max_value=6).flatmap(
            lambda w: st.lists(st.lists(any_value, min_size=w, max_size=w), max_size=12)
        ),
        st.lists(st.lists(any_value, max_size=4), max_size=6),  # rows of different widths
    ),
    as_tuples=st.booleans(),
)
def test_the_formatter_writes_what_csv_writer_writes(rows: list[list[Any]], as_tuples: bool) -> None:
    """Byte for byte the excel-dialect output of csv.writer, for any values, widths and quoting."""
    from csvpublish.rows import CsvFormatter

    table: list[Any] = [tuple(r) for r in rows] if as_tuples else rows
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(table)
    assert CsvFormatter().format(table) == buf.getvalue().encode("utf-8")


@given(data=st.binary(max_size=5000), cut=st.integers(min_value=0, max_value=5000))
def test_gzip_is_deterministic_and_standard(data: bytes, cut: int) -> None:
    """Same bytes give the same gzip whatever the chunking, and any gzip reader reads it."""
    c = GzipCompressor()
    chunked = c.compress(data[:cut]) + c.compress(data[cut:]) + c.flush()
    assert gzip.decompress(chunked) == data
    assert gzip.decompress(gzip_bytes(data)) == data
    assert gzip_bytes(data) == gzip_bytes(data)
    assert chunked[4:8] == b"\0\0\0\0"  # no modification time


@given(
    table=st.lists(st.lists(st.text(alphabet='ab,"\r\n', max_size=5), min_size=2, max_size=2), max_size=10),
    cut=st.integers(0, 200),
)
def test_record_counting_matches_the_csv_reader(table: list[list[str]], cut: int) -> None:
    """Counting line ends outside quotes, across any chunk split, equals csv.reader's record count."""
    buf = io.StringIO()
    csv.writer(buf).writerows(table)
    data = buf.getvalue().encode()
    n1, state = count_records(data[:cut], False)
    n2, _ = count_records(data[cut:], state)
    assert n1 + n2 == len(list(csv.reader(io.StringIO(buf.getvalue(), newline=""))))


def test_a_sqlite_cursor_of_the_callers_thread_is_a_source(tmp_path: Path) -> None:
    """A sync iterator is pulled on the caller's thread: a sqlite3 cursor (bound to it) works."""
    import sqlite3

    conn = sqlite3.connect(":memory:")  # check_same_thread: using it from another thread raises
    conn.execute("CREATE TABLE books (barcode TEXT, title TEXT)")
    conn.executemany("INSERT INTO books VALUES (?, ?)", [(f"b{i}", f"Title, {i}") for i in range(1200)])
    publisher = Publisher(tmp_path / "out", name="books")
    result = publisher.publish_sync(conn.execute("SELECT barcode, title FROM books ORDER BY rowid"), headers=["a", "b"])
    assert result.record_count == 1200
    data = gzip.decompress((tmp_path / "out" / "books_latest.csv.gz").read_bytes()).decode()
    assert list(csv.reader(io.StringIO(data)))[1:3] == [["b0", "Title, 0"], ["b1", "Title, 1"]]


async def test_other_tasks_run_while_rows_are_formatted(tmp_path: Path) -> None:
    """Records are formatted on the event loop's thread, so it must let other tasks run between chunks."""
    import asyncio

    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    rows = [[str(i), "x" * 200] for i in range(40_000)]  # about 8 MB of CSV: several 1 MiB chunks
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    await Publisher(tmp_path / "out", name="t").publish(rows, headers=["a", "b"])
    done = True
    await task
    assert ticks - start >= 5, f"the event loop ran other tasks only {ticks - start} times"
