"""What changed, by key: counts in each keyed manifest, key files beside the archives, diff of two versions."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csvpublish import ChangeSummary, InputError, Publisher, SnapshotRejectedError, export_csv_to_file
from csvpublish.changes import KeyCollector, KeyFile, merge
from csvpublish.publisher.keyed import mismatch

from .conftest import Destination, backends

V1 = [
    {"Barcode": "A1", "Title": "plain", "Note": "x"},
    {"Barcode": "B,2", "Title": 'say "hi"', "Note": ""},
    {"Barcode": "C\r\n3", "Title": "naïve café", "Note": None},
    {"Barcode": "D4", "Title": "line\nbreak", "Note": "n"},
    {"Barcode": "", "Title": "empty key", "Note": "e"},
    {"Barcode": "É5", "Title": "x", "Note": None},
]
V2 = [
    {"Barcode": "A1", "Title": "plain", "Note": "x"},  # unchanged
    {"Barcode": "B,2", "Title": 'say "hello"', "Note": ""},  # changed
    {"Barcode": "C\r\n3", "Title": "naïve café", "Note": None},  # unchanged
    # D4 removed
    {"Barcode": "", "Title": "empty key", "Note": "e"},  # unchanged
    {"Barcode": "É5", "Title": "x", "Note": ""},  # unchanged: an empty string and a null write the same CSV
    {"Barcode": "F6", "Title": "new", "Note": "f"},  # added
    {"Barcode": "G,7", "Title": "twin", "Note": "1"},  # added, on two rows: one duplicate key
    {"Barcode": "G,7", "Title": "twin", "Note": "2"},
]
V3 = [
    {"Barcode": "A1", "Title": "plain!", "Note": "x"},  # changed
    {"Barcode": "B,2", "Title": 'say "hello"', "Note": ""},  # unchanged
    # C\r\n3 removed
    {"Barcode": "", "Title": "empty key", "Note": "e"},  # unchanged
    {"Barcode": "É5", "Title": "x", "Note": None},  # unchanged
    {"Barcode": "F6", "Title": "new", "Note": "f"},  # unchanged
    {"Barcode": "G,7", "Title": "twin", "Note": "1"},  # changed: one row where there were two
    {"Barcode": "H8", "Title": "", "Note": None},  # added
]
# (added, removed, changed, unchanged, duplicate_keys), counted by hand
EXPECTED = {
    "v1": (6, 0, 0, 0, 0),
    "v2": (2, 1, 1, 4, 1),
    "v3": (1, 1, 2, 4, 0),
    "v1->v3": (3, 2, 2, 2, 0),
}


def counts(summary: ChangeSummary | None) -> tuple[int, ...]:
    assert summary is not None
    return summary.added, summary.removed, summary.changed, summary.unchanged, summary.duplicate_keys


def as_table(rows: list[dict[str, Any]]) -> Any:
    pa = pytest.importorskip("pyarrow")
    return pa.Table.from_pylist(rows)


def manifest(destination: Destination, name: str, version: str) -> dict[str, Any]:
    return json.loads(destination.read(f"timestamped/{name}_{version}.manifest.json"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", backends())
async def test_changes_are_counted_by_key_over_three_versions(make_destination: Any, backend: str) -> None:
    """Rows and an Arrow table of messy data give the hand-counted changes, the same key files, and diff(v1, v3)."""
    destination = make_destination(backend)
    key_files = {}
    for name, convert in (("books", list), ("books_arrow", as_table)):
        publisher = Publisher(destination.reader(), name=name, key="Barcode")
        results = [await publisher.publish(convert(rows)) for rows in (V1, V2, V3)]
        for label, result in zip(("v1", "v2", "v3"), results, strict=True):
            assert counts(result.changes) == EXPECTED[label], (name, label)
        first, second, third = results
        assert second.changes is not None and second.changes.previous_version == first.version
        assert second.changes.duplicate_examples == ('"G,7"',)
        assert third.changes is not None and third.changes.removed_examples == ('"C\r\n3"',)
        assert sorted(third.changes.changed_examples) == ['"G,7"', "A1"]
        whole = await publisher.diff(first.version, third.version)
        assert counts(whole) == EXPECTED["v1->v3"]
        assert (whole.previous_version, whole.version) == (first.version, third.version)
        assert counts(await publisher.diff(first.version, "latest")) == EXPECTED["v1->v3"]
        recorded = manifest(destination, name, third.version)
        assert ChangeSummary.from_dict(recorded["changes"]) == third.changes
        assert destination.read(recorded["keys"]["file"])  # the key file is there, beside its archive
        key_files[name] = [manifest(destination, name, r.version)["keys"]["sha256"] for r in results]
    assert key_files["books"] == key_files["books_arrow"]  # the two paths write the same key files


async def test_a_key_of_several_columns_and_publish_file_agree_with_rows(tmp_path: Path) -> None:
    """A CSV file published with a key writes the same key file as the same rows; a key may have several columns."""
    rows_publisher = Publisher(tmp_path / "rows", name="books", key=["Title", "Barcode"])
    file_publisher = Publisher(tmp_path / "file", name="books", key=["Title", "Barcode"])
    for rows in (V1, V2):
        by_rows = await rows_publisher.publish(rows)
        path = tmp_path / "books.csv"
        await export_csv_to_file(rows, path)
        by_file = await file_publisher.publish_file(path)
        assert by_rows.changes is not None and by_file.changes is not None
        assert counts(by_rows.changes)[:4] == counts(by_file.changes)[:4]
    assert by_rows.changes.duplicate_keys == by_file.changes.duplicate_keys == 1  # ("twin", "G,7") on two rows
    latest = [json.loads((tmp_path / d / "books_latest.manifest.json").read_bytes())["keys"] for d in ("rows", "file")]
    assert latest[0]["sha256"] == latest[1]["sha256"]


@pytest.mark.parametrize("backend", backends())
async def test_unique_key_refuses_duplicates_and_leaves_the_latest(make_destination: Any, backend: str) -> None:
    """unique_key=True refuses a snapshot with a key on two rows; the latest and the version list stay as they were."""
    destination = make_destination(backend)
    publisher = Publisher(destination.reader(), name="books", key="Barcode", unique_key=True)
    first = await publisher.publish(V1)
    before = destination.files()
    with pytest.raises(SnapshotRejectedError, match="unique_key=True and 1 key"):
        await publisher.publish(V2)
    assert destination.files() == before
    assert [v.version for v in await publisher.versions()] == [first.version]
    assert (await publisher.verify(strict=True)).version == first.version


@pytest.mark.parametrize("backend", ["memory", "local"])
async def test_an_unkeyed_publish_writes_no_key_file(make_destination: Any, backend: str) -> None:
    """Without key= a publish records no changes and writes no key file."""
    destination = make_destination(backend)
    result = await destination.publisher().publish(V1)
    assert result.changes is None
    assert not any(rel.endswith(".keys.gz") for rel in destination.files())
    recorded = manifest(destination, "books", result.version)
    assert "keys" not in recorded and "changes" not in recorded


async def test_changes_are_unknown_when_the_previous_latest_has_no_key_file_of_that_key() -> None:
    """After an unkeyed version, or one keyed otherwise, the changes are None and the manifest says why."""
    url = "memory://csvpublish-test-unknown/meta"
    await Publisher(url, name="books").publish(V1)
    keyed = Publisher(url, name="books", key="Barcode")
    second = await keyed.publish(V2)
    assert second.changes is None
    assert "has no key file" in (await keyed.latest()).changes["unknown"]  # type: ignore[union-attr,index]
    retitled = await Publisher(url, name="books", key="Title").publish(V3)
    assert retitled.changes is None
    third = await keyed.publish(V3)
    assert third.changes is None  # the latest is keyed by Title
    assert counts((await keyed.publish(V3)).changes) == (0, 0, 0, 7, 0)
    with pytest.raises(InputError, match=r"has no key file.*key="):
        await keyed.diff((await keyed.versions())[-1], "latest")


async def test_a_missing_key_column_is_an_input_error_and_nothing_is_written(tmp_path: Path) -> None:
    """A key that is not a column is refused before any object is written, from rows and from a table."""
    for n, source in enumerate((V1, as_table(V1))):
        publisher = Publisher(tmp_path / f"out{n}", name="books", key="ISBN")
        with pytest.raises(InputError, match="'ISBN' are not among the columns"):
            await publisher.publish(source)
        assert [p for p in (tmp_path / f"out{n}").rglob("*") if p.is_file()] == []
    with pytest.raises(InputError, match="unique_key=True needs key="):
        Publisher(tmp_path, name="books", unique_key=True)


async def test_prune_cleanup_and_restore_handle_key_files() -> None:
    """Pruning deletes a version's key file with it, cleanup removes an orphan one, restore brings the old one back."""
    url = "memory://csvpublish-test-prune/meta"
    publisher = Publisher(url, name="books", key="Barcode")
    first = await publisher.publish(V1)
    second = await publisher.publish(V2)
    st = publisher.storage
    await publisher.restore(first.version)
    assert counts((await publisher.publish(V3)).changes) == (3, 2, 2, 2, 0)  # compared with the restored v1
    orphan = st.path(publisher.layout.keys("20200101_000000"))
    st.fs.pipe_file(orphan, b"left by a killed publish")
    assert st.uri(publisher.layout.keys("20200101_000000")) in (await publisher.cleanup()).removed
    await publisher.prune(keep=1)
    left = {e.basename for e in await st.list("timestamped")}
    assert f"books_{first.version}.keys.gz" not in left and f"books_{second.version}.keys.gz" not in left
    assert sum(name.endswith(".keys.gz") for name in left) == 1


