"""Each error says what to do, and leaves nothing partial behind."""

from __future__ import annotations

import base64
import gzip
import sys
from pathlib import Path
from typing import Any

import fsspec.registry  # noqa: F401 - loads the module whose _registry is patched
import pytest

from csvpublish import (
    AccessDeniedError,
    CsvPublishError,
    InputError,
    MissingBackendError,
    MissingInputError,
    Publisher,
    SnapshotRejectedError,
    Storage,
    StorageNotFoundError,
    upload_csv_to_storage,
)

from .conftest import Destination, backends
from .faults import Faults, FaultyLocal

ROWS = [{"Barcode": "1", "Title": "Dune"}, {"Barcode": "2", "Title": "Emma"}]


async def test_missing_input_file(destination: Destination, tmp_path: Path) -> None:
    """Publishing a CSV that is not there names the path and writes nothing."""
    missing = tmp_path / "nope.csv"
    with pytest.raises(MissingInputError, match=r"nope\.csv: no such CSV file; export it first"):
        await upload_csv_to_storage(missing, destination.url, storage_options=destination.options)
    assert destination.files() == set()
    assert isinstance(MissingInputError("x"), FileNotFoundError)


def test_missing_backend_package_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """s3:// without s3fs raises MissingBackendError with the pip install line."""
    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(MissingBackendError, match=r"pip install 'csvpublish\[s3\]'"):
        Storage("s3://bucket/prefix")
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "gs", raising=False)
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "gcs", raising=False)
    with pytest.raises(MissingBackendError, match=r"pip install 'csvpublish\[gcs\]'"):
        Publisher("gs://bucket/prefix", name="books")


@pytest.mark.parametrize("backend", backends("object_store"))
async def test_bucket_that_does_not_exist(backend: str, make_destination: Any) -> None:
    """A missing bucket is StorageNotFoundError saying to create it; nothing is written anywhere."""
    destination = make_destination(backend)
    url = destination.url.replace(destination.bucket(), "no-such-bucket-xyz", 1)
    publisher = Publisher(url, name="books", storage_options=destination.options)
    with pytest.raises(StorageNotFoundError, match=r"bucket does not exist.*create it or fix the destination URL"):
        await publisher.publish(ROWS)
    assert not publisher.storage.fs.exists("no-such-bucket-xyz")


async def test_permission_denied_keeps_the_previous_latest(tmp_path: Path) -> None:
    """Access denied while uploading is AccessDeniedError; the previous latest and its manifest stay as they were."""
    faults = Faults()
    root = str(tmp_path / "out")
    publisher = Publisher(Storage(FaultyLocal(faults), root), name="books")
    await publisher.publish(ROWS)
    before = {p: p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}
    faults.fail("upload", lambda: PermissionError(13, "Permission denied"))
    with pytest.raises(AccessDeniedError, match="access denied; check the credentials"):
        await publisher.publish([{"Barcode": "3", "Title": "New"}])
    after = {p: p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}
    assert after == before
    assert isinstance(AccessDeniedError("x"), PermissionError)


async def test_bad_row_fails_before_anything_is_visible(destination: Destination) -> None:
    """A row of the wrong length names the row; the destination is exactly as before."""
    publisher = Publisher(destination.url, name="books", storage_options=destination.options)
    await publisher.publish(ROWS)
    before = {rel: destination.read(rel) for rel in destination.files()}
    rows = [["1", "a"]] * 3000 + [["2"]]
    with pytest.raises(InputError, match="row 3001 has 1 fields but the header has 2 columns"):
        await publisher.publish(rows, headers=["Barcode", "Title"])
    assert {rel: destination.read(rel) for rel in destination.files()} == before
    assert gzip.decompress(destination.read("books_latest.csv.gz")).startswith(b"Barcode,Title\r\n1,Dune")


