"""The Data Package descriptors: beside the latest and each archive, valid for frictionless, and true to the bytes."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from csvpublish import Publisher
from csvpublish.datapackage import descriptor

from .conftest import Destination, backends
from .faults import Faults
from .helpers import rows


def descriptor_of(destination: Destination, rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(destination.read(rel))
    return data


def assert_describes(destination: Destination, rel: str, obj: str) -> dict[str, Any]:
    """The descriptor at ``rel`` names ``obj`` beside it, with its stored size and sha256."""
    resource = descriptor_of(destination, rel)["resources"][0]
    data = destination.read(obj)
    assert resource["path"] == obj.rsplit("/", 1)[-1]
    assert resource["bytes"] == len(data)
    assert resource["hash"] == f"sha256:{hashlib.sha256(data).hexdigest()}"
    return resource  # type: ignore[no-any-return]


def validate(descriptor: Path) -> Any:
    import frictionless

    return frictionless.validate(str(descriptor))


def errors(report: Any) -> list[str]:
    return [error.type for task in report.tasks for error in task.errors] + [e.type for e in report.errors]


@pytest.mark.parametrize("backend", backends())
async def test_a_descriptor_is_beside_the_latest_and_each_archive(make_destination: Any, backend: str) -> None:
    """After two publishes and a restore, each descriptor names its object with that object's bytes and sha256."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = await publisher.publish(rows(20, "first"))
    second = await publisher.publish(rows(30, "second"))
    for result in (first, second):
        archive = f"timestamped/books_{result.version}.csv.gz"
        assert_describes(destination, f"timestamped/books_{result.version}.datapackage.json", archive)
    latest = assert_describes(destination, "books.datapackage.json", "books_latest.csv.gz")
    assert latest["hash"] == f"sha256:{second.sha256}"
    assert [f["name"] for f in latest["schema"]["fields"]] == ["Barcode", "Title", "Note"]
    await publisher.restore(first.version)
    restored = assert_describes(destination, "books.datapackage.json", "books_latest.csv.gz")
    assert restored["hash"] == f"sha256:{first.sha256}"


async def test_frictionless_finds_the_local_latest_valid_and_a_tampered_one_invalid(make_destination: Any) -> None:
    """``frictionless.validate`` passes the latest's and an archive's descriptor, and fails once the latest changes."""
    destination = make_destination("local")
    root = destination.local_root
    assert root is not None
    result = await destination.publisher().publish(rows(50))
    assert validate(root / "books.datapackage.json").valid
    archive_descriptor = root / "timestamped" / f"books_{result.version}.datapackage.json"
    assert validate(archive_descriptor).valid
    latest = root / "books_latest.csv.gz"
    latest.write_bytes(latest.read_bytes() + b"\0")
    report = validate(root / "books.datapackage.json")
    assert not report.valid
    assert {"hash-count", "byte-count"} <= set(errors(report))
    assert validate(archive_descriptor).valid


@pytest.mark.parametrize(
    "options",
    [{"compression": False}, {"delimiter": "\t", "lineterminator": "\n"}, {"bom": True}, {"delimiter": ";"}],
    ids=["plain", "tsv", "bom", "semicolon"],
)
async def test_each_dialect_is_described_so_that_frictionless_reads_it(make_destination: Any, options: Any) -> None:
    """Plain, tab-separated, with a byte-order mark or another delimiter: valid, and read back as the rows."""
    import frictionless

    destination = make_destination("local")
    root = destination.local_root
    assert root is not None
    source = [{"Barcode": "B1", "Title": 'Emma; a "novel"\nin two lines'}, {"Barcode": "B2", "Title": "Dune"}]
    await destination.publisher(**options).publish(source)
    described = root / "books.datapackage.json"
    report = validate(described)
    assert report.valid, errors(report)
    resource = frictionless.Package(str(described)).resources[0]
    assert resource.read_rows() == source


async def test_column_types_become_table_schema_types(make_destination: Any) -> None:
    """Arrow types map to integer, number, boolean, date, datetime, time (else string), and the data validates."""
    destination = make_destination("local")
    root = destination.local_root
    assert root is not None
    moment = datetime.datetime(2026, 11, 26, 5, 37, 8, 123000)
    table = pa.table(
        {
            "id": [1, None],
            "price": [1.5, float("nan")],
            "ok": [True, None],
            "day": [moment.date()] * 2,
            "at": [moment, None],
            "at_utc": pa.array([moment] * 2, pa.timestamp("us", tz="UTC")),
            "clock": [moment.time()] * 2,
            "title": ["Dune", None],
            "span": pa.array([datetime.timedelta(seconds=3)] * 2),
        }
    )
    await destination.publisher().publish(table)
    fields = descriptor_of(destination, "books.datapackage.json")["resources"][0]["schema"]["fields"]
    types = {f["name"]: f["type"] for f in fields}
    assert types == {
        "id": "integer",
        "price": "number",
        "ok": "boolean",
        "day": "date",
        "at": "datetime",
        "at_utc": "datetime",
        "clock": "time",
        "title": "string",
        "span": "string",
    }
    report = validate(root / "books.datapackage.json")
    assert report.valid, errors(report)