def test_a_key_file_reads_back_and_refuses_damage() -> None:
    """A key file holds its records in order; a cut or changed one is an IntegrityError, not a wrong count."""
    from csvpublish.changes import Encoder, header_bytes
    from csvpublish.errors import IntegrityError

    collector = KeyCollector([0], ",")
    collector.add_rows(["b", "a", "a"], ["b,1", "a,2", "a,3"])
    records = list(collector.records())
    out: list[bytes] = []
    encoder = Encoder(header_bytes(["k"], ",", 3), out.append)
    for record in records:
        encoder.add(record)
    encoder.finish()
    data = b"".join(out)
    file = KeyFile([data])
    assert file.header["rows"] == 3 and list(file) == records
    with pytest.raises(IntegrityError):
        list(KeyFile([data[:-12]]))
    with pytest.raises(IntegrityError):
        list(merge(reversed(records), records))  # type: ignore[call-overload]


def _dict_diff(old: list[tuple[str, str]], new: list[tuple[str, str]]) -> tuple[int, ...]:
    """The definition, by dictionaries: per key the multiset of its rows."""
    before: dict[str, Counter[str]] = {}
    after: dict[str, Counter[str]] = {}
    for rows, into in ((old, before), (new, after)):
        for key, row in rows:
            into.setdefault(key, Counter())[row] += 1
    added = len(after.keys() - before.keys())
    removed = len(before.keys() - after.keys())
    both = before.keys() & after.keys()
    changed = sum(before[k] != after[k] for k in both)
    duplicates = sum(sum(c.values()) > 1 for c in after.values())
    return added, removed, changed, len(both) - changed, duplicates


