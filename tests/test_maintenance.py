"""Maintenance: restore a version, prune old ones, keep= after each publish."""

from __future__ import annotations

from typing import Any

import pytest

from csvpublish import VersionNotFoundError
from csvpublish.manifest import Manifest

from .conftest import backends
from .helpers import published_objects, rows


@pytest.mark.parametrize("backend", backends())
async def test_restore_makes_an_archived_version_the_latest_again(make_destination: Any, backend: str) -> None:
    """restore() copies an archived version and its manifest over the latest; verify names it; later publishes win."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    first = await publisher.publish(rows(4, "first"))
    await publisher.publish(rows(6, "second"))
    restored = await publisher.restore(first.version)
    assert restored.version == first.version
    assert restored.latest_updated
    assert destination.read("books_latest.csv.gz") == destination.read(f"timestamped/books_{first.version}.csv.gz")
    manifest = Manifest.from_json(destination.read("books_latest.manifest.json"))
    assert manifest.version == first.version
    assert manifest.restored_at
    report = await publisher.verify(strict=True)
    assert report.version == first.version
    info = next(v for v in await publisher.versions() if v.version == first.version)
    assert info.is_latest
    again = await publisher.restore(info)  # a VersionInfo works too
    assert again.version == first.version
    third = await publisher.publish(rows(8, "third"))
    assert third.latest_updated
    assert (await publisher.verify()).version == third.version
    with pytest.raises(VersionNotFoundError, match="no archived version"):
        await publisher.restore("19990101_000000")


@pytest.mark.parametrize("backend", backends())
async def test_prune_keeps_the_newest_and_the_latest_source(make_destination: Any, backend: str) -> None:
    """prune(keep=N) deletes archives and manifests older than the newest N, never the archive the latest came from."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    results = [await publisher.publish(rows(3 + i)) for i in range(4)]
    await publisher.restore(results[0].version)
    deleted = await publisher.prune(keep=1)
    assert sorted(deleted) == sorted(r.version for r in results[1:3])
    assert [v.version for v in await publisher.versions()] == [results[3].version, results[0].version]
    assert (await publisher.verify(strict=True)).version == results[0].version
    assert set(destination.files()) == published_objects(publisher)


@pytest.mark.parametrize("backend", backends())
async def test_keep_prunes_after_each_successful_publish(make_destination: Any, backend: str) -> None:
    """Publisher(keep=2) keeps only the two newest archives after each publish and reports what it pruned."""
    destination = make_destination(backend)
    publisher = destination.publisher(keep=2)
    results = [await publisher.publish(rows(2 + i)) for i in range(4)]
    assert results[1].pruned == []
    assert results[2].pruned == [results[0].version]
    assert results[3].pruned == [results[1].version]
    assert [v.version for v in await publisher.versions()] == [results[3].version, results[2].version]
    assert set(destination.files()) == published_objects(publisher)
