"""Compare-and-swap of the latest: probed, used where the server enforces it, the lease elsewhere; many racers."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import pytest

from csvpublish import Publisher
from csvpublish.publisher.catalog import Catalog
from csvpublish.publisher.promotion import Promoter

from .conftest import BACKENDS, backends
from .faults import Faults
from .helpers import rows

PUBLISHERS, EACH = 8, 10


@pytest.mark.parametrize("backend", backends("object_store"))
async def test_the_probe_finds_whether_the_server_enforces_conditions(make_destination: Any, backend: str) -> None:
    """The probe's answer is the server's: a copy and a write conditional on a stale tag are refused, or not."""
    destination = make_destination(backend)
    st = destination.storage()
    scratch, data = ".csvpublish/probe-scratch.json", b'{"probe": true}'
    destination.write(scratch, data)
    assert await st.enforces_conditions(scratch, data) is destination.caps.conditions_enforced
    assert destination.read(scratch) == data  # refused or not, the probe leaves its object as it was


@pytest.mark.parametrize("backend", backends("conditions_enforced", "faults"))
async def test_where_conditions_are_enforced_no_lease_is_taken(make_destination: Any, backend: str) -> None:
    """Once the probe has found the conditions enforced, a publish replaces the latest without the lease."""
    destination = make_destination(backend)
    faults = Faults()
    publisher = Publisher(destination.faulty(faults), name="books")
    await publisher.publish(rows(10, "first"))
    faults.log.clear()
    result = await publisher.publish(rows(10, "second"))
    assert not [path for _, path in faults.log if "latest.lock" in path]
    assert (await publisher.verify(strict=True)).version == result.version


@pytest.mark.parametrize("backend", backends("conditions_enforced"))
async def test_a_swap_against_a_stale_view_is_refused_and_keeps_the_order(make_destination: Any, backend: str) -> None:
    """A publisher whose view of the latest is stale loses the swap, looks again, and never moves the latest back."""
    destination = make_destination(backend)
    publisher = destination.publisher()
    older = await publisher.publish(rows(10, "older"))  # the latest for now
    target = publisher._target()
    stale = await Catalog(target).latest_seen()  # what a slow publisher read before the others moved on
    time.sleep(1.01)
    newer = await publisher.publish(rows(10, "newer"))
    mine = await Catalog(target).manifest(older.version)
    # replaying the older version against the stale view: refused by the server, then refused by the order check
    assert await Promoter(target).swap(mine, stale) is False
    assert (await publisher.verify(strict=True)).version == newer.version


@pytest.mark.parametrize("backend", backends("read_with_metadata"))
def test_many_publishers_and_a_reader_see_the_latest_only_move_forward(make_destination: Any, backend: str) -> None:
    """8 publishers x 10 publishes with a reader polling: whole reads, never backwards, the newest wins."""
    destination = make_destination(backend)
    read_latest = destination.caps.read_with_metadata
    assert read_latest is not None
    results: list[Any] = []
    errors: list[BaseException] = []
    seen: list[str] = []
    done = threading.Event()

    def publish(i: int) -> None:
        publisher = Publisher(destination.url, name="books", storage_options=destination.options)
        for n in range(EACH):
            try:
                results.append(publisher.publish_sync(rows(20 + n, f"p{i}-{n}-")))
            except BaseException as exc:
                errors.append(exc)

    def read() -> None:
        while not done.is_set():
            got = read_latest(destination, "books_latest.csv.gz")
            if got is None:
                continue
            data, meta = got
            assert hashlib.sha256(data).hexdigest() == meta["sha256"], "a read of the latest is not its own bytes"
            seen.append(meta["version"])

    reader = threading.Thread(target=lambda: _catch(read, errors))
    threads = [threading.Thread(target=publish, args=(i,)) for i in range(PUBLISHERS)]
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    done.set()
    reader.join(30)
    assert not errors, errors[:3]
    assert len(results) == PUBLISHERS * EACH
    assert seen and seen == sorted(seen), "the reader saw the latest go back in time"
    publisher = destination.publisher()
    versions = {info.version for info in publisher.versions_sync()}
    assert versions == {r.version for r in results}
    for result in results[:: EACH + 1]:
        assert publisher.verify_sync(result.version).ok
    assert publisher.verify_sync(strict=True).version == max(r.version for r in results)
    described = json.loads(destination.read("books.datapackage.json"))["resources"][0]
    assert described["hash"] == f"sha256:{publisher.verify_sync().sha256}", "the descriptor is not the winner's"


def _catch(step: Any, errors: list[BaseException]) -> None:
    try:
        step()
    except BaseException as exc:
        errors.append(exc)


def test_the_table_says_which_servers_enforce_conditions() -> None:
    """moto and fake-gcs-server ignore conditional copies; the table must say so, or the probe test fails."""
    assert not BACKENDS["s3"].conditions_enforced
    assert not BACKENDS["gcs"].conditions_enforced
