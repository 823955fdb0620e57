"""What changed between two versions, by key: the key file of a version and the merge-join of two of them.

Pure functions and small classes, no I/O. A keyed publish (``Publisher(key="Barcode")``)
writes, beside its archive, ``timestamped/<name>_<version>.keys.gz``: one record per
data row, sorted, so that two versions compare in one streaming merge-join in O(1)
memory, without reading either CSV again. The file is gzip (deterministic, level 1)
of::

    csvpublish.keys/1\\n
    {"key": ["Barcode"], "delimiter": ",", "hash": "blake2b-64", "rows": 3}\\n
    records: key hash (8 bytes) | row hash (8 bytes) | key length (4 bytes, big-endian) | key text

* the **key text** of a row is its key fields as the CSV writes them (quoted where they
  hold the delimiter, a quote, CR or LF), joined by the delimiter, in UTF-8;
* the **key hash** is ``blake2b(key text, digest_size=8)``; the **row hash** is
  ``blake2b(the row's CSV line without its line end, digest_size=8)``;
* records are sorted by (key hash, key text, row hash) as unsigned bytes.

Counts are of distinct keys: a key only in the new version is *added*, only in the old
one *removed*; a key in both is *unchanged* when the rows holding it are the same
(the same multiset of row hashes), else *changed*. A key on more than one row of the
new version is counted once in those counts and once in ``duplicate_keys``.

>>> collector = KeyCollector([0], ",")
>>> collector.add_rows(["1", "2"], ["1,Dune", "2,Emma"])
>>> old = list(collector.records())
>>> collector = KeyCollector([0], ",")
>>> collector.add_rows(["2", "3"], ["2,Emma!", "3,Ulysses"])
>>> tally = merge(old, collector.records())
>>> tally.added, tally.removed, tally.changed, tally.unchanged
(1, 1, 1, 0)
"""

from __future__ import annotations

import hashlib
import json
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError, IntegrityError

FORMAT = "csvpublish.keys/1"
HASH = "blake2b-64"
EXAMPLES = 10
"""Example keys kept of each kind (added, removed, changed, duplicated)."""
_RECORD_HEAD = 20
_CHUNK = 2**20

Record = tuple[bytes, bytes, bytes]
"""One row in a key file: (key hash, row hash, key text)."""


