"""Round trips: a publish costs the same requests whatever the history, and never lists the whole history."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from csvpublish import Publisher
from csvpublish.naming import Layout, version_id

from .conftest import backends
from .faults import Faults
from .helpers import rows

HISTORY = 2000


async def _next_second() -> None:
    """Start the next publish in a second of its own, so no publish shares its second (that costs a retry)."""
    await asyncio.sleep(1.02 - time.time() % 1)


def _seed_history(destination: Any, template: dict[str, Any], count: int) -> None:
    """``count`` archived versions, hours apart and long before now, written straight to the store
    (every tenth with its manifest: the rest as the seed pipeline left its archives)."""
    st, layout = destination.reader(), Layout("books")
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    objects: dict[str, bytes] = {}
    for hour in range(count):
        version = version_id(start + timedelta(hours=hour))
        manifest = {**template, "version": version, "archive": layout.archive(version)}
        objects[st.path(layout.archive(version))] = b"\x1f\x8b not read by a publish"
        if hour % 10 == 0:
            objects[st.path(layout.archive_manifest(version))] = json.dumps(manifest).encode()
    st.fs.pipe(objects)
    st.fs.invalidate_cache()


def _requests(faults: Faults) -> list[str]:
    """What the store was asked, one entry per request where the wrapper sees requests, else per operation."""
    requests = [path.split(" ", 1)[0] for op, path in faults.log if op == "request"]
    return sorted(requests or [op for op, _ in faults.log])


@pytest.mark.parametrize("backend", backends("faults"))
async def test_a_publish_makes_the_same_requests_with_one_or_thousands_of_versions(
    make_destination: Any, backend: str
) -> None:
    """With 1 and with 2,000 archived versions a publish sends the same requests, and lists no whole history."""
    destination = make_destination(backend)
    faults = Faults()
    publisher = Publisher(destination.faulty(faults), name="books")
    first = await publisher.publish(rows(20, "first"))  # also runs the once-per-process probe
    await _next_second()
    faults.log.clear()
    await publisher.publish(rows(20, "one"))
    with_one = _requests(faults)

    template = json.loads(destination.read("books_latest.manifest.json"))
    assert template["version"] != first.version
    _seed_history(destination, template, HISTORY)
    await _next_second()
    faults.log.clear()
    result = await publisher.publish(rows(20, "many"))
    assert _requests(faults) == with_one
    if destination.caps.object_store:  # a bucket is listed by prefix; a folder's listing is one local call
        listed = [path for op, path in faults.log if op == "list"]
        assert not any(path.rstrip("/").endswith("timestamped") for path in listed), listed
    assert len(publisher.versions_sync()) == HISTORY + 3
    assert (await publisher.verify(strict=True)).version == result.version
