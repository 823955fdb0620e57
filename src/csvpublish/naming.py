"""Where each object of a published snapshot lives, relative to the destination prefix.

Pure functions, no I/O. For ``name="books"`` with compression::

    books_latest.csv.gz                                 the latest snapshot (.tsv.gz with a tab delimiter)
    books_latest.manifest.json                          its manifest
    books.datapackage.json                              its Frictionless Data Package descriptor
    timestamped/books_20261126_053708.csv.gz            an archived version
    timestamped/books_20261126_053708.manifest.json     that version's manifest
    timestamped/books_20261126_053708.keys.gz           its key file, when published with key= (changes.py)
    timestamped/books_20261126_053708.datapackage.json  that version's descriptor
    timestamped/books_20261126_053708_000001.csv.gz     a later publish in the same second
    .csvpublish/books_20261126_053708.lock              reservation of a publish in flight
    .csvpublish/books.latest.lock                       lease held while the latest is replaced
    .csvpublish/books.latest.lock.<token>.break         claim of whoever breaks a dead holder's lease

Version identifiers are the UTC start time ``YYYYmmdd_HHMMSS``; a publish that
finds that second already used appends ``_NNNNNN``, one more than the highest
suffix used in that second, so names sort in publish order and a freed name is
never handed out again while a later one exists.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

from .errors import InputError

CONTROL_DIR = ".csvpublish"
ARCHIVE_DIR = "timestamped"
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"

_VERSION_RE = r"(?P<version>\d{8}_\d{6}(?:_\d{6})?)"
EXTENSIONS = (".csv", ".tsv")
"""The extensions a snapshot is published with: comma (or other) separated, and tab-separated."""


def validate_name(name: object) -> str:
    """Return ``name`` if it can name a snapshot, else raise :class:`InputError`.

    A name is one path segment: not empty, no ``/`` or ``\\``, not ``.`` or
    ``..``, no control characters, at most 200 characters.

    >>> validate_name("books")
    'books'
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError("name must be a non-empty string such as 'books'")
    bad = [c for c in name if unicodedata.category(c).startswith("C")]
    if bad:
        raise InputError(f"name {name!r} contains control characters; use letters, digits, '-' or '_'")
    if "/" in name or "\\" in name:
        raise InputError(f"name {name!r} contains a path separator; give the folder in the destination instead")
    if name in {".", ".."} or name.startswith("."):
        raise InputError(f"name {name!r} must not start with '.'")
    if len(name) > 200:
        raise InputError(f"name {name[:20]!r}... is longer than 200 characters")
    return name


def version_id(moment: datetime, suffix: int = 0) -> str:
    """The version identifier of a publish that started at ``moment`` (UTC).

    >>> version_id(datetime(2026, 11, 26, 5, 37, 8, tzinfo=timezone.utc))
    '20261126_053708'
    >>> version_id(datetime(2026, 11, 26, 5, 37, 8, tzinfo=timezone.utc), 3)
    '20261126_053708_000003'
    """
    stamp = moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)
    return stamp if suffix == 0 else f"{stamp}_{suffix:06d}"


def version_time(version: str) -> datetime:
    """The UTC second a version identifier names."""
    return datetime.strptime(version[:15], TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)


def next_version(moment: datetime, taken: set[str]) -> str:
    """The first version identifier for ``moment`` that sorts after every taken one in that second.

    >>> t = datetime(2026, 11, 26, 5, 37, 8, tzinfo=timezone.utc)
    >>> next_version(t, set())
    '20261126_053708'
    >>> next_version(t, {'20261126_053708', '20261126_053708_000004'})
    '20261126_053708_000005'
    """
    base = version_id(moment)
    same_second = [v for v in taken if v[:15] == base]
    if not same_second:
        return base
    highest = max(int(v[16:]) if len(v) > 15 else 0 for v in same_second)
    return version_id(moment, highest + 1)


class ArchiveName(NamedTuple):
    """What an archive's file name says: its version, whether it is gzipped, its extension."""

    version: str
    compressed: bool
    extension: str = ".csv"


