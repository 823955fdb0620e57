"""A deterministic, book-like table for the benchmark, and the tracker that serves it.

The 54 columns are those of the pipeline's book tracker (../shared/notes/book-columns.md).
Values have realistic lengths and shapes: titles and MARC fields in several
languages (accents, CJK), GRIN and ISO timestamps, ETags with their literal
quotes, URLs and storage paths, OCLC lists with commas, notes with quotes and the
odd newline, and many empty fields. About 550 bytes of CSV per row.

The rows live in a SQLite file, made once per seed and reused (``ensure_db``).
:class:`Tracker` reads it the way the pipeline's tracker does: one
:class:`BookRecord` per database row, ``to_csv_row()`` renders it. So the
"tracker" source mode pays what the real pipeline pays for its source (fetching
rows, building a million record objects, calling ``to_csv_row()``), and every
record owns its strings, as records read from a database do.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

GENERATOR_VERSION = 3
"""Bump when the generated values change: cached databases carry it in their name."""

HEADERS = [
    "Barcode", "Title", "Scanned Date", "Converted Date", "Downloaded Date", "Processed Date",
    "Analyzed Date", "OCR Date", "Google Books Link", "Processing Request Timestamp", "GRIN State",
    "GRIN Viewability", "GRIN Opted Out", "GRIN Conditions", "GRIN Scannable", "GRIN Tagging",
    "GRIN Audit", "GRIN Material Error %", "GRIN Overall Error %", "GRIN Claimed",
    "GRIN OCR Analysis Score", "GRIN OCR GTD Score", "GRIN Digitization Method", "GRIN Check-In Date",
    "GRIN Source Library Bibkey", "GRIN Rubbish", "GRIN Allow Download Updated Date",
    "GRIN Viewability Updated Date", "Enrichment Timestamp", "MARC Control Number", "MARC Date Type",
    "MARC Date 1", "MARC Date 2", "MARC Language", "MARC LCCN", "MARC LC Call Number", "MARC ISBN",
    "MARC OCLC Numbers", "MARC Title", "MARC Title Remainder", "MARC Author Personal",
    "MARC Author Corporate", "MARC Author Meeting", "MARC Subjects", "MARC Genres", "MARC General Note",
    "MARC Extraction Timestamp", "Storage Path", "Last ETag Check", "Encrypted ETag", "Is Decrypted",
    "Sync Timestamp", "Created At", "Updated At",
]  # fmt: skip

FIELDS = [
    "barcode", "title", "scanned_date", "converted_date", "downloaded_date", "processed_date",
    "analyzed_date", "ocr_date", "google_books_link", "processing_request_timestamp", "grin_state",
    "grin_viewability", "grin_opted_out", "grin_conditions", "grin_scannable", "grin_tagging",
    "grin_audit", "grin_material_error_percent", "grin_overall_error_percent", "grin_claimed",
    "grin_ocr_analysis_score", "grin_ocr_gtd_score", "grin_digitization_method", "grin_check_in_date",
    "grin_source_library_bibkey", "grin_rubbish", "grin_allow_download_updated_date",
    "grin_viewability_updated_date", "enrichment_timestamp", "marc_control_number", "marc_date_type",
    "marc_date_1", "marc_date_2", "marc_language", "marc_lccn", "marc_lc_call_number", "marc_isbn",
    "marc_oclc_numbers", "marc_title", "marc_title_remainder", "marc_author_personal",
    "marc_author_corporate", "marc_author_meeting", "marc_subjects", "marc_genres", "marc_general_note",
    "marc_extraction_timestamp", "storage_path", "last_etag_check", "encrypted_etag", "is_decrypted",
    "sync_timestamp", "created_at", "updated_at",
]  # fmt: skip

assert len(HEADERS) == len(FIELDS) == 54


@dataclass
class BookRecord:
    """One book, as the pipeline's tracker models it (a plain dataclass, optional fields None)."""

    barcode: str
    title: str | None = None
    scanned_date: str | None = None
    converted_date: str | None = None
    downloaded_date: str | None = None
    processed_date: str | None = None
    analyzed_date: str | None = None
    ocr_date: str | None = None
    google_books_link: str | None = None
    processing_request_timestamp: str | None = None
    grin_state: str | None = None
    grin_viewability: str | None = None
    grin_opted_out: str | None = None
    grin_conditions: str | None = None
    grin_scannable: str | None = None
    grin_tagging: str | None = None
    grin_audit: str | None = None
    grin_material_error_percent: str | None = None
    grin_overall_error_percent: str | None = None
    grin_claimed: str | None = None
    grin_ocr_analysis_score: str | None = None
    grin_ocr_gtd_score: str | None = None
    grin_digitization_method: str | None = None
    grin_check_in_date: str | None = None
    grin_source_library_bibkey: str | None = None
    grin_rubbish: str | None = None
    grin_allow_download_updated_date: str | None = None
    grin_viewability_updated_date: str | None = None
    enrichment_timestamp: str | None = None
    marc_control_number: str | None = None
    marc_date_type: str | None = None
    marc_date_1: str | None = None
    marc_date_2: str | None = None
    marc_language: str | None = None
    marc_lccn: str | None = None
    marc_lc_call_number: str | None = None
    marc_isbn: str | None = None
    marc_oclc_numbers: str | None = None
    marc_title: str | None = None
    marc_title_remainder: str | None = None
    marc_author_personal: str | None = None
    marc_author_corporate: str | None = None
    marc_author_meeting: str | None = None
    marc_subjects: str | None = None
    marc_genres: str | None = None
    marc_general_note: str | None = None
    marc_extraction_timestamp: str | None = None
    storage_path: str | None = None
    last_etag_check: str | None = None
    encrypted_etag: str | None = None
    is_decrypted: bool = False
    sync_timestamp: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def csv_headers(cls) -> list[str]:
        return list(HEADERS)

    def to_csv_row(self) -> list[str]:
        return [
            self.barcode,
            self.title or "",
            self.scanned_date or "",
            self.converted_date or "",
            self.downloaded_date or "",
            self.processed_date or "",
            self.analyzed_date or "",
            self.ocr_date or "",
            self.google_books_link or "",
            self.processing_request_timestamp or "",
            self.grin_state or "",
            self.grin_viewability or "",
            self.grin_opted_out or "",
            self.grin_conditions or "",
            self.grin_scannable or "",
            self.grin_tagging or "",
            self.grin_audit or "",
            self.grin_material_error_percent or "",
            self.grin_overall_error_percent or "",
            self.grin_claimed or "",
            self.grin_ocr_analysis_score or "",
            self.grin_ocr_gtd_score or "",
            self.grin_digitization_method or "",
            self.grin_check_in_date or "",
            self.grin_source_library_bibkey or "",
            self.grin_rubbish or "",
            self.grin_allow_download_updated_date or "",
            self.grin_viewability_updated_date or "",
            self.enrichment_timestamp or "",
            self.marc_control_number or "",
            self.marc_date_type or "",
            self.marc_date_1 or "",
            self.marc_date_2 or "",
            self.marc_language or "",
            self.marc_lccn or "",
            self.marc_lc_call_number or "",
            self.marc_isbn or "",
            self.marc_oclc_numbers or "",
            self.marc_title or "",
            self.marc_title_remainder or "",
            self.marc_author_personal or "",
            self.marc_author_corporate or "",
            self.marc_author_meeting or "",
            self.marc_subjects or "",
            self.marc_genres or "",
            self.marc_general_note or "",
            self.marc_extraction_timestamp or "",
            self.storage_path or "",
            self.last_etag_check or "",
            self.encrypted_etag or "",
            str(bool(self.is_decrypted)),
            self.sync_timestamp or "",
            self.created_at or "",
            self.updated_at or "",
        ]


