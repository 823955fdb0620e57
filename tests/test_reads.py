"""Verified reads: download, read and read_manifest give the published bytes and rows, checked as they stream,
refuse what does not match its manifest, and need read and list permissions only."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest

from csvpublish import AccessDeniedError, IntegrityError, Publisher, VersionNotFoundError
from csvpublish.publisher import reading, verify
from csvpublish.publisher.lease import Marker

from .conftest import Destination, backends
from .helpers import rows
from .readonly import read_only

MESSY = [
    {"Barcode": "1", "Title": "comma, inside", "Note": 'a "quoted" word'},
    {"Barcode": "2", "Title": "line\nfeed", "Note": "carriage\rreturn"},
    {"Barcode": "3", "Title": "crlf\r\nboth", "Note": ""},
    {"Barcode": "4", "Title": "Ünïcødé ✓ 漢字 😀", "Note": "line\u2028separator"},
    {"Barcode": "", "Title": "", "Note": ""},
    {"Barcode": " lead", "Title": "trail ", "Note": '"'},
    {"Barcode": "5", "Title": '","', "Note": "\ttab;pipe|"},
]
COLUMNS = ["Barcode", "Title", "Note"]


def as_lists(records: list[dict[str, str]]) -> list[list[str]]:
    return [[r[c] for c in COLUMNS] for r in records]


async def read_all(publisher: Publisher, version: Any = None) -> list[list[str]]:
    return [row async for row in publisher.read(version)]


def latest_name(compression: bool) -> str:
    return "books_latest.csv.gz" if compression else "books_latest.csv"


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    """An empty folder to download to (a local destination lives elsewhere under tmp_path)."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


def entries(folder: Path) -> set[str]:
    """Everything in a folder, hidden temp files included."""
    return {p.name for p in folder.iterdir()}


# --- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("backend", backends())
async def test_download_and_read_give_back_what_was_published(
    make_destination: Any, backend: str, compression: bool, downloads: Path
) -> None:
    """Messy strings come back whole: the download holds the stored bytes (or their CSV) and read() yields the rows."""
    destination = make_destination(backend)
    publisher = destination.publisher(compression=compression)
    published = await publisher.publish(MESSY)
    stored = destination.read(latest_name(compression))
    csv_bytes = gzip.decompress(stored) if compression else stored
    folder = downloads

    result = await publisher.download(folder / "as-stored")
    assert (folder / "as-stored").read_bytes() == stored
    assert (result.version, result.size, result.sha256, result.decompressed) == (
        published.version, published.size, published.sha256, False,
    )  # fmt: skip
    assert (result.record_count, result.path, result.notes) == (len(MESSY), str(folder / "as-stored"), [])
    plain = publisher.download_sync(folder / "plain.csv", decompress=True)
    assert (folder / "plain.csv").read_bytes() == csv_bytes
    assert (plain.sha256, plain.size, plain.decompressed) == (published.csv_sha256, len(csv_bytes), compression)
    assert entries(folder) == {"as-stored", "plain.csv"}  # no temp file left beside them

    parsed = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8"), newline="")))
    assert parsed == [COLUMNS, *as_lists(MESSY)]
    assert await read_all(publisher) == as_lists(MESSY)  # the header is not a row
    assert list(publisher.read_sync()) == as_lists(MESSY)
    manifest = await publisher.read_manifest()
    assert (manifest.columns, manifest.version, manifest.sha256) == (COLUMNS, published.version, published.sha256)
    archived = publisher.read_manifest_sync(published.version)
    assert archived.archive == f"timestamped/books_{published.version}{'.csv.gz' if compression else '.csv'}"