def _records(rows: list[tuple[str, str]]) -> Any:
    collector = KeyCollector([0], ",")
    collector.add_rows([k for k, _ in rows], [f"{k},{r}" for k, r in rows])
    return collector.records()


KEYS = st.text(alphabet='ab,"\né', max_size=3)
ROWS = st.lists(st.tuples(KEYS, st.sampled_from(["x", "y", "z"])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(old=ROWS, new=ROWS)
def test_the_merge_join_counts_what_a_dict_based_diff_counts(
    old: list[tuple[str, str]], new: list[tuple[str, str]]
) -> None:
    """The streaming merge-join of two key files gives a plain dictionary diff's counts, duplicates included."""
    tally = merge(_records(old), _records(new))
    assert (tally.added, tally.removed, tally.changed, tally.unchanged, tally.duplicate_keys) == _dict_diff(old, new)


def test_mismatch_names_what_is_missing() -> None:
    """A version without a key file, or with another key or delimiter, cannot be compared, and the reason says so."""
    from csvpublish.manifest import Manifest

    base = Manifest("books", "20260101_000000", "", "t", None, "", 0, "", 0, "", 0, [], "")
    assert "no key file" in str(mismatch(base, ("Barcode",), ","))
    keyed = Manifest(**{**base.__dict__, "keys": {"columns": ["Title"], "delimiter": ","}})
    assert "keyed by ['Title']" in str(mismatch(keyed, ("Barcode",), ","))
    assert mismatch(keyed, ("Title",), ",") is None
    assert "delimiter" in str(mismatch(keyed, ("Title",), ";"))


def test_cli_diff_prints_the_counts_and_json(tmp_path: Path) -> None:
    """csvpublish publish --key twice, then csvpublish diff OLD latest, in text and as JSON."""
    first, second = tmp_path / "v1.csv", tmp_path / "v2.csv"
    first.write_bytes(b"Barcode,Title\n1,a\n2,b\n3,c\n")
    second.write_bytes(b"Barcode,Title\n2,b\n3,C\n4,d\n4,e\n")
    out = tmp_path / "out"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "csvpublish", *args], capture_output=True, text=True, check=False)

    published = cli("publish", str(first), str(out), "--name", "books", "--key", "Barcode", "--json")
    assert published.returncode == 0, published.stderr
    old = json.loads(published.stdout)["version"]
    assert cli("publish", str(second), str(out), "--name", "books", "--key", "Barcode").returncode == 0
    text = cli("diff", str(out), old, "latest", "--name", "books")
    assert text.returncode == 0, text.stderr
    assert "added:" in text.stdout and "e.g. 4" in text.stdout
    summary = json.loads(cli("diff", str(out), old, "latest", "--name", "books", "--key", "Barcode", "--json").stdout)
    assert (summary["added"], summary["removed"], summary["changed"], summary["unchanged"]) == (1, 1, 1, 1)
    assert summary["duplicate_keys"] == 1 and summary["key"] == ["Barcode"]
    refused = cli("diff", str(out), old, "latest", "--name", "books", "--key", "Title")
    assert refused.returncode == 1 and "keyed by ['Barcode']" in refused.stderr