def current_rss() -> int:
    """This process's resident set size now, in bytes (Linux; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


class Tracker:
    """Serves the table like the pipeline's book tracker: records built from database rows."""

    def __init__(self, db_path: str | os.PathLike[str], rows: int) -> None:
        self.db_path = os.fspath(db_path)
        self.rows = rows
        self.list_rss: int | None = None
        """RSS right after :meth:`get_all_books_csv_data` built its list (what the list costs)."""

    def iter_books(self) -> Iterator[BookRecord]:
        """Stream the records, one database row at a time."""
        con = sqlite3.connect(self.db_path)
        try:
            cursor = con.execute(f"SELECT {', '.join(FIELDS)} FROM books ORDER BY id LIMIT ?", (self.rows,))
            for row in cursor:
                yield BookRecord(*row)
        finally:
            con.close()

    async def get_all_books_csv_data(self) -> list[BookRecord]:
        """Every record in one list, as the tracker of the refactoring plan returns them."""
        books = list(self.iter_books())
        self.list_rss = current_rss()
        return books

    def rows_list(self) -> list[list[str]]:
        """Every row already rendered (the "prebuilt" source mode builds this before the clock)."""
        return [book.to_csv_row() for book in self.iter_books()]


class ListTracker:
    """A tracker whose ``get_all_books_csv_data()`` returns a list built earlier."""

    def __init__(self, rows: list[list[str]]) -> None:
        self._rows = rows
        self.list_rss: int | None = None

    async def get_all_books_csv_data(self) -> list[list[str]]:
        self.list_rss = current_rss()
        return self._rows


