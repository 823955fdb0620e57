"""Every table shape a data engineer holds publishes in one call, with the same CSV as the same rows."""

from __future__ import annotations

import asyncio
import csv
import datetime
import gzip
import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import csvpublish.sources
from csvpublish import InputError, Publisher, export_csv_to_file

from .conftest import Destination, backends
from .helpers import content_settings, snapshot

COLUMNS = ["Barcode", "Title", "Note", "Count", "Ok"]
MESSY: list[dict[str, Any]] = [
    {"Barcode": "B1", "Title": 'Dune, "the" novel', "Note": "line1\nline2", "Count": 3, "Ok": True},
    {"Barcode": "B2", "Title": "Émile — 東京", "Note": None, "Count": None, "Ok": False},
    {"Barcode": "B3", "Title": "", "Note": "cr\rhere", "Count": -7, "Ok": None},
    {"Barcode": "B4", "Title": "tab\there;semi|pipe", "Note": "crlf\r\nx", "Count": 0, "Ok": True},
]


def text(value: Any) -> str:
    return "" if value is None else str(value)


def expected(columns: list[str] = COLUMNS) -> list[list[str]]:
    return [columns, *([text(row[c]) for c in columns] for row in MESSY)]


def arrow_table() -> pa.Table:
    return pa.Table.from_pylist(MESSY)