async def test_the_publishers_key_is_the_primary_key(make_destination: Any) -> None:
    """A publisher with a ``key`` names it as the descriptors' primaryKey, which frictionless then checks."""
    destination = make_destination("local")
    root = destination.local_root
    assert root is not None
    publisher = destination.publisher()
    publisher.key = ["Barcode"]  # type: ignore[attr-defined]  # the attribute a Publisher's key= sets
    result = await publisher.publish(rows(10))
    for rel in ("books.datapackage.json", f"timestamped/books_{result.version}.datapackage.json"):
        assert descriptor_of(destination, rel)["resources"][0]["schema"]["primaryKey"] == ["Barcode"]
    assert validate(root / "books.datapackage.json").valid
    manifest = await publisher.latest()
    assert manifest is not None
    assert "primaryKey" not in descriptor(manifest, "x.csv.gz")["resources"][0]["schema"]
    assert "primaryKey" not in descriptor(manifest, "x.csv.gz", primary_key="Isbn")["resources"][0]["schema"]


@pytest.mark.parametrize("backend", ["memory", "local"])
async def test_prune_and_cleanup_remove_an_archives_descriptor(make_destination: Any, backend: str) -> None:
    """A pruned archive's descriptor goes with it; cleanup removes a descriptor whose archive is gone."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    old = await publisher.publish(rows(5, "old"))
    middle = await publisher.publish(rows(5, "middle"))
    await publisher.publish(rows(5, "new"))
    assert await publisher.prune(keep=2) == [old.version]
    assert f"timestamped/books_{old.version}.datapackage.json" not in destination.files()
    destination.delete(f"timestamped/books_{middle.version}.csv.gz")
    destination.delete(f"timestamped/books_{middle.version}.manifest.json")
    report = await publisher.cleanup()
    assert destination.reader().uri(f"timestamped/books_{middle.version}.datapackage.json") in report.removed
    assert not any(rel.endswith(f"{middle.version}.datapackage.json") for rel in destination.files())


@pytest.mark.parametrize("backend", backends("faults"))
async def test_a_failed_latest_descriptor_write_keeps_the_publish(
    make_destination: Any, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The latest's descriptor is best effort: its failure is logged, the latest moves, the next publish writes it."""
    destination = make_destination(backend)
    faults = Faults()
    publisher = Publisher(destination.faulty(faults), name="books")
    first = await publisher.publish(rows(10, "first"))
    faults.fail("descriptor", destination.caps.denied, where=r"(^|/)\.?books\.datapackage\.json", times=None)
    second = await publisher.publish(rows(10, "second"))
    assert faults.rules[0].fired
    assert second.latest_updated and (await publisher.verify(strict=True)).version == second.version
    assert "writing the latest's descriptor failed" in caplog.text
    stale = descriptor_of(destination, "books.datapackage.json")["resources"][0]
    assert stale["hash"] == f"sha256:{first.sha256}"
    archive = f"timestamped/books_{second.version}.csv.gz"
    assert_describes(destination, f"timestamped/books_{second.version}.datapackage.json", archive)
    faults.rules.clear()
    third = await publisher.publish(rows(10, "third"))
    fixed = assert_describes(destination, "books.datapackage.json", "books_latest.csv.gz")
    assert fixed["hash"] == f"sha256:{third.sha256}"


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("decompress", [False, True], ids=["stored", "decompressed"])
async def test_a_download_with_its_descriptor_validates_until_it_is_changed(
    make_destination: Any, backend: str, decompress: bool, tmp_path: Path
) -> None:
    """``download(..., datapackage=True)`` from any backend writes a descriptor of the file it wrote (as stored or
    decompressed) that ``frictionless.validate`` passes, with the publisher's key, and fails once the file changes."""
    destination = make_destination(backend)
    await destination.publisher(key="Barcode").publish(rows(30))
    folder = tmp_path / "consumer"
    folder.mkdir()
    name = "books.csv" if decompress else "books.csv.gz"
    result = await destination.publisher(key="Barcode").download(folder / name, decompress=decompress, datapackage=True)
    assert result.descriptor == str(folder / "books.datapackage.json")
    resource = json.loads(Path(result.descriptor).read_text())["resources"][0]
    assert (resource["path"], resource["bytes"]) == (name, (folder / name).stat().st_size)
    assert ("compression" in resource) is not decompress
    assert resource["schema"]["primaryKey"] == ["Barcode"]
    assert validate(Path(result.descriptor)).valid
    (folder / name).write_bytes((folder / name).read_bytes() + b"\0")  # frictionless raises on a cut gzip
    assert not validate(Path(result.descriptor)).valid


async def test_a_descriptor_needs_a_path_to_describe(make_destination: Any) -> None:
    """A download to a stream cannot carry a descriptor: InputError, before anything is read."""
    import io

    from csvpublish import InputError

    destination = make_destination("memory")
    await destination.publisher().publish(rows(3))
    with pytest.raises(InputError, match="give a path"):
        await destination.publisher().download(io.BytesIO(), datapackage=True)