# --- generation ------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return text.split()


_EN = _split(
    "history of the natural philosophy general report annual survey proceedings society royal "
    "letters journal travels account new and complete collection works poems essays memoirs life "
    "times church parish county state commission studies principles elements treatise practical "
    "geology botany agriculture chemistry law cases court reports english american british colonial "
    "lectures sermons catalogue library museum university college selected writings correspondence "
    "early modern medieval ancient voyage north south east west river valley island mountain war "
    "revolution constitution government public education rural industrial trade commerce railway"
)
_FR = _split(
    "histoire de la nouvelle société mémoires académie royale des sciences belles-lettres et beaux-arts "
    "œuvres complètes poésies théâtre correspondance générale études économie politique révolution "
    "française voyage en orient église réformée législation coutumes éléments géométrie"
)
_DE = _split(
    "geschichte der deutschen literatur sämtliche werke briefe über die natur abhandlungen königlichen "
    "akademie wissenschaften zu berlin zeitschrift für philosophie grundzüge staatsrecht jahrbuch "
    "österreichischen mittelalters untersuchungen gedichte"
)
_LA = _split("de rerum natura opera omnia epistolae historia ecclesiastica commentarii in libros tractatus")
_CJK = [
    "中国古代文学史", "日本の歴史", "東京大学紀要", "清史稿", "朝鮮王朝實錄", "現代日本文學全集", "史記",
    "論語集注", "明治文化研究", "漢書藝文志", "國語辭典", "東洋史研究", "四庫全書總目", "宋元學案",
]  # fmt: skip
_SURNAMES = [
    "Smith", "Dumas", "Müller", "Gómez", "Dvořák", "Łukasiewicz", "O'Brien", "Johnson", "Brontë",
    "Goethe", "Hugo", "Tolstoy", "Andersen", "Chateaubriand", "Darwin", "Humboldt", "Núñez", "Søren",
    "Żeromski", "Verne", "Cervantes Saavedra", "Dickens", "Twain", "Poe", "Whitman", "Balzac",
]  # fmt: skip
_GIVEN = ["John", "Alexandre", "Johann Wolfgang von", "Charles", "Mary", "Victor", "Lev", "Hans Christian",
          "Antonín", "Jan", "Elizabeth", "Friedrich", "Henry", "Walt", "Honoré de", "Jules", "Miguel de"]  # fmt: skip