class Capsule:
    """An object that only speaks the Arrow PyCapsule stream interface (as ADBC, Flight and others do)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


def sqlite_cursor(columns: list[str] = COLUMNS[:4]) -> sqlite3.Cursor:
    con = sqlite3.connect(":memory:")
    con.execute(f"create table books ({', '.join(columns)})")
    marks = ", ".join("?" * len(columns))
    con.executemany(f"insert into books values ({marks})", [[r[c] for c in columns] for r in MESSY])
    return con.execute("select * from books")


def sqlalchemy_result(columns: list[str] = COLUMNS[:4]) -> Any:
    engine = sa.create_engine("sqlite://")
    connection = engine.connect()
    connection.execute(sa.text(f"create table books ({', '.join(columns)})"))
    params = [{c: r[c] for c in columns} for r in MESSY]
    connection.execute(sa.text(f"insert into books values ({', '.join(':' + c for c in columns)})"), params)
    return connection.execute(sa.text("select * from books"))


def duckdb_cursor(columns: list[str] = COLUMNS[:4]) -> Any:
    con = duckdb.connect()
    con.register("books", arrow_table().select(columns))
    return con.execute("select * from books")


# name -> (build the source, the columns it holds)
SOURCES: dict[str, tuple[Callable[[], Any], list[str]]] = {
    "rows": (lambda: list(MESSY), COLUMNS),
    "pandas": (lambda: pd.DataFrame(MESSY).astype({"Count": "Int64", "Ok": "boolean"}), COLUMNS),
    "polars": (lambda: pl.DataFrame(MESSY), COLUMNS),
    "polars-lazy": (lambda: pl.LazyFrame(MESSY), COLUMNS),
    "arrow-table": (arrow_table, COLUMNS),
    "arrow-batch": (lambda: pa.RecordBatch.from_pylist(MESSY), COLUMNS),
    "arrow-reader": (lambda: arrow_table().to_reader(max_chunksize=1), COLUMNS),
    "arrow-dataset": (lambda: pads.dataset(arrow_table()), COLUMNS),
    "arrow-capsule": (lambda: Capsule(arrow_table()), COLUMNS),
    "duckdb-relation": (lambda: duckdb.from_arrow(arrow_table()), COLUMNS),
    "sqlite-cursor": (sqlite_cursor, COLUMNS[:4]),  # SQLite has no booleans
    "duckdb-cursor": (duckdb_cursor, COLUMNS[:4]),
    "sqlalchemy-result": (sqlalchemy_result, COLUMNS[:4]),
}


def published_rows(destination: Destination, name: str = "books_latest.csv.gz", **dialect: Any) -> list[list[str]]:
    data = gzip.decompress(destination.read(name)).decode("utf-8")
    return list(csv.reader(io.StringIO(data, newline=""), **dialect))


@pytest.mark.parametrize("kind", list(SOURCES))
async def test_each_source_publishes_its_table_without_headers(kind: str, make_destination: Any) -> None:
    """Frames, Arrow objects, DuckDB, cursors and results publish with their own column names; the CSV reads back."""
    build, columns = SOURCES[kind]
    destination = make_destination("memory")
    result = await destination.publisher().publish(build())
    assert published_rows(destination) == expected(columns)
    assert (result.record_count, result.columns) == (len(MESSY), columns)
    manifest = json.loads(destination.read("books_latest.manifest.json"))
    assert manifest["columns"] == columns
    if kind.startswith(("arrow", "polars", "pandas", "duckdb-relation")):
        assert len(manifest["column_types"]) == len(columns)
        assert manifest["column_types"][3] in {"int64", "Int64"}  # the source's own name of the type


@pytest.mark.parametrize("kind", ["arrow-reader", "sqlite-cursor", "pandas"])
@pytest.mark.parametrize("backend", backends())
async def test_columnar_and_cursor_sources_on_every_backend(make_destination: Any, backend: str, kind: str) -> None:
    """An Arrow stream, a cursor and a DataFrame publish the same rows on every backend, and verify."""
    build, columns = SOURCES[kind]
    destination = make_destination(backend)
    publisher = destination.publisher()
    result = await publisher.publish(build())
    assert published_rows(destination) == expected(columns)
    assert result.record_count == len(MESSY)
    assert (await publisher.verify(strict=True)).record_count == len(MESSY)


def test_the_arrow_path_writes_the_bytes_of_the_row_path() -> None:
    """The same table as Python rows and as Arrow gives byte-identical CSV (strings, ints, bools, nulls)."""
    rows = Publisher("memory://same-rows", name="books").publish_sync(list(MESSY))
    for kind in ("arrow-table", "pandas", "polars", "duckdb-relation"):
        other = Publisher(f"memory://same-{kind}", name="books").publish_sync(SOURCES[kind][0]())
        assert (other.csv_sha256, other.sha256) == (rows.csv_sha256, rows.sha256), kind


def test_a_polars_frame_of_several_slices_writes_the_bytes_of_its_rows() -> None:
    """A polars frame longer than one slice (it is converted slice by slice) writes what its rows write."""
    records = [dict(row, Barcode=f"B{i}") for i in range(150_000) for row in MESSY[i % 4 : i % 4 + 1]]
    frame = pl.DataFrame(records)
    assert len(list(frame.iter_slices(n_rows=65_536))) > 1
    from_rows = Publisher("memory://polars-rows", name="books").publish_sync(records)
    from_frame = Publisher("memory://polars-frame", name="books").publish_sync(frame)
    assert (from_frame.record_count, from_frame.csv_sha256) == (150_000, from_rows.csv_sha256)


def test_the_formatter_allocates_from_jemalloc_unless_the_program_chose_a_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """mimalloc (pyarrow's default) gives each slice's pages back and faults them in again: jemalloc, unless chosen."""
    from csvpublish.columnar import ArrowFormatter, memory_pool

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    assert memory_pool(pa).backend_name == "jemalloc"  # the Linux wheels have it
    formatter = ArrowFormatter(arrow_table().schema)
    before = pa.jemalloc_memory_pool().total_bytes_allocated()
    assert bytes(formatter.format(arrow_table().to_batches()[0])).startswith(b'B1,"Dune, ""the"" novel",')
    assert pa.jemalloc_memory_pool().total_bytes_allocated() > before
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
    assert memory_pool(pa).backend_name == pa.default_memory_pool().backend_name  # read at import: mimalloc here


def test_formatting_strings_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow.scalar() imports pandas (0.2 s) to look at its input: a publish of strings never calls it."""
    table = pa.table({"a": ["x", "y,z", None], "b": [1, None, 3], "c": [True, None, False]})
    with pa.OSFile(str(tmp_path / "t.arrows"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)  # pa.table() of Python lists would import pandas in the child itself
    script = (
        "import sys, pyarrow as pa\n"
        "from csvpublish import Publisher\n"
        f"table = pa.ipc.open_stream(pa.OSFile({str(tmp_path / 't.arrows')!r})).read_all()\n"
        f"Publisher({str(tmp_path / 'dest')!r}, name='b').publish_sync(table)\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    published = gzip.decompress((tmp_path / "dest" / "b_latest.csv.gz").read_bytes())
    assert published == b'a,b,c\r\nx,1,True\r\n"y,z",,\r\n,3,False\r\n'


CELLS = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(["", ",", '"', "\r", "\n", "\t", ";", "|", "=1", "-2", " a "]),
)
DIALECTS = st.sampled_from(
    [
        {},
        {"delimiter": "\t"},
        {"delimiter": ";", "lineterminator": "\n"},
        {"delimiter": "|", "header": False},
        {"bom": True},
    ]
)


@st.composite
def tables(draw: Any) -> dict[str, list[Any]]:
    width = draw(st.integers(1, 4))
    height = draw(st.integers(0, 6))
    kinds = ["str", "int", "bool", "date", "float", "datetime", "utc", "time"]
    kinds = [draw(st.sampled_from(kinds)) for _ in range(width)]
    values = {
        "str": CELLS,
        "int": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
        "bool": st.one_of(st.none(), st.booleans()),
        "date": st.one_of(st.none(), st.dates()),  # Arrow's cast, not a Python object per value
        "float": st.one_of(st.none(), st.floats(), st.sampled_from([1e-5, 1e16, 100.0, 0.0001, -0.0])),
        "datetime": st.one_of(st.none(), st.datetimes()),  # naive: timestamp[us]
        "utc": st.one_of(st.none(), st.datetimes(timezones=st.just(datetime.timezone.utc))),  # tz=UTC
        "time": st.one_of(st.none(), st.times()),  # time64[us]
    }
    return {f"c{i}": draw(st.lists(values[k], min_size=height, max_size=height)) for i, k in enumerate(kinds)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables(), dialect=DIALECTS, escape=st.booleans())
def test_rows_and_arrow_give_the_same_csv(table: dict[str, list[Any]], dialect: dict[str, Any], escape: bool) -> None:
    """Any table of strings, integers, booleans, floats, dates, times and nulls, in any dialect: one CSV either way."""
    names = list(table)
    rows = [list(values) for values in zip(*table.values(), strict=True)]
    assume(rows or dialect.get("header", True))  # nothing at all to write is refused, on both paths
    arrow = pa.table(table)
    # every example publishes other columns under the same name: the guard is not what this shows
    options = {"escape_formulas": escape, "on_schema_change": "allow", **dialect}
    by_rows = Publisher("memory://prop-rows", name="t", **options)
    by_arrow = Publisher("memory://prop-arrow", name="t", **options)
    first = by_rows.publish_sync(rows, headers=names)
    second = by_arrow.publish_sync(arrow)
    assert second.csv_sha256 == first.csv_sha256
    assert second.record_count == first.record_count == len(rows)


def test_float32_columns_write_the_doubles_they_read_back_as() -> None:
    """A float32 is written as the Python float its row holds (0.1 is 0.10000000149011612), not float32's shortest."""
    table = pa.table({"f": pa.array([0.1, 1.5, None, 3.0, 1e-7], pa.float32())})
    rows = [[v] for v in table["f"].to_pylist()]
    from_rows = Publisher("memory://f32-rows", name="t").publish_sync(rows, headers=["f"])
    assert Publisher("memory://f32-arrow", name="t").publish_sync(table).csv_sha256 == from_rows.csv_sha256


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_times_and_timestamps_of_every_unit_write_what_their_rows_write(unit: str) -> None:
    """Arrow writes as many fraction digits as the unit has; str() writes six, or none: the same text either way."""
    moments = [datetime.datetime(1, 1, 1), datetime.datetime(1969, 12, 31, 23, 59, 59, 500000), None]
    moments += [datetime.datetime(2026, 11, 26, 5, 37, 8, 123000), datetime.datetime(9999, 12, 31, 23, 59, 59)]
    if unit == "ns":
        moments = moments[1:-1]  # years 1 and 9999 are out of nanoseconds' range
    clock = pa.time32(unit) if unit in ("s", "ms") else pa.time64(unit)
    times = [None if m is None else m.time() for m in moments]
    if unit == "s":
        moments = [None if m is None else m.replace(microsecond=0) for m in moments]
        times = [None if t is None else t.replace(microsecond=0) for t in times]
    elif unit == "ms":
        moments = [None if m is None else m.replace(microsecond=m.microsecond // 1000 * 1000) for m in moments]
        times = [None if t is None else t.replace(microsecond=t.microsecond // 1000 * 1000) for t in times]
    columns = {"at": pa.array(moments, pa.timestamp(unit)), "t": pa.array(times, clock)}
    for tz in ("UTC", "+00:00", "Etc/UTC"):
        columns[tz] = pa.array(moments, pa.timestamp(unit)).cast(pa.timestamp(unit, tz))
    inland = [None if m is None else m.replace(year=min(max(m.year, 2), 9998)) for m in moments]  # no year 0
    columns["New York"] = pa.array(inland, pa.timestamp(unit)).cast(pa.timestamp(unit, "America/New_York"))
    table = pa.table(columns)
    rows = [list(row.values()) for row in table.to_pylist()]
    from_rows = Publisher(f"memory://clock-rows-{unit}", name="t").publish_sync(rows, headers=list(columns))
    from_arrow = Publisher(f"memory://clock-arrow-{unit}", name="t").publish_sync(table)
    assert from_arrow.csv_sha256 == from_rows.csv_sha256


def test_date64_columns_write_the_dates_of_their_rows() -> None:
    """date64 (milliseconds) writes the dates of its rows, also a value off a day boundary (Python floors it)."""
    date = datetime.date
    days = [date(1, 1, 1), date(999, 12, 31), date(1969, 12, 31), None, date(9999, 12, 31)]
    table = pa.table({"d": pa.concat_arrays([pa.array(days, pa.date64()), pa.array([-1], pa.date64())])})
    days.append(date(1969, 12, 31))
    from_rows = Publisher("memory://date64-rows", name="t").publish_sync([[d] for d in days], headers=["d"])
    assert Publisher("memory://date64-arrow", name="t").publish_sync(table).csv_sha256 == from_rows.csv_sha256


@pytest.mark.parametrize("kind", ["rows", "arrow-reader", "sqlite-cursor"])
async def test_a_source_that_fails_midway_writes_nothing(kind: str, make_destination: Any) -> None:
    """A row generator, an Arrow stream or a cursor that raises after some rows leaves the destination as it was."""
    destination = make_destination("memory")
    publisher = destination.publisher(on_schema_change="allow")  # the cursor's columns are its own
    await publisher.publish(list(MESSY))
    before = snapshot(destination)

    def rows() -> Iterator[dict[str, Any]]:
        yield from MESSY * 500
        raise RuntimeError("the source broke")

    if kind == "rows":
        source: Any = rows()
    elif kind == "arrow-reader":
        schema = arrow_table().schema
        batches = (pa.RecordBatch.from_pylist(batch, schema=schema) for batch in _chunks(rows(), 100))
        source = pa.RecordBatchReader.from_batches(schema, batches)
    else:
        con = sqlite3.connect(":memory:")
        con.create_function("boom", 1, lambda n: 1 // (n < 1500))  # ZeroDivisionError from row 1500 on
        con.execute("create table t (n)")
        con.executemany("insert into t values (?)", [(i,) for i in range(3000)])
        source = con.execute("select n, boom(n) from t")
    with pytest.raises(Exception, match=r"broke|user-defined function raised"):
        await publisher.publish(source)
    assert snapshot(destination) == before


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@pytest.mark.parametrize("mock", [AsyncMock, MagicMock])
async def test_a_mocked_tracker_is_read_through_its_contract(mock: type, make_destination: Any) -> None:
    """A test double of the tracker (iterable, like every mock) is read through get_all_books_csv_data()."""
    tracker = mock()
    tracker.get_all_books_csv_data.return_value = list(MESSY)
    destination = make_destination("memory")
    result = await destination.publisher().publish(tracker)
    assert result.record_count == len(MESSY)
    assert published_rows(destination) == expected()
    tracker.get_all_books_csv_data.assert_called_once_with()


@pytest.mark.parametrize("source", [42, "a,b\r\n", object(), {"Barcode": "B1"}])
def test_an_unsupported_source_lists_what_is_supported(source: Any) -> None:
    """A source of a kind csvpublish cannot read is an InputError naming the kinds it can."""
    with pytest.raises(InputError, match=r"DataFrame.*RecordBatchReader.*DB-API cursor"):
        Publisher("memory://unsupported", name="books").publish_sync(source)


def test_a_cursor_without_a_query_says_to_execute_one() -> None:
    """A DB-API cursor whose execute() was not called is an InputError saying so, not an empty CSV."""
    with pytest.raises(InputError, match=r"call execute\(\)"):
        Publisher("memory://cursor", name="books").publish_sync(sqlite3.connect(":memory:").cursor())


def test_a_pandas_index_is_not_written_and_nan_is_an_empty_field() -> None:
    """A DataFrame publishes its columns only (reset_index() keeps an index); NaN and NaT are empty fields."""
    frame = pd.DataFrame({"a": [1.5, float("nan")], "t": pd.to_datetime(["2026-11-26", None])}, index=["x", "y"])
    publisher = Publisher("memory://pandas-index", name="books")
    result = publisher.publish_sync(frame)
    assert result.columns == ["a", "t"]
    rows = list(csv.reader(io.StringIO(_latest_text(publisher), newline="")))
    assert rows == [["a", "t"], ["1.5", "2026-11-26 00:00:00"], ["", ""]]
    kept = Publisher("memory://pandas-index-kept", name="books").publish_sync(frame.reset_index())
    assert kept.columns == ["index", "a", "t"]


def test_pandas_and_polars_without_pyarrow_are_read_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pyarrow a DataFrame is read row by row and writes the same bytes; another Arrow object asks for it."""
    with_arrow = {k: Publisher(f"memory://a-{k}", name="b").publish_sync(SOURCES[k][0]()) for k in ("pandas", "polars")}
    monkeypatch.setattr(csvpublish.sources, "_pyarrow", lambda: None)  # as if pyarrow were not installed
    for kind, before in with_arrow.items():
        after = Publisher(f"memory://no-{kind}", name="b").publish_sync(SOURCES[kind][0]())
        assert after.csv_sha256 == before.csv_sha256, kind
    with pytest.raises(InputError, match=r"pip install 'csvpublish\[arrow\]'"):
        Publisher("memory://no-arrow", name="b").publish_sync(Capsule(arrow_table()))


def test_headers_rename_the_columns_of_an_arrow_source() -> None:
    """headers= renames an Arrow table's columns; a count that does not match is an InputError."""
    renamed = Publisher("memory://renamed", name="books").publish_sync(arrow_table(), headers=list("ABCDE"))
    assert renamed.columns == list("ABCDE")
    with pytest.raises(InputError, match="headers= names 2 columns but the table has 5"):
        Publisher("memory://renamed-bad", name="books").publish_sync(arrow_table(), headers=["A", "B"])


def _latest_text(publisher: Publisher, name: str = "books_latest.csv.gz") -> str:
    st = publisher.storage
    return gzip.decompress(st.fs.cat_file(st.path(name))).decode("utf-8-sig")


DIALECT_CASES = [
    pytest.param({"delimiter": "\t"}, "books_latest.tsv.gz", id="tab"),
    pytest.param({"delimiter": ";"}, "books_latest.csv.gz", id="semicolon"),
    pytest.param({"delimiter": "|", "lineterminator": "\n"}, "books_latest.csv.gz", id="pipe-lf"),
    pytest.param({"header": False}, "books_latest.csv.gz", id="no-header"),
    pytest.param({"bom": True}, "books_latest.csv.gz", id="bom"),
]


@pytest.mark.parametrize(("dialect", "latest"), DIALECT_CASES)
@pytest.mark.parametrize("kind", ["rows", "arrow-table"])
async def test_dialects_read_back_with_csv_and_pandas(
    make_destination: Any, kind: str, dialect: dict[str, Any], latest: str
) -> None:
    """Each dialect publishes what the csv module and pandas read back with that dialect; the manifest says it."""
    destination = make_destination("memory")
    publisher = destination.publisher(**dialect)
    result = await publisher.publish(SOURCES[kind][0]())
    raw = gzip.decompress(destination.read(latest))
    assert raw.startswith(b"\xef\xbb\xbf") == dialect.get("bom", False)
    terminator = dialect.get("lineterminator", "\r\n").encode()
    assert raw.endswith(terminator) and (terminator == b"\r\n" or b"\r\n" not in raw.replace(b'"crlf\r\nx"', b""))
    header = dialect.get("header", True)
    delimiter = dialect.get("delimiter", ",")
    read = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=delimiter))
    assert read == (expected() if header else expected()[1:])
    frame = pd.read_csv(
        io.BytesIO(raw),
        sep=delimiter,
        header=0 if header else None,
        dtype=str,
        keep_default_na=False,
        encoding="utf-8-sig",
    )
    assert frame.values.tolist() == expected()[1:]
    manifest = json.loads(destination.read("books_latest.manifest.json"))
    assert manifest["dialect"]["delimiter"] == delimiter
    assert manifest["dialect"]["header"] == header
    assert result.record_count == len(MESSY)
    assert (await publisher.verify(strict=True)).record_count == len(MESSY)


@pytest.mark.parametrize("backend", backends("user_metadata"))
async def test_a_tab_delimited_snapshot_is_stored_as_tsv(make_destination: Any, backend: str) -> None:
    """A tab delimiter publishes .tsv with text/tab-separated-values (plain) and lists it as a version."""
    destination = make_destination(backend)
    publisher = destination.publisher(delimiter="\t", compression=False)
    result = await publisher.publish(list(MESSY))
    assert result.latest_uri.endswith("books_latest.tsv")
    st = destination.reader()
    info = st.fs.info(st.path("books_latest.tsv"))
    content_type, _ = content_settings(info)
    assert content_type is not None and content_type.startswith("text/tab-separated-values")
    assert [v.path for v in await publisher.versions()] == [f"timestamped/books_{result.version}.tsv"]


async def test_export_csv_to_file_takes_a_dialect_and_any_source(tmp_path: Path) -> None:
    """export_csv_to_file writes a DataFrame (or any source) in the dialect asked for."""
    path = tmp_path / "books.tsv"
    count = await export_csv_to_file(SOURCES["polars"][0](), path, delimiter="\t", lineterminator="\n", bom=True)
    assert count == len(MESSY)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf" + "\t".join(COLUMNS).encode() + b"\n")
    read = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter="\t"))
    assert read == expected()


def test_publish_file_reads_the_files_line_ends_and_bom(tmp_path: Path) -> None:
    """An existing TSV file with a BOM and LF line ends: the manifest records both, the columns and the count."""
    path = tmp_path / "books.tsv"
    asyncio.run(export_csv_to_file(list(MESSY), path, delimiter="\t", lineterminator="\n", bom=True))
    publisher = Publisher("memory://publish-file-dialect", name="books", delimiter="\t")
    result = publisher.publish_file_sync(path)
    assert (result.record_count, result.columns) == (len(MESSY), COLUMNS)
    st = publisher.storage
    manifest = json.loads(st.fs.cat_file(st.path("books_latest.manifest.json")))
    told = {"delimiter": "\t", "lineTerminator": "\n", "header": True, "bom": True, "quoteChar": '"'}
    assert manifest["dialect"] == told
    assert gzip.decompress(st.fs.cat_file(st.path("books_latest.tsv.gz"))) == path.read_bytes()