@dataclass(frozen=True)
class Layout:
    """Relative paths of one snapshot name's objects.

    >>> layout = Layout("books", compression=True)
    >>> layout.latest
    'books_latest.csv.gz'
    >>> layout.archive("20261126_053708")
    'timestamped/books_20261126_053708.csv.gz'
    >>> Layout("books", compression=False, extension=".tsv").latest
    'books_latest.tsv'
    """

    name: str
    compression: bool = True
    extension: str = ".csv"

    def __post_init__(self) -> None:
        validate_name(self.name)
        if self.extension not in EXTENSIONS:
            raise InputError(f"extension {self.extension!r} is not one of {', '.join(EXTENSIONS)}")

    @classmethod
    def of(cls, name: str, archive: ArchiveName) -> Layout:
        """The layout an archive was published with."""
        return cls(name, archive.compressed, archive.extension)

    def variants(self) -> list[Layout]:
        """This name's layout with each compression and extension: every form a version may have."""
        return [Layout(self.name, gz, ext) for ext in EXTENSIONS for gz in (True, False)]

    @property
    def suffix(self) -> str:
        return self.extension + (".gz" if self.compression else "")

    @property
    def content_type(self) -> str:
        if self.compression:
            return "application/gzip"
        kind = "text/tab-separated-values" if self.extension == ".tsv" else "text/csv"
        return f"{kind}; charset=utf-8"

    @property
    def latest(self) -> str:
        return f"{self.name}_latest{self.suffix}"

    @property
    def latest_manifest(self) -> str:
        return f"{self.name}_latest.manifest.json"

    def archive(self, version: str) -> str:
        return f"{ARCHIVE_DIR}/{self.name}_{version}{self.suffix}"

    def archive_manifest(self, version: str) -> str:
        return f"{ARCHIVE_DIR}/{self.name}_{version}.manifest.json"

    def keys(self, version: str) -> str:
        """The key file of a keyed version (:mod:`csvpublish.changes`)."""
        return f"{ARCHIVE_DIR}/{self.name}_{version}.keys.gz"

    @property
    def descriptor(self) -> str:
        """The latest's Data Package descriptor (one name whatever the compression or delimiter)."""
        return f"{self.name}.datapackage.json"

    def archive_descriptor(self, version: str) -> str:
        return f"{ARCHIVE_DIR}/{self.name}_{version}.datapackage.json"

    def reservation(self, version: str) -> str:
        return f"{CONTROL_DIR}/{self.name}_{version}.lock"

    @property
    def latest_lock(self) -> str:
        return f"{CONTROL_DIR}/{self.name}.latest.lock"

    def lock_claim(self, token: str) -> str:
        """The claim of whoever breaks the dead lock whose marker has ``token``."""
        tag = token if re.fullmatch(r"[0-9a-z]{1,64}", token) else "unreadable"
        return f"{CONTROL_DIR}/{self.name}.latest.lock.{tag}.break"

    def is_lock_claim(self, basename: str) -> bool:
        return re.fullmatch(re.escape(self.name) + r"\.latest\.lock\.[0-9a-z]{1,64}\.break", basename) is not None

    # --- parsing listings ----------------------------------------------------------

    def parse_archive(self, basename: str) -> ArchiveName | None:
        """What ``basename`` says when it is an archive of this name, else None.

        Compressed and plain, ``.csv`` and ``.tsv`` archives are all recognised,
        so switching compression or delimiter keeps the history readable.

        >>> Layout("books").parse_archive("books_20261126_053708.tsv.gz")
        ArchiveName(version='20261126_053708', compressed=True, extension='.tsv')
        """
        m = re.fullmatch(re.escape(self.name) + "_" + _VERSION_RE + r"(?P<ext>\.csv|\.tsv)(?P<gz>\.gz)?", basename)
        if m is None:
            return None
        return ArchiveName(m.group("version"), m.group("gz") is not None, m.group("ext"))

    def parse_manifest(self, basename: str) -> str | None:
        m = re.fullmatch(re.escape(self.name) + "_" + _VERSION_RE + r"\.manifest\.json", basename)
        return m.group("version") if m else None

    def parse_keys(self, basename: str) -> str | None:
        m = re.fullmatch(re.escape(self.name) + "_" + _VERSION_RE + r"\.keys\.gz", basename)
        return m.group("version") if m else None

    def parse_descriptor(self, basename: str) -> str | None:
        m = re.fullmatch(re.escape(self.name) + "_" + _VERSION_RE + r"\.datapackage\.json", basename)
        return m.group("version") if m else None

    def parse_reservation(self, basename: str) -> str | None:
        m = re.fullmatch(re.escape(self.name) + "_" + _VERSION_RE + r"\.lock", basename)
        return m.group("version") if m else None

    def is_temp_of(self, basename: str) -> bool:
        """True for a temp file left by a local write of one of this name's objects (locks included)."""
        prefixes = (f".{self.name}_", f".{self.name}.latest.lock", f".{self.descriptor}")
        return basename.startswith(prefixes) and basename.endswith(".tmp")
