"""The catalog: versions listed from one listing, newest first, with what their manifests say."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from .conftest import backends
from .helpers import rows


@pytest.mark.parametrize("backend", backends())
async def test_versions_lists_archives_newest_first_with_their_details(make_destination: Any, backend: str) -> None:
    """versions() gives each archive's identifier, UTC timestamp, URI, size and record count, newest first."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    results = [await publisher.publish(rows(n)) for n in (3, 5, 7)]
    versions = await publisher.versions()
    assert [v.version for v in versions] == [r.version for r in reversed(results)]
    for info, result in zip(versions, reversed(results), strict=True):
        assert info.record_count == result.record_count
        assert info.size == result.size == len(destination.read(info.path))
        assert info.uri == result.archive_uri
        assert info.timestamp.strftime("%Y%m%d_%H%M%S") == info.version[:15]
        assert info.timestamp.utcoffset() == timedelta(0)
    assert [v.is_latest for v in versions] == [True, False, False]
