"""The publishing contract, run on every backend: memory, local folder, the S3, GCS and Azure servers."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from typing import Any

import pytest

from csvpublish import Publisher, Storage, upload_csv_to_storage

from .conftest import Destination, backends
from .helpers import content_settings

ROWS = [
    {"Barcode": "B1", "Title": 'Dune, "the" novel', "Note": "line1\nline2"},
    {"Barcode": "B2", "Title": "Émile — 東京", "Note": None},
    {"Barcode": "B3", "Title": "", "Note": "=1+2"},
]


def expected_csv(rows: list[dict[str, str | None]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["Barcode", "Title", "Note"])
    for row in rows:
        writer.writerow([row["Barcode"], row["Title"], row["Note"]])
    return buf.getvalue().encode("utf-8")


@pytest.mark.parametrize("compression", [True, False])
async def test_publish_writes_latest_and_archive_with_the_same_csv(destination: Destination, compression: bool) -> None:
    """Latest and timestamped objects both exist and decode to exactly the CSV."""
    publisher = Publisher(destination.url, name="books", compression=compression, storage_options=destination.options)
    result = await publisher.publish(ROWS)

    suffix = ".csv.gz" if compression else ".csv"
    assert result.record_count == 3
    assert result.latest_uri.endswith(f"/meta/books_latest{suffix}") or result.latest_uri.endswith(
        f"books_latest{suffix}"
    )
    assert re.search(r"timestamped/books_\d{8}_\d{6}" + re.escape(suffix) + "$", result.archive_uri)
    latest = destination.read(f"books_latest{suffix}")
    archive = destination.read(f"timestamped/books_{result.version}{suffix}")
    assert latest == archive
    plain = gzip.decompress(latest) if compression else latest
    assert plain == expected_csv(ROWS)
    assert result.size == len(latest)
    assert result.compression == ("gzip" if compression else None)


async def test_uri_names_the_latest_object(destination: Destination) -> None:
    """The returned URI is where the latest object is, in the backend's own notation."""
    publisher = Publisher(destination.url, name="books", storage_options=destination.options)
    result = await publisher.publish(ROWS)
    if destination.backend == "local":
        assert destination.local_root is not None
        assert result.latest_uri == str(destination.local_root / "books_latest.csv.gz")
    else:
        scheme = destination.url.split("://", 1)[0]  # s3, gs, az, memory: the notation the user gave
        assert result.latest_uri.startswith(f"{scheme}://")
        assert result.latest_uri.endswith("/meta/books_latest.csv.gz")
    assert "books_latest.csv.gz" in destination.files()


async def test_two_quick_publishes_keep_two_archives_and_the_second_is_latest(destination: Destination) -> None:
    """A second publish in the same second gets its own archive and becomes the latest."""
    publisher = Publisher(destination.url, name="books", storage_options=destination.options)
    first = await publisher.publish(ROWS[:1])
    second = await publisher.publish(ROWS[:2])
    assert first.version != second.version
    assert sorted([first.version, second.version]) == [first.version, second.version]
    assert destination.read(f"timestamped/books_{first.version}.csv.gz") != destination.read(
        f"timestamped/books_{second.version}.csv.gz"
    )
    assert gzip.decompress(destination.read("books_latest.csv.gz")) == expected_csv(ROWS[:2])
    versions = await publisher.versions()
    assert [v.version for v in versions] == [second.version, first.version]
    assert versions[0].is_latest and not versions[1].is_latest


async def test_upload_csv_to_storage_publishes_an_existing_file(destination: Destination, tmp_path) -> None:
    """The seed's function: an existing CSV goes up under <stem>_latest and timestamped/."""
    csv_path = tmp_path / "books.csv"
    csv_path.write_bytes(expected_csv(ROWS))
    uri = await upload_csv_to_storage(csv_path, destination.url, storage_options=destination.options)
    assert uri.endswith("books_latest.csv.gz")
    assert gzip.decompress(destination.read("books_latest.csv.gz")) == csv_path.read_bytes()
    manifest = json.loads(destination.read("books_latest.manifest.json"))
    assert manifest["record_count"] == 3
    assert manifest["columns"] == ["Barcode", "Title", "Note"]


async def test_manifest_describes_the_stored_bytes(destination: Destination) -> None:
    """The manifest's hashes, sizes and count match what is stored."""
    import hashlib

    publisher = Publisher(destination.url, name="books", storage_options=destination.options)
    result = await publisher.publish(ROWS)
    stored = destination.read("books_latest.csv.gz")
    manifest = json.loads(destination.read(f"timestamped/books_{result.version}.manifest.json"))
    assert manifest["sha256"] == hashlib.sha256(stored).hexdigest() == result.sha256
    assert manifest["csv_sha256"] == hashlib.sha256(gzip.decompress(stored)).hexdigest()
    assert manifest["size"] == len(stored)
    assert manifest["record_count"] == 3
    assert manifest["archive"] == f"timestamped/books_{result.version}.csv.gz"
    assert manifest["created_at"].endswith("Z")
    assert json.loads(destination.read("books_latest.manifest.json")) == manifest


@pytest.mark.parametrize("backend", backends("user_metadata"))
async def test_content_type_and_no_content_encoding(make_destination: Any, backend: str) -> None:
    """A .csv.gz is stored as application/gzip, never with Content-Encoding: gzip (S3, GCS, Azure)."""
    destination = make_destination(backend)
    publisher = Publisher(destination.url, name="books", storage_options=destination.options)
    await publisher.publish(ROWS)
    st = destination.storage()
    for rel in ("books_latest.csv.gz", f"timestamped/{(await publisher.versions())[0].path.rsplit('/', 1)[-1]}"):
        info = st.fs.info(st.path(rel))
        content_type, content_encoding = content_settings(info)
        assert content_type == "application/gzip", (rel, info)
        assert not content_encoding, (rel, info)


@pytest.mark.parametrize("backend", backends("user_metadata"))
async def test_latest_carries_its_hash_as_object_metadata(make_destination: Any, backend: str) -> None:
    """On S3, GCS and Azure the latest object's own metadata names its sha256 and record count."""
    destination = make_destination(backend)
    publisher = Publisher(destination.url, name="books", storage_options=destination.options)
    result = await publisher.publish(ROWS)
    meta = await Storage(destination.url, **destination.options).metadata("books_latest.csv.gz")
    assert meta.get("sha256") == result.sha256, meta
    assert meta.get("record-count") == "3", meta