_CJK_NAMES = ["魯迅, 1881-1936.", "夏目漱石, 1867-1916.", "司馬遷, 145-86 B.C.", "福澤諭吉, 1835-1901."]
_CORPORATE = [
    "Great Britain. Parliament. House of Commons.", "United States. Congress. Senate. Committee on Finance.",
    "Massachusetts. General Court.", "Académie des sciences (France)", "Royal Society (Great Britain)",
    "Harvard University. Museum of Comparative Zoology.", "Smithsonian Institution.",
]  # fmt: skip
_MEETINGS = [
    "International Congress of Orientalists (10th : 1894 : Geneva, Switzerland)",
    "Exposition universelle (1889 : Paris, France)",
    "World's Columbian Exposition (1893 : Chicago, Ill.)",
]
_SUBJECT_TOPICS = [
    "France", "Paris (France)", "United States", "Massachusetts", "Botany", "Geology", "Natural history",
    "Church history", "English poetry", "Law", "Agriculture", "Railroads", "China", "Japan", "Germany",
    "Philosophy", "Education", "Medicine", "Women", "Slavery", "Indians of North America", "Music",
]  # fmt: skip
_SUBJECT_SUBS = [
    "History",
    "Social life and customs",
    "Politics and government",
    "Description and travel",
    "Biography",
    "Periodicals",
    "Early works to 1800",
    "Bibliography",
    "Sources",
    "Juvenile literature",
]
_CENTURIES = [
    "17th century",
    "18th century",
    "19th century",
    "20th century",
    "Revolution, 1789-1799",
    "Civil War, 1861-1865",
]
_GENRES = ["Fiction", "Poetry", "Periodicals", "Biography", "Government publications", "Catalogs",
           "Dictionaries", "Sermons", "Textbooks", "Maps"]  # fmt: skip
_NOTES = [
    "Includes index.", "Includes bibliographical references (p. 301-305) and index.",
    "Reprinted from the Quarterly Review.",
    'At head of title: "Smithsonian Institution."', "Title vignette; frontispiece (portrait).",
    "Half-title: Works, vol. III.", "In French, with English translation on facing pages.",
    "Added t.p. in Latin.", "Originally published: London : Macmillan, 1872.", "Errata slip inserted.",
    "Bound with: Sermons preached on several occasions, 1790.", 'Cover title: "Report of the commissioners".',
]  # fmt: skip
_STATES = [
    "CONVERTED",
    "CONVERTED",
    "CONVERTED",
    "NEW",
    "IN_PROCESS",
    "NOT_AVAILABLE_FOR_DOWNLOAD",
    "PREVIOUSLY_DOWNLOADED",
]
_VIEW = ["VIEW_FULL", "VIEW_FULL", "VIEW_SNIPPET", "VIEW_NONE", "VIEW_METADATA"]
_METHODS = ["NON_DESTRUCTIVE", "NON_DESTRUCTIVE", "DESTRUCTIVE"]
_LANGS = ["eng"] * 6 + ["fre", "fre", "ger", "ger", "lat", "chi", "jpn", "ita", "spa", "rus"]
_LC_CLASSES = ["PQ", "PR", "PS", "QH", "QE", "KF", "BX", "DC", "DS", "HD", "HF", "E", "F", "PT", "Z", "BL"]


def _maybe(rng: random.Random, p: float, value: str) -> str | None:
    return value if rng.random() < p else None


class _Pools:
    """Timestamp strings drawn once per seed: picking one is much cheaper than formatting one."""

    def __init__(self, rng: random.Random) -> None:
        self.grin = [
            f"{rng.randint(2006, 2024)}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
            for _ in range(60_000)
        ]
        self.iso = [
            f"{rng.randint(2023, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
            for _ in range(60_000)
        ]


def _iso(rng: random.Random, pools: _Pools, micro: bool = True) -> str:
    base = pools.iso[int(rng.random() * len(pools.iso))]
    return f"{base}.{int(rng.random() * 1e6):06d}+00:00" if micro else base


def _grin_date(rng: random.Random, pools: _Pools) -> str:
    return pools.grin[int(rng.random() * len(pools.grin))]


def _words(rng: random.Random, vocab: list[str], lo: int, hi: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(rng.randint(lo, hi)))