def key_columns(key: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The key option as a tuple of column names (None: no key); :class:`InputError` when it names none."""
    if key is None:
        return None
    names = (key,) if isinstance(key, str) else tuple(key)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InputError(f"key={key!r}: name a column, or a list of columns, such as key='Barcode'")
    if len(set(names)) != len(names):
        raise InputError(f"key={key!r} names a column twice")
    return names


def key_indexes(columns: Sequence[str], key: Sequence[str]) -> list[int]:
    """Where each key column is among ``columns``; :class:`InputError` naming a missing one."""
    missing = [k for k in key if k not in columns]
    if missing:
        raise InputError(
            f"key column(s) {', '.join(map(repr, missing))} are not among the columns ({', '.join(columns)}); "
            "fix key= or the source"
        )
    return [list(columns).index(k) for k in key]


class KeyCollector:
    """The key records of one version as its rows are formatted: two 8-byte hashes and the key text per row.

    Rows go into 256 buckets by the first byte of their key hash, each a few flat
    arrays (no Python object per row); :meth:`records` sorts one bucket at a time.
    """

    def __init__(self, indexes: Sequence[int], delimiter: str) -> None:
        self.indexes = list(indexes)
        self.delimiter = delimiter
        self.rows = 0
        self._buckets = [(bytearray(), bytearray(), bytearray(), array("I")) for _ in range(256)]

    def add_rows(self, keys: Sequence[str], lines: Sequence[str]) -> None:
        """Add rows given as their key texts and CSV lines (without line ends)."""
        buckets, blake = self._buckets, hashlib.blake2b
        for key, line in zip(keys, lines, strict=True):
            text = key.encode("utf-8", "surrogatepass")
            key_hash = blake(text, digest_size=8).digest()
            hashes, rows, texts, ends = buckets[key_hash[0]]
            hashes += key_hash
            rows += blake(line.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            texts += text
            ends.append(len(texts))
        self.rows += len(lines)

    def add_encoded(
        self, keys: memoryview, key_starts: Sequence[int], lines: memoryview, line_starts: Sequence[int], trim: int
    ) -> None:
        """Add rows given as UTF-8 buffers and where each row starts in them (one more: the end).

        A line is ``lines[line_starts[i] : line_starts[i + 1] - trim]``: ``trim`` drops its line end.
        """
        buckets, blake = self._buckets, hashlib.blake2b
        for i in range(len(key_starts) - 1):
            text = keys[key_starts[i] : key_starts[i + 1]]
            key_hash = blake(text, digest_size=8).digest()
            hashes, rows, texts, ends = buckets[key_hash[0]]
            hashes += key_hash
            rows += blake(lines[line_starts[i] : line_starts[i + 1] - trim], digest_size=8).digest()
            texts += text
            ends.append(len(texts))
        self.rows += len(key_starts) - 1

    def key_text(self, row: Sequence[str]) -> str:
        """The key text of a row of CSV field texts."""
        return self.delimiter.join(row[i] for i in self.indexes)

    def records(self) -> Iterator[Record]:
        """Every record in key-file order; each bucket is emptied once sorted (call once)."""
        for bucket in self._buckets:
            hashes, rows, texts, ends = bucket
            starts = [0, *ends[:-1]]
            entries = [
                (bytes(hashes[8 * i : 8 * i + 8]), bytes(texts[starts[i] : ends[i]]), bytes(rows[8 * i : 8 * i + 8]))
                for i in range(len(ends))
            ]
            for stored in bucket[:3]:
                stored.clear()
            del ends[:]
            entries.sort()
            for key_hash, text, row_hash in entries:
                yield key_hash, row_hash, text


def header_bytes(key: Sequence[str], delimiter: str, rows: int) -> bytes:
    """The key file's first two lines: its format, then its key, delimiter, hash and row count as JSON."""
    head = {"key": list(key), "delimiter": delimiter, "hash": HASH, "rows": rows}
    return f"{FORMAT}\n{json.dumps(head, ensure_ascii=False)}\n".encode()


class Encoder:
    """Writes a key file record by record: gzip (deterministic, level 1) in chunks of about 1 MiB to ``write``.

    ``size`` and ``sha256`` describe the stored bytes once :meth:`finish` returned.
    """

    def __init__(self, head: bytes, write: Callable[[bytes], object]) -> None:
        self._deflate = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip, mtime 0: the same records, the same bytes
        self._write = write
        self._digest = hashlib.sha256()
        self._pending = [head]
        self._size = len(head)
        self.size = 0
        self.sha256 = ""

    def add(self, record: Record) -> None:
        key_hash, row_hash, text = record
        self._pending += (key_hash, row_hash, len(text).to_bytes(4, "big"), text)
        self._size += _RECORD_HEAD + len(text)
        if self._size >= _CHUNK:
            self._out(self._deflate.compress(b"".join(self._pending)))
            self._pending, self._size = [], 0

    def _out(self, data: bytes) -> None:
        if data:
            self._digest.update(data)
            self.size += len(data)
            self._write(data)

    def finish(self) -> None:
        self._out(self._deflate.compress(b"".join(self._pending)) + self._deflate.flush())
        self._pending = []
        self.sha256 = self._digest.hexdigest()


def encoded(records: Iterable[Record], encoder: Encoder) -> Iterator[Record]:
    """``records``, each also written by ``encoder`` as it passes (one pass writes the file and feeds a merge)."""
    for record in records:
        encoder.add(record)
        yield record
    encoder.finish()


class KeyFile:
    """Reads a key file from its stored chunks: :attr:`header` first, then the records by iteration.

    Raises :class:`IntegrityError` when the bytes are not a whole key file.
    """

    def __init__(self, chunks: Iterable[bytes], where: str = "key file") -> None:
        self.where = where
        self._chunks = iter(chunks)
        self._inflate = zlib.decompressobj(wbits=31)
        self._buffer = b""
        self.header = self._read_header()

    def _more(self) -> bool:
        for chunk in self._chunks:
            try:
                data = self._inflate.decompress(chunk)
            except zlib.error as exc:
                raise IntegrityError(f"{self.where} is not a gzip stream ({exc})") from None
            if data:
                self._buffer += data
                return True
        return False

    def _read_header(self) -> dict[str, Any]:
        while self._buffer.count(b"\n") < 2:
            if not self._more():
                raise IntegrityError(f"{self.where} has no key-file header")
        magic, head, self._buffer = self._buffer.split(b"\n", 2)
        try:
            header = json.loads(head)
        except ValueError:
            header = None
        if magic.decode(errors="replace") != FORMAT or not isinstance(header, dict) or header.get("hash") != HASH:
            raise IntegrityError(f"{self.where} is not a {FORMAT} key file")
        return header

    def __iter__(self) -> Iterator[Record]:
        count = 0
        while True:
            buffer, pos, end = self._buffer, 0, len(self._buffer)
            while pos + _RECORD_HEAD <= end:
                stop = pos + _RECORD_HEAD + int.from_bytes(buffer[pos + 16 : pos + 20], "big")
                if stop > end:
                    break
                yield buffer[pos : pos + 8], buffer[pos + 8 : pos + 16], buffer[pos + 20 : stop]
                pos = stop
                count += 1
            self._buffer = buffer[pos:]
            if not self._more():
                break
        if self._buffer or not self._inflate.eof or count != self.header.get("rows"):
            raise IntegrityError(f"{self.where} is truncated or damaged ({count} records read)")


@dataclass
class Tally:
    """The counts and examples of one merge-join."""

    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    duplicate_keys: int = 0
    examples: dict[str, list[str]] = field(
        default_factory=lambda: {"added": [], "removed": [], "changed": [], "duplicate": []}
    )

    def note(self, kind: str, key: bytes) -> None:
        kept = self.examples[kind]
        if len(kept) < EXAMPLES:
            kept.append(key.decode("utf-8", "surrogatepass"))


def _groups(records: Iterable[Record], where: str) -> Iterator[tuple[tuple[bytes, bytes], list[bytes]]]:
    """Records of one key at a time, as ((key hash, key text), row hashes); checks the order."""
    it = iter(records)
    current = next(it, None)
    last: tuple[bytes, bytes] | None = None
    while current is not None:
        group = (current[0], current[2])
        if last is not None and group <= last:
            raise IntegrityError(f"{where} is not in key order")
        hashes = [current[1]]
        current = None
        for record in it:
            if record[0] != group[0] or record[2] != group[1]:
                current = record
                break
            hashes.append(record[1])
        last = group
        yield group, hashes


def _counted(groups: Iterator[tuple[tuple[bytes, bytes], list[bytes]]], tally: Tally) -> Iterator[Any]:
    """The groups, counting those of a key on more than one row."""
    for group in groups:
        if len(group[1]) > 1:
            tally.duplicate_keys += 1
            tally.note("duplicate", group[0][1])
        yield group


def merge(old: Iterable[Record], new: Iterable[Record]) -> Tally:
    """Compare two versions' records (each in key-file order) in one pass: counts by distinct key."""
    tally = Tally()
    olds, news = _groups(old, "the old key file"), _counted(_groups(new, "the new key file"), tally)
    o, n = next(olds, None), next(news, None)
    while o is not None or n is not None:
        if n is None or (o is not None and o[0] < n[0]):
            assert o is not None
            tally.removed += 1
            tally.note("removed", o[0][1])
            o = next(olds, None)
        elif o is None or n[0] < o[0]:
            tally.added += 1
            tally.note("added", n[0][1])
            n = next(news, None)
        else:
            if sorted(o[1]) == sorted(n[1]):
                tally.unchanged += 1
            else:
                tally.changed += 1
                tally.note("changed", n[0][1])
            o, n = next(olds, None), next(news, None)
    return tally


@dataclass(frozen=True)
class ChangeSummary:
    """What changed from one version to another, counted by distinct key (see :mod:`csvpublish.changes`).

    ``added + changed + unchanged`` is the new version's distinct keys, ``removed + changed +
    unchanged`` the old one's; ``duplicate_keys`` counts the new version's keys found on more
    than one row. Each ``*_examples`` holds up to 10 keys of that kind, as the CSV writes them
    (several key columns joined by the delimiter).
    """

    key: tuple[str, ...]
    previous_version: str | None
    """The version compared with; None when there was none (every key is added)."""
    version: str
    added: int
    removed: int
    changed: int
    unchanged: int
    duplicate_keys: int = 0
    added_examples: tuple[str, ...] = ()
    removed_examples: tuple[str, ...] = ()
    changed_examples: tuple[str, ...] = ()
    duplicate_examples: tuple[str, ...] = ()

    @classmethod
    def of(cls, tally: Tally, key: Sequence[str], previous: str | None, version: str) -> ChangeSummary:
        ex = tally.examples
        return cls(
            key=tuple(key),
            previous_version=previous,
            version=version,
            added=tally.added,
            removed=tally.removed,
            changed=tally.changed,
            unchanged=tally.unchanged,
            duplicate_keys=tally.duplicate_keys,
            added_examples=tuple(ex["added"]),
            removed_examples=tuple(ex["removed"]),
            changed_examples=tuple(ex["changed"]),
            duplicate_examples=tuple(ex["duplicate"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChangeSummary:
        """Read :meth:`to_dict`'s output back (as a manifest stores it)."""
        known = set(cls.__dataclass_fields__)
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**fields)