@pytest.mark.parametrize("chunk", [1, 7, 4096])
@pytest.mark.parametrize(
    "dialect",
    [{}, {"delimiter": "\t", "lineterminator": "\n"}, {"delimiter": ";", "bom": True}, {"header": False}],
    ids=["default", "tsv", "semicolon-bom", "no-header"],
)
@pytest.mark.parametrize("compression", [True, False], ids=["gzip", "plain"])
async def test_rows_survive_any_chunking_in_every_dialect(
    make_destination: Any, monkeypatch: pytest.MonkeyPatch, compression: bool, dialect: dict[str, Any], chunk: int
) -> None:
    """Stored chunks and CSV pieces of a few bytes split records, quoted line ends and UTF-8 characters anywhere."""
    monkeypatch.setattr(reading, "PART_SIZE", chunk)
    monkeypatch.setattr(verify, "PIECE", max(chunk // 2, 1))
    publisher = make_destination("memory").publisher(compression=compression, **dialect)
    await publisher.publish(MESSY * 3)
    assert await read_all(publisher) == as_lists(MESSY * 3)
    assert list(publisher.read_sync()) == as_lists(MESSY * 3)


async def test_rows_of_a_snapshot_larger_than_a_chunk_stream_whole(make_destination: Any) -> None:
    """A few MiB of rows (several stored chunks and many CSV pieces) read back row for row, in order."""
    publisher = make_destination("local").publisher()
    big = [{"Barcode": str(i), "Title": f"multi\nline {i}, \"quoted\"", "Note": "ü" * (i % 300)} for i in range(40_000)]
    await publisher.publish(big)
    count = 0
    async for row in publisher.read():
        assert row == [big[count]["Barcode"], big[count]["Title"], big[count]["Note"]]
        count += 1
    assert count == len(big)


@pytest.mark.parametrize("backend", backends())
async def test_a_named_version_downloads_and_reads(make_destination: Any, backend: str, downloads: Path) -> None:
    """download(version=...) and read(version) give that archive, named by identifier or VersionInfo."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = await publisher.publish(rows(5, "first"))
    await publisher.publish(rows(7, "second"))
    info = next(v for v in await publisher.versions() if v.version == first.version)
    by_name = await publisher.download(downloads / "a.csv.gz", version=first.version)
    by_info = await publisher.download(downloads / "b.csv.gz", version=info)
    archive = destination.read(f"timestamped/books_{first.version}.csv.gz")
    assert (downloads / "a.csv.gz").read_bytes() == (downloads / "b.csv.gz").read_bytes() == archive
    assert by_name.version == by_info.version == first.version
    assert by_name.uri.endswith(f"timestamped/books_{first.version}.csv.gz")
    assert [row[0] for row in await read_all(publisher, first.version)] == [f"first{i}" for i in range(5)]
    assert (await publisher.read_manifest(info)).record_count == 5
    with pytest.raises(VersionNotFoundError):
        await publisher.download(downloads / "c.csv.gz", version="20000101_000000")
    assert not (downloads / "c.csv.gz").exists()


# --- what does not match is refused ----------------------------------------------------------------------


def tamper_object(destination: Destination) -> None:
    destination.write("books_latest.csv.gz", gzip.compress(b"Barcode,Title,Note\r\nforged,x,y\r\n", mtime=0))


def truncate_object(destination: Destination) -> None:
    destination.write("books_latest.csv.gz", destination.read("books_latest.csv.gz")[:-12])


def tamper_manifest(destination: Destination) -> None:
    manifest = json.loads(destination.read("books_latest.manifest.json"))
    manifest["sha256"], manifest["record_count"] = "0" * 64, 99
    destination.write("books_latest.manifest.json", json.dumps(manifest).encode())


@pytest.mark.parametrize("damage", [tamper_object, truncate_object, tamper_manifest])
@pytest.mark.parametrize("backend", backends())
async def test_bytes_that_do_not_match_their_manifest_raise_and_leave_no_file(
    make_destination: Any, backend: str, damage: Any, downloads: Path
) -> None:
    """A changed or truncated latest, or a manifest that claims other bytes: IntegrityError, nothing at the path."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    await publisher.publish(rows(20))
    (downloads / "other.txt").write_text("kept")
    damage(destination)
    for decompress in (False, True):
        with pytest.raises(IntegrityError, match=r"the manifest says|gzip"):
            await publisher.download(downloads / "books.csv", decompress=decompress)
        with pytest.raises(IntegrityError):
            publisher.download_sync(downloads / "books.csv", decompress=decompress)
    assert entries(downloads) == {"other.txt"}  # no file at the path, no temp file beside it
    with pytest.raises(IntegrityError):
        await read_all(publisher)
    with pytest.raises(IntegrityError):
        list(publisher.read_sync())


@pytest.mark.parametrize("backend", backends())
async def test_a_damaged_archive_is_refused_by_version(make_destination: Any, backend: str, downloads: Path) -> None:
    """An archived version whose bytes changed fails download(version=...) and read(version)."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    result = await publisher.publish(rows(10))
    archive = f"timestamped/books_{result.version}.csv.gz"
    destination.write(archive, destination.read(archive)[:-8] + b"\0" * 8)
    with pytest.raises(IntegrityError, match="sha256"):
        await publisher.download(downloads / "old.csv.gz", version=result.version)
    with pytest.raises(IntegrityError):
        await read_all(publisher, result.version)
    assert entries(downloads) == set()
    assert (await publisher.download(downloads / "latest.csv.gz")).version == result.version  # the latest is intact


async def test_a_download_to_an_existing_file_replaces_it_only_when_the_check_passes(
    make_destination: Any, downloads: Path
) -> None:
    """A failed download leaves the file that was at the path as it was; a good one replaces it."""
    destination = make_destination("local")
    publisher = destination.publisher()
    await publisher.publish(rows(3))
    target = downloads / "books.csv.gz"
    target.write_bytes(b"previous")
    truncate_object(destination)
    with pytest.raises(IntegrityError):
        await publisher.download(target)
    assert target.read_bytes() == b"previous"
    assert entries(downloads) == {"books.csv.gz"}
    await publisher.restore((await publisher.versions())[0])
    await publisher.download(target)
    assert target.read_bytes() == destination.read("books_latest.csv.gz")


# --- a promotion in progress -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("named_by", "backend"),
    [*(pytest.param("lease", p.values[0], id=f"lease-{p.values[0]}") for p in backends()),
     *(pytest.param("metadata", p.values[0], id=f"metadata-{p.values[0]}") for p in backends("user_metadata"))],
)  # fmt: skip
async def test_a_promotion_in_progress_is_read_as_the_version_it_holds(
    make_destination: Any, named_by: str, backend: str, downloads: Path
) -> None:
    """The latest holds a newer version than its manifest names (the lease, or the object's metadata, says which):
    download and read check it against that version's manifest and say so, not report corruption."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    await publisher.publish(rows(4, "first"))
    previous = destination.read("books_latest.manifest.json")
    second = await publisher.publish(rows(6, "second"))
    destination.write("books_latest.manifest.json", previous)  # as if between the copy and the manifest
    if named_by == "lease":
        destination.write(".csvpublish/books.latest.lock", Marker.new(second.version).to_json())
    result = await publisher.download(downloads / "books.csv.gz")
    assert (result.version, result.sha256, result.record_count) == (second.version, second.sha256, 6)
    assert any("still names" in note for note in result.notes)
    assert [row[0] for row in await read_all(publisher)] == [f"second{i}" for i in range(6)]
    assert [row[0] for row in publisher.read_sync()] == [f"second{i}" for i in range(6)]


# --- read and list permissions only ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", backends())
async def test_reads_need_only_read_and_list_permissions(
    make_destination: Any, backend: str, downloads: Path, request: pytest.FixtureRequest
) -> None:
    """With credentials that may only read and list (SeaweedFS's read-only identity; elsewhere the real filesystem
    refusing every write), download, read, read_manifest, versions, verify and diff work, and nothing tries to write."""
    destination = make_destination(backend)
    writer = destination.publisher(key="Barcode")
    first = await writer.publish(MESSY[1:])
    published = await writer.publish(MESSY)
    before = {rel: destination.read(rel) for rel in destination.files()}
    if backend == "seaweedfs":
        options = request.getfixturevalue("seaweedfs_reader_options")
        reader, refusals = Publisher(destination.url, name="books", storage_options=options), None
    else:
        storage, refusals = read_only(destination)
        reader = Publisher(storage, name="books")
    result = await reader.download(downloads / "books.csv", decompress=True)
    assert (result.version, result.sha256) == (published.version, published.csv_sha256)
    assert reader.download_sync(downloads / "books.csv.gz").sha256 == published.sha256
    assert await read_all(reader) == list(reader.read_sync()) == as_lists(MESSY)
    assert (await reader.read_manifest(published.version)).sha256 == published.sha256
    assert [v.version for v in await reader.versions()] == [published.version, first.version]
    assert (await reader.verify(strict=True)).version == published.version
    changes = await reader.diff(first.version, "latest")  # what changed, from the key files alone
    assert (changes.added, changes.removed, changes.changed, changes.added_examples) == (1, 0, 0, ("1",))
    if refusals is not None:
        assert refusals.seen == []  # not a write was tried, refused or swallowed
    with pytest.raises(AccessDeniedError):  # and these credentials really cannot write
        await reader.publish(rows(2))
    assert refusals is None or refusals.seen
    assert {rel: destination.read(rel) for rel in destination.files()} == before


async def test_a_read_stopped_early_closes_its_stream(make_destination: Any) -> None:
    """Leaving read() or read_sync() after a few rows is fine: no error, and the next read starts afresh."""
    publisher = make_destination("local").publisher()
    await publisher.publish(rows(50))
    async with contextlib.aclosing(publisher.read()) as stream:
        async for row in stream:
            assert row[0] == "a0"
            break
    for row in publisher.read_sync():
        assert row[0] == "a0"
        break
    assert len(await read_all(publisher)) == 50
