"""Verify: the latest and each version re-read and compared with their manifests; tampering is caught."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from csvpublish import IntegrityError

from .conftest import backends
from .helpers import rows


@pytest.mark.parametrize("backend", backends())
async def test_verify_passes_on_an_intact_latest_and_version(make_destination: Any, backend: str) -> None:
    """verify() re-hashes the latest and an archived version and finds them as their manifests say."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = await publisher.publish(rows(10))
    second = await publisher.publish(rows(12))
    report = await publisher.verify(strict=True)
    assert (report.ok, report.version, report.sha256, report.record_count) == (True, second.version, second.sha256, 12)
    old = await publisher.verify(first.version, strict=True)
    assert (old.ok, old.target, old.version, old.record_count) == (True, first.version, first.version, 10)


@pytest.mark.parametrize("backend", backends())
async def test_verify_catches_a_tampered_latest(make_destination: Any, backend: str) -> None:
    """A latest whose bytes were changed fails verify, and strict verify raises IntegrityError."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    await publisher.publish(rows(10))
    destination.write("books_latest.csv.gz", gzip.compress(b"Barcode\r\nforged\r\n", mtime=0))
    report = await publisher.verify()
    assert not report.ok
    assert any("sha256" in p for p in report.problems)
    with pytest.raises(IntegrityError, match="sha256"):
        await publisher.verify(strict=True)


@pytest.mark.parametrize("backend", backends())
async def test_verify_catches_a_tampered_manifest(make_destination: Any, backend: str) -> None:
    """A latest manifest edited to claim other bytes, or broken, fails verify."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    await publisher.publish(rows(10))
    manifest = json.loads(destination.read("books_latest.manifest.json"))
    manifest["record_count"] = 11
    manifest["sha256"] = "0" * 64
    destination.write("books_latest.manifest.json", json.dumps(manifest).encode())
    report = await publisher.verify()
    assert not report.ok
    assert any("the manifest says" in p for p in report.problems)
    assert any("differs from its archive" in p for p in report.problems)
    destination.write("books_latest.manifest.json", b"{not json")
    with pytest.raises(IntegrityError, match="not a valid csvpublish manifest"):
        await publisher.verify()


@pytest.mark.parametrize("backend", backends())
async def test_verify_catches_a_tampered_or_missing_archive(make_destination: Any, backend: str) -> None:
    """An archived version with changed bytes fails verify(version); a latest whose archive is gone fails verify()."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    result = await publisher.publish(rows(10))
    archive = f"timestamped/books_{result.version}.csv.gz"
    destination.write(archive, destination.read(archive)[:-8] + b"\0" * 8)
    report = await publisher.verify(result.version)
    assert not report.ok
    assert report.problems
    with pytest.raises(IntegrityError):
        await publisher.verify(result.version, strict=True)
    destination.delete(archive)
    assert any("is missing" in p for p in (await publisher.verify()).problems)


@pytest.mark.parametrize("backend", backends("user_metadata"))
async def test_a_swap_cut_short_before_its_manifest_is_recognised_without_a_lease(
    make_destination: Any, backend: str
) -> None:
    """The latest holds a newer version than its manifest and no lease names it: its own metadata does."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = await publisher.publish(rows(10, "first"))
    previous = destination.read("books_latest.manifest.json")
    second = await publisher.publish(rows(10, "second"))
    destination.write("books_latest.manifest.json", previous)  # as if killed between the copy and the manifest
    assert ".csvpublish/books.latest.lock" not in destination.files()
    report = await publisher.verify(strict=True)
    assert report.version == second.version != first.version
    assert any("still names" in note for note in report.notes)
