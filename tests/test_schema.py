"""The schema guard: a publish whose columns differ from the latest's is refused, leaving everything as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from csvpublish import InputError, Publisher, SchemaChangedError, SnapshotRejectedError

from .conftest import backends
from .helpers import incomplete_uploads, published_objects, rows, snapshot
from .test_cli import assert_one_line_error, ok_json, run


@pytest.mark.parametrize("backend", backends())
async def test_other_columns_are_refused_and_nothing_changes(make_destination: Any, backend: str) -> None:
    """Added, removed, renamed or reordered columns raise SchemaChangedError naming them; nothing is written."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    await publisher.publish(rows(20))  # Barcode, Title, Note
    before = snapshot(destination)
    cases = {
        "added: Year": [{**r, "Year": "1965"} for r in rows(5)],
        "removed: Note": [{"Barcode": r["Barcode"], "Title": r["Title"]} for r in rows(5)],
        "added: Name; removed: Title": [{"Barcode": r["Barcode"], "Name": r["Title"], "Note": ""} for r in rows(5)],
        "order changed": [{"Title": r["Title"], "Barcode": r["Barcode"], "Note": r["Note"]} for r in rows(5)],
    }
    for changes, source in cases.items():
        expected = rf"\(version \d{{8}}_\d{{6}}\): {changes}; nothing was written"
        with pytest.raises(SchemaChangedError, match=expected) as refused:
            await publisher.publish(source)
        assert isinstance(refused.value, SnapshotRejectedError)
        assert 'on_schema_change="allow"' in str(refused.value) and "--allow-schema-change" in str(refused.value)
        assert snapshot(destination) == before, changes
    assert incomplete_uploads(destination) == []
    assert await publisher.publish(rows(7, "same columns")) is not None


@pytest.mark.parametrize("backend", backends())
async def test_allow_publishes_other_columns_and_they_become_the_schema(make_destination: Any, backend: str) -> None:
    """With on_schema_change="allow" new columns are published; the next refusing publish is checked against them."""
    destination = make_destination(backend)
    await destination.publisher().publish(rows(10))
    wider = [{**r, "Year": "1965"} for r in rows(10)]
    result = await destination.publisher(on_schema_change="allow").publish(wider)
    assert result.columns == ["Barcode", "Title", "Note", "Year"] and result.latest_updated
    with pytest.raises(SchemaChangedError, match="removed: Year"):
        await destination.publisher().publish(rows(10))
    assert (await destination.publisher().publish(wider)).latest_updated
    assert destination.files() == published_objects(destination.publisher())


def test_on_schema_change_must_be_refuse_or_allow() -> None:
    """Any other value of on_schema_change is an InputError that names both."""
    with pytest.raises(InputError, match=r"'refuse' .* or 'allow'"):
        Publisher("memory://schema-bad", name="books", on_schema_change="warn")  # type: ignore[arg-type]


async def test_the_first_publish_sets_the_schema_and_a_restore_may_change_it(make_destination: Any) -> None:
    """Nothing published: any columns; restoring an older version with other columns is allowed and sets them."""
    destination = make_destination("memory")
    publisher = destination.publisher()
    narrow = await publisher.publish([{"Barcode": "1"}])
    await destination.publisher(on_schema_change="allow").publish(rows(3))
    restored = await publisher.restore(narrow.version)
    assert restored.columns == ["Barcode"]
    with pytest.raises(SchemaChangedError, match="added: Title, Note"):
        await publisher.publish(rows(3))
    assert (await publisher.publish([{"Barcode": "2"}])).latest_updated


async def test_the_columns_are_checked_before_the_rows_are_read(make_destination: Any, tmp_path: Path) -> None:
    """The refusal comes from the first batch: a source that would fail later is never read that far."""
    destination = make_destination("local")
    publisher = destination.publisher()
    await publisher.publish(rows(5))
    before = snapshot(destination)
    pulled = 0

    def endless() -> Iterator[dict[str, str]]:
        nonlocal pulled
        while True:
            pulled += 1
            if pulled > 10_000:
                raise AssertionError("read past the first batches")
            yield {"Barcode": str(pulled), "Other": "x"}

    local = tmp_path / "staging" / "books.csv"
    with pytest.raises(SchemaChangedError, match="added: Other; removed: Title, Note"):
        await publisher.publish(endless(), local_path=local)
    assert pulled <= 100  # one batch
    assert not local.exists()  # the pass stopped at the header: no local CSV either
    assert snapshot(destination) == before


@pytest.mark.parametrize("kind", ["arrow", "file", "headers"])
async def test_every_kind_of_source_is_checked(make_destination: Any, tmp_path: Path, kind: str) -> None:
    """An Arrow table, a CSV file and headers= are checked like records; headers= renames count as changes."""
    destination = make_destination("memory")
    publisher = destination.publisher()
    await publisher.publish(rows(5))
    before = snapshot(destination)
    path = tmp_path / "books.csv"
    path.write_bytes(b"Barcode,Title,Note,Year\r\n1,t,,1965\r\n")
    publish = {
        "arrow": lambda: publisher.publish(pa.table({"Barcode": ["1"], "Title": ["t"], "Note": [""], "Year": [1965]})),
        "file": lambda: publisher.publish_file(path),
        "headers": lambda: publisher.publish([["1", "t", "", "1965"]], headers=["Barcode", "Title", "Note", "Year"]),
    }[kind]
    with pytest.raises(SchemaChangedError, match="added: Year"):
        await publish()
    assert snapshot(destination) == before
    same = pa.table({"Barcode": ["1"], "Title": ["t"], "Note": [""]})
    assert (await publisher.publish(same)).latest_updated


async def test_a_file_without_a_header_has_no_columns_to_check(make_destination: Any, tmp_path: Path) -> None:
    """A CSV published with header=False has unknown columns: it is never refused, and sets no schema."""
    destination = make_destination("memory")
    await destination.publisher().publish(rows(3))
    path = tmp_path / "books.csv"
    path.write_bytes(b"1,t\r\n2,u\r\n")
    headless = Publisher(destination.reader(), name="books", header=False)
    assert (await headless.publish_file(path)).columns == []
    assert (await destination.publisher().publish([{"Any": "columns"}])).latest_updated


def test_the_cli_refuses_other_columns_unless_allowed(tmp_path: Path) -> None:
    """``csvpublish publish`` exits 1 with the differences on one line; --allow-schema-change publishes."""
    dest, books = tmp_path / "published", tmp_path / "books.csv"
    books.write_bytes(b"Barcode,Title\r\nB1,Dune\r\n")
    assert run("publish", str(books), str(dest)).returncode == 0
    books.write_bytes(b"Barcode,Title,Year\r\nB1,Dune,1965\r\n")
    line = assert_one_line_error(run("publish", str(books), str(dest)))
    assert "added: Year" in line and "--allow-schema-change" in line
    published = ok_json(run("publish", str(books), str(dest), "--allow-schema-change", "--json"))
    assert published["columns"] == ["Barcode", "Title", "Year"]