def _title(rng: random.Random) -> tuple[str, str]:
    """(title, language code)."""
    r = rng.random()
    if r < 0.05:
        return rng.choice(_CJK) + rng.choice(["", " 第一卷", "（上）", " / 編者不明"]), rng.choice(["chi", "jpn"])
    vocab, lang = (_EN, "eng") if r < 0.72 else (_FR, "fre") if r < 0.85 else (_DE, "ger") if r < 0.95 else (_LA, "lat")
    title = _words(rng, vocab, 2, 7).capitalize()
    if rng.random() < 0.3:
        title += ", " + _words(rng, vocab, 1, 5)
    if rng.random() < 0.2:
        title += ": " + _words(rng, vocab, 2, 6)
    if rng.random() < 0.04:
        title = title.replace(" ", ' "', 1) + '"'
    return title, lang


def _author(rng: random.Random, lang: str) -> str:
    if lang in {"chi", "jpn"}:
        return rng.choice(_CJK_NAMES)
    born = rng.randint(1600, 1900)
    dates = f", {born}-{born + rng.randint(25, 90)}." if rng.random() < 0.7 else "."
    return f"{rng.choice(_SURNAMES)}, {rng.choice(_GIVEN)}{dates}"


def _subjects(rng: random.Random) -> str:
    out = []
    for _ in range(rng.randint(1, 2)):
        parts = [rng.choice(_SUBJECT_TOPICS), rng.choice(_SUBJECT_SUBS)]
        if rng.random() < 0.5:
            parts.append(rng.choice(_CENTURIES))
        out.append(" -- ".join(parts))
    return "; ".join(out)