async def test_empty_file_and_min_records_guards(destination: Destination, tmp_path: Path) -> None:
    """A 0-byte file and a snapshot under min_records are refused; the latest is untouched."""
    publisher = Publisher(destination.url, name="books", storage_options=destination.options, min_records=2)
    await publisher.publish(ROWS)
    before = {rel: destination.read(rel) for rel in destination.files()}
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(SnapshotRejectedError, match="empty"):
        await publisher.publish_file(empty)
    with pytest.raises(SnapshotRejectedError, match="1 records, fewer than min_records=2"):
        await publisher.publish(ROWS[:1])
    assert {rel: destination.read(rel) for rel in destination.files()} == before


@pytest.mark.parametrize(
    "name", ["", "a/b", "..", "../x", "a\\b", "bad\nname", "tab\tname", ".hidden", "x" * 201, None]
)
def test_invalid_names_are_refused(name: object) -> None:
    """Names that could leave the prefix, or hide control characters, are refused."""
    with pytest.raises(InputError):
        Publisher("memory://names", name=name)  # type: ignore[arg-type]


def test_paths_never_leave_the_root() -> None:
    """Storage refuses relative paths that climb out of its root."""
    storage = Storage("memory://root/prefix")
    for rel in ("../x", "a/../../x", "a/./b", "a//b"):
        with pytest.raises(InputError, match="would leave the destination"):
            storage.path(rel)
    assert storage.path("a/b") == "/root/prefix/a/b"


def test_every_error_is_a_csvpublish_error() -> None:
    """All raised classes share one root, so one except clause catches them."""
    import csvpublish

    for name in csvpublish.__all__:
        obj = getattr(csvpublish, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, CsvPublishError), name


@pytest.mark.parametrize("backend", backends("object_store"))
async def test_reading_a_missing_destination_is_an_error(make_destination: Any, tmp_path: Path, backend: str) -> None:
    """versions, verify, restore and cleanup on a missing folder or bucket raise StorageNotFoundError, not 'empty'."""
    missing = Publisher(tmp_path / "nowhere", name="books")
    for call in (missing.versions(), missing.verify(), missing.restore("20260101_000000"), missing.cleanup()):
        with pytest.raises(StorageNotFoundError):
            await call
    assert not (tmp_path / "nowhere").exists()
    destination = make_destination(backend)
    url = destination.url.replace(destination.bucket(), "no-such-bucket-abc", 1)
    with pytest.raises(StorageNotFoundError, match="bucket does not exist"):
        await Publisher(url, name="books", storage_options=destination.options).versions()


async def test_read_only_credentials_are_refused_every_write_and_change_nothing(
    make_destination: Any, seaweedfs_reader_options: dict[str, Any]
) -> None:
    """A read-only identity (Read and List on SeaweedFS) cannot publish (AccessDeniedError), yet lists and verifies."""
    destination = make_destination("seaweedfs")
    first = await destination.publisher().publish(ROWS)
    before = {rel: destination.read(rel) for rel in destination.files()}
    reader = Publisher(destination.url, name="books", storage_options=seaweedfs_reader_options)
    with pytest.raises(AccessDeniedError, match="access denied; check the credentials"):
        await reader.publish([*ROWS, {"Barcode": "3", "Title": "Walden"}])
    assert {rel: destination.read(rel) for rel in destination.files()} == before
    assert [v.version for v in await reader.versions()] == [first.version]
    assert (await reader.verify(strict=True)).version == first.version


async def test_a_wrong_account_key_is_access_denied(make_destination: Any) -> None:
    """Azurite refuses a request signed with another account key: AccessDeniedError, and nothing is written."""
    destination = make_destination("azure")
    connection = destination.options["connection_string"]
    key = connection.split("AccountKey=", 1)[1].split(";", 1)[0]
    wrong = {**destination.options, "connection_string": connection.replace(key, base64.b64encode(b"x" * 64).decode())}
    publisher = Publisher(destination.url, name="books", storage_options=wrong)
    with pytest.raises(AccessDeniedError, match="access denied; check the credentials"):
        await publisher.publish(ROWS)
    assert destination.files() == set()
