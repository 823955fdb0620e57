"""Caching headers: archives are immutable, the latest is never served stale, on every backend that stores them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from csvpublish import InputError, Publisher

from .conftest import BACKENDS, Destination, backends
from .helpers import rows

IMMUTABLE = "public, max-age=31536000, immutable"


def cache_controls(destination: Destination, *rels: str) -> dict[str, str | None]:
    """The Cache-Control of each object, read with the backend's own client."""
    read = destination.caps.cache_control
    assert read is not None
    return {rel: read(destination, rel) for rel in rels}


def version_objects(version: str) -> tuple[str, str]:
    return f"timestamped/books_{version}.csv.gz", f"timestamped/books_{version}.manifest.json"


LATEST = ("books_latest.csv.gz", "books_latest.manifest.json")


@pytest.mark.parametrize("backend", backends("cache_control"))
async def test_archives_are_immutable_and_the_latest_is_no_cache(make_destination: Any, backend: str) -> None:
    """By default each archive and its manifest are cached for a year, the latest and its manifest revalidated,
    also after the latest is replaced by a newer publish and by a restore of an older archive."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = await publisher.publish(rows(3, "a"))
    second = await publisher.publish(rows(4, "b"))
    archived = [*version_objects(first.version), *version_objects(second.version)]
    expected = {**dict.fromkeys(archived, IMMUTABLE), **dict.fromkeys(LATEST, "no-cache")}
    assert cache_controls(destination, *expected) == expected
    await publisher.restore(first.version)
    assert cache_controls(destination, *expected) == expected


@pytest.mark.parametrize("backend", backends("cache_control"))
async def test_the_cache_control_options_are_what_is_stored(make_destination: Any, backend: str) -> None:
    """archive_cache_control= and latest_cache_control= are sent as given."""
    destination = make_destination(backend)
    publisher = destination.publisher(archive_cache_control="public, max-age=600", latest_cache_control="max-age=5")
    result = await publisher.publish(rows(2))
    archived = dict.fromkeys(version_objects(result.version), "public, max-age=600")
    expected = {**archived, **dict.fromkeys(LATEST, "max-age=5")}
    assert cache_controls(destination, *expected) == expected


@pytest.mark.parametrize("backend", backends("cache_control", "copy_sets_no_cache_control"))
async def test_none_sends_no_cache_control_and_the_latest_never_inherits_the_archives(
    make_destination: Any, backend: str
) -> None:
    """latest_cache_control=None: the latest, a copy of an immutable archive, carries no Cache-Control at all."""
    destination = make_destination(backend)
    result = await destination.publisher(latest_cache_control=None).publish(rows(2))
    archive, manifest = version_objects(result.version)
    expected = {archive: IMMUTABLE, manifest: IMMUTABLE, **dict.fromkeys(LATEST)}
    assert cache_controls(destination, *expected) == expected
    bare = await destination.publisher(archive_cache_control=None, latest_cache_control=None).publish(rows(3))
    assert set(cache_controls(destination, *version_objects(bare.version), *LATEST).values()) == {None}


@pytest.mark.parametrize("backend", backends("cache_control"))
async def test_uploads_in_parts_and_small_writes_store_cache_control(
    make_destination: Any, backend: str, tmp_path: Path
) -> None:
    """Storage sets Cache-Control on a multipart or resumable upload, a one-request write and a copy."""
    destination = make_destination(backend)
    st = destination.reader()
    big = tmp_path / "big.bin"
    big.write_bytes(b"z" * (6 * 2**20))  # two parts on S3, a resumable upload on GCS
    await st.upload_file(big, "big.bin", cache_control="max-age=1")
    await st.write_bytes("small.json", b"{}", content_type="application/json", cache_control="max-age=2")
    await st.copy("big.bin", "copy.bin", cache_control="max-age=3")
    assert cache_controls(destination, "big.bin", "small.json", "copy.bin") == {
        "big.bin": "max-age=1",
        "small.json": "max-age=2",
        "copy.bin": "max-age=3",
    }


async def test_an_s3_copy_of_5_gib_or_more_keeps_its_headers(make_destination: Any, monkeypatch: Any) -> None:
    """The multipart copy s3fs makes of a huge latest sets the content type, metadata and Cache-Control too."""
    import s3fs.core

    from csvpublish.storage import s3

    monkeypatch.setattr(s3, "COPY_OBJECT_LIMIT", 1)  # every object takes the >= 5 GiB path
    monkeypatch.setattr(s3fs.core, "MANAGED_COPY_THRESHOLD", 1)  # and s3fs copies it part by part
    destination = make_destination("s3")
    st = destination.reader()
    await st.write_bytes("src.bin", b"x" * 1000, cache_control=IMMUTABLE)
    await st.copy("src.bin", "dst.bin", content_type="application/gzip", metadata={"v": "1"}, cache_control="no-cache")
    _, key, _ = st.fs.split_path(st.path("dst.bin"))
    head = await asyncio.to_thread(st.fs.call_s3, "head_object", Bucket=destination.bucket(), Key=key)
    headers = (head.get("CacheControl"), head["ContentType"], head["Metadata"])
    assert headers == ("no-cache", "application/gzip", {"v": "1"})
    assert head["ETag"].strip('"').endswith("-1")  # it did go through a multipart upload


def test_each_backend_says_whether_it_stores_cache_control(destination: Destination) -> None:
    """Storage.capabilities.cache_control agrees with what the backend's tests read back."""
    assert destination.storage().capabilities.cache_control == (destination.caps.cache_control is not None)


@pytest.mark.parametrize("backend", [name for name, b in BACKENDS.items() if b.cache_control is None])
async def test_backends_without_headers_publish_as_before(make_destination: Any, backend: str) -> None:
    """A folder and memory:// take the options and publish the same bytes (they have nowhere to keep a header)."""
    destination = make_destination(backend)
    plain = await destination.publisher().publish(rows(2))
    custom = await destination.publisher(archive_cache_control=None, latest_cache_control="max-age=1").publish(rows(2))
    assert plain.sha256 == custom.sha256
    assert (await destination.publisher().verify()).ok


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("latest_cache_control", "max-age=60\r\nX-Injected: 1"),
        ("archive_cache_control", ""),
        ("archive_cache_control", "max-âge=1"),
        ("latest_cache_control", 60),
    ],
)
def test_a_bad_cache_control_is_refused(option: str, value: Any) -> None:
    """A value that is not one line of printable ASCII (or is empty) is an InputError, before anything is written."""
    with pytest.raises(InputError, match=option):
        Publisher("memory://bad-cache-control", name="books", **{option: value})