def _note(rng: random.Random) -> str:
    note = " ".join(rng.choice(_NOTES) for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.06:
        note = note.replace(". ", ".\n", 1)  # the odd embedded newline
    return note


def generate_row(rng: random.Random, pools: _Pools, i: int) -> tuple[object, ...]:
    """Row ``i`` as stored in the database (54 values, None for empty, is_decrypted 0/1)."""
    barcode = f"3{(i * 7_919_447 + 104_729) % 10**13:013d}"
    title, lang = _title(rng)
    state = rng.choice(_STATES)
    converted = state in {"CONVERTED", "PREVIOUSLY_DOWNLOADED"}
    synced = converted and rng.random() < 0.5
    enriched = rng.random() < 0.5
    marc = enriched and rng.random() < 0.9
    gid = base64.urlsafe_b64encode(rng.getrandbits(72).to_bytes(9, "big")).decode()
    bib = f"99{rng.randint(10**11, 10**12 - 1)}03941"
    etag = f'"{rng.getrandbits(128):032x}-{rng.randint(1, 40)}"'
    year = rng.randint(1600, 1990)
    call = (
        f"{rng.choice(_LC_CLASSES)}{rng.randint(1, 9999)}.{rng.choice('ABCDEFGHKLMNPRSTW')}{rng.randint(1, 99)} {year}"
    )
    oclc = ", ".join(str(rng.randint(10**6, 10**9)) for _ in range(rng.choice([1, 1, 1, 2, 3])))
    return (
        barcode,
        title,
        _grin_date(rng, pools) if rng.random() < 0.95 else None,
        _grin_date(rng, pools) if converted else None,
        _grin_date(rng, pools) if synced else None,
        _iso(rng, pools, micro=False) if synced and rng.random() < 0.8 else None,
        _iso(rng, pools, micro=False) if synced and rng.random() < 0.5 else None,
        _iso(rng, pools, micro=False) if synced and rng.random() < 0.6 else None,
        f"https://books.google.com/books?id={gid}" if rng.random() < 0.6 else None,
        _iso(rng, pools) if rng.random() < 0.3 else None,
        state,
        _maybe(rng, 0.9, rng.choice(_VIEW)),
        _maybe(rng, 0.9, rng.choice(["false", "false", "false", "true"])),
        _maybe(rng, 0.25, rng.choice(["1", "2, 5", "3", "1, 4, 7"])),
        _maybe(rng, 0.9, rng.choice(["true", "true", "false"])),
        _maybe(rng, 0.9, rng.choice(["true", "false"])),
        _maybe(rng, 0.15, rng.choice(["PASSED", "FAILED", "PENDING"])),
        _maybe(rng, 0.8, f"{rng.random() * 3:.2f}%"),
        _maybe(rng, 0.8, f"{rng.random() * 12:.2f}%"),
        _maybe(rng, 0.9, rng.choice(["true", "false"])),
        _maybe(rng, 0.7, str(rng.randint(40, 100))),
        _maybe(rng, 0.7, str(rng.randint(40, 100))),
        _maybe(rng, 0.9, rng.choice(_METHODS)),
        _maybe(rng, 0.9, _grin_date(rng, pools)),
        _maybe(rng, 0.95, bib),
        _maybe(rng, 0.9, "false"),
        _iso(rng, pools, micro=False) if rng.random() < 0.3 else None,
        _iso(rng, pools, micro=False) if rng.random() < 0.3 else None,
        _iso(rng, pools) if enriched else None,
        bib if marc else None,
        rng.choice(["s", "s", "s", "m", "q", "r"]) if marc else None,
        str(year) if marc else None,
        (str(year + rng.randint(1, 30)) if rng.random() < 0.2 else None) if marc else None,
        (lang if rng.random() < 0.9 else rng.choice(_LANGS)) if marc else None,
        (f"   {rng.randint(10**7, 10**8 - 1)} " if rng.random() < 0.2 else None) if marc else None,
        call if marc and rng.random() < 0.85 else None,
        (f"978{rng.randint(10**9, 10**10 - 1)}" if year > 1970 and rng.random() < 0.8 else None) if marc else None,
        oclc if marc and rng.random() < 0.8 else None,
        f"{title} /" if marc else None,
        (_words(rng, _EN, 2, 8) if rng.random() < 0.35 else None) if marc else None,
        (_author(rng, lang) if rng.random() < 0.75 else None) if marc else None,
        (rng.choice(_CORPORATE) if rng.random() < 0.1 else None) if marc else None,
        (rng.choice(_MEETINGS) if rng.random() < 0.02 else None) if marc else None,
        (_subjects(rng) if rng.random() < 0.7 else None) if marc else None,
        (rng.choice(_GENRES) if rng.random() < 0.3 else None) if marc else None,
        (_note(rng) if rng.random() < 0.35 else None) if marc else None,
        _iso(rng, pools) if marc else None,
        f"s3://grin-raw/HARVARD/{barcode}.tar.gz.gpg" if synced else None,
        _iso(rng, pools) if synced else None,
        etag if synced else None,
        1 if synced and rng.random() < 0.6 else 0,
        _iso(rng, pools) if synced else None,
        _iso(rng, pools),
        _iso(rng, pools),
    )


def db_path_for(workdir: Path, seed: int, rows: int) -> Path:
    return workdir / f"books-v{GENERATOR_VERSION}-seed{seed}-{rows}.sqlite"


def ensure_db(workdir: Path, seed: int, rows: int) -> Path:
    """The table's SQLite file with at least ``rows`` rows; built once, then reused."""
    workdir.mkdir(parents=True, exist_ok=True)
    for existing in sorted(workdir.glob(f"books-v{GENERATOR_VERSION}-seed{seed}-*.sqlite"), key=lambda p: len(p.name)):
        size = existing.stem.rsplit("-", 1)[-1]
        if size.isdigit() and int(size) >= rows:
            return existing  # a larger table starts with the same rows
    path = db_path_for(workdir, seed, rows)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    columns = ", ".join(f"{name} {'INTEGER' if name == 'is_decrypted' else 'TEXT'}" for name in FIELDS)
    con.execute(f"CREATE TABLE books (id INTEGER PRIMARY KEY, {columns})")
    rng = random.Random(seed)
    pools = _Pools(rng)
    marks = ", ".join("?" * (len(FIELDS) + 1))
    con.executemany(
        f"INSERT INTO books (id, {', '.join(FIELDS)}) VALUES ({marks})",
        ((i, *generate_row(rng, pools, i)) for i in range(rows)),
    )
    con.commit()
    con.close()
    os.replace(tmp, path)
    return path


@dataclass
class Fixture:
    """The pre-written CSV of the first ``rows`` rows and its gzip (csvpublish's default compressor)."""

    rows: int
    db: Path
    csv: Path
    gz: Path
    csv_size: int
    csv_sha256: str
    gz_size: int
    flat_db: Path | None = None
    """The frames mode's SQLite file (see :func:`ensure_frame_sources`)."""
    arrow: Path | None = None
    """The frames mode's Arrow IPC stream (see :func:`ensure_frame_sources`)."""


def ensure_fixture(workdir: Path, seed: int, db: Path, rows: int) -> Fixture:
    """Write ``books-<rows>.csv`` (csv.writer, excel dialect) and its ``.gz`` once; reuse them after."""
    from csvpublish.compression import GzipCompressor

    stem = f"{db.stem}-first{rows}"
    csv_path, gz_path, meta_path = (workdir / f"{stem}{ext}" for ext in (".csv", ".csv.gz", ".meta"))
    if not meta_path.exists():
        with open(csv_path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(HEADERS)
            writer.writerows(book.to_csv_row() for book in Tracker(db, rows).iter_books())
        digest = hashlib.sha256()
        compressor = GzipCompressor()
        with open(csv_path, "rb") as src, open(gz_path, "wb") as dst:
            while chunk := src.read(2**20):
                digest.update(chunk)
                dst.write(compressor.compress(chunk))
            dst.write(compressor.flush())
        meta_path.write_text(digest.hexdigest() + "\n")
    sha = meta_path.read_text().strip()
    return Fixture(rows, db, csv_path, gz_path, csv_path.stat().st_size, sha, gz_path.stat().st_size)


FLAT_TABLE = "books_csv"
"""The table of the frames mode's SQLite file: the fixture's rows, one TEXT column per header."""
ARROW_BATCH_ROWS = 10_000


def ensure_frame_sources(fixture: Fixture) -> Fixture:
    """The frames mode's two sources, made once from the fixture CSV and reused after.

    ``<fixture>-flat.sqlite`` holds :data:`FLAT_TABLE`: one TEXT column per header, named
    as the header, the values as the CSV has them (an empty field is NULL), in the CSV's
    order, so ``SELECT * FROM books_csv`` gives the fixture's rows. ``<fixture>.arrows`` is
    an Arrow IPC stream of the same rows: string columns, empty strings kept as ``""``,
    batches of :data:`ARROW_BATCH_ROWS` rows.
    """
    base = fixture.csv.with_suffix("")
    flat_db, arrow = base.with_name(base.name + "-flat.sqlite"), base.with_name(base.name + ".arrows")
    if not flat_db.exists():
        tmp = flat_db.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        con = sqlite3.connect(tmp)
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute(f"CREATE TABLE {FLAT_TABLE} ({', '.join(f'{_quoted(h)} TEXT' for h in HEADERS)})")
        with open(fixture.csv, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader)  # the header
            marks = ", ".join("?" * len(HEADERS))
            con.executemany(f"INSERT INTO {FLAT_TABLE} VALUES ({marks})", ([v or None for v in row] for row in reader))
        con.commit()
        con.close()
        os.replace(tmp, flat_db)
    if not arrow.exists():
        import pyarrow as pa
        from pyarrow import csv as pacsv

        table = pacsv.read_csv(
            fixture.csv,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(HEADERS, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        ).combine_chunks()
        if table.column_names != HEADERS or table.num_rows != fixture.rows:
            raise RuntimeError(f"{fixture.csv}: pyarrow read {table.num_rows} rows of {table.column_names[:3]}…")
        tmp = arrow.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=ARROW_BATCH_ROWS)
        os.replace(tmp, arrow)
    return replace(fixture, flat_db=flat_db, arrow=arrow)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
