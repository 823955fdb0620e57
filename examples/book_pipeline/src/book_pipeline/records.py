"""``BookRecord``: one book of the tracker, and the 54 CSV columns it exports, ``Barcode`` first."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# (CSV header, record attribute), in export order. The attribute is also the SQLite column.
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Barcode", "barcode"),
    ("Title", "title"),
    ("Scanned Date", "scanned_date"),
    ("Converted Date", "converted_date"),
    ("Downloaded Date", "downloaded_date"),
    ("Processed Date", "processed_date"),
    ("Analyzed Date", "analyzed_date"),
    ("OCR Date", "ocr_date"),
    ("Google Books Link", "google_books_link"),
    ("Processing Request Timestamp", "processing_request_timestamp"),
    ("GRIN State", "grin_state"),
    ("GRIN Viewability", "grin_viewability"),
    ("GRIN Opted Out", "grin_opted_out"),
    ("GRIN Conditions", "grin_conditions"),
    ("GRIN Scannable", "grin_scannable"),
    ("GRIN Tagging", "grin_tagging"),
    ("GRIN Audit", "grin_audit"),
    ("GRIN Material Error %", "grin_material_error_percent"),
    ("GRIN Overall Error %", "grin_overall_error_percent"),
    ("GRIN Claimed", "grin_claimed"),
    ("GRIN OCR Analysis Score", "grin_ocr_analysis_score"),
    ("GRIN OCR GTD Score", "grin_ocr_gtd_score"),
    ("GRIN Digitization Method", "grin_digitization_method"),
    ("GRIN Check-In Date", "grin_check_in_date"),
    ("GRIN Source Library Bibkey", "grin_source_library_bibkey"),
    ("GRIN Rubbish", "grin_rubbish"),
    ("GRIN Allow Download Updated Date", "grin_allow_download_updated_date"),
    ("GRIN Viewability Updated Date", "grin_viewability_updated_date"),
    ("Enrichment Timestamp", "enrichment_timestamp"),
    ("MARC Control Number", "marc_control_number"),
    ("MARC Date Type", "marc_date_type"),
    ("MARC Date 1", "marc_date_1"),
    ("MARC Date 2", "marc_date_2"),
    ("MARC Language", "marc_language"),
    ("MARC LCCN", "marc_lccn"),
    ("MARC LC Call Number", "marc_lc_call_number"),
    ("MARC ISBN", "marc_isbn"),
    ("MARC OCLC Numbers", "marc_oclc_numbers"),
    ("MARC Title", "marc_title"),
    ("MARC Title Remainder", "marc_title_remainder"),
    ("MARC Author Personal", "marc_author_personal"),
    ("MARC Author Corporate", "marc_author_corporate"),
    ("MARC Author Meeting", "marc_author_meeting"),
    ("MARC Subjects", "marc_subjects"),
    ("MARC Genres", "marc_genres"),
    ("MARC General Note", "marc_general_note"),
    ("MARC Extraction Timestamp", "marc_extraction_timestamp"),
    ("Storage Path", "storage_path"),
    ("Last ETag Check", "last_etag_check"),
    ("Encrypted ETag", "encrypted_etag"),
    ("Is Decrypted", "is_decrypted"),
    ("Sync Timestamp", "sync_timestamp"),
    ("Created At", "created_at"),
    ("Updated At", "updated_at"),
)

ATTRIBUTE_OF: dict[str, str] = dict(CSV_COLUMNS)
"""CSV header -> record attribute."""

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def parse_bool(text: str) -> bool | None:
    """``"True"``/``"False"`` (and the usual spellings) to a bool; an empty field to None.

    >>> parse_bool("True"), parse_bool("no"), parse_bool("")
    (True, False, None)
    """
    value = text.strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean; write True or False")


@dataclass(slots=True)
class BookRecord:
    """One tracked book. Every field but ``barcode`` is optional; None exports as an empty field.

    Dates and scores stay the strings the upstream systems gave, so an export
    reproduces them exactly.
    """

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
    is_decrypted: bool | None = None
    sync_timestamp: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def csv_headers(cls) -> list[str]:
        """The 54 CSV column names, in export order."""
        return [header for header, _ in CSV_COLUMNS]

    @classmethod
    def attributes(cls) -> list[str]:
        """The record attributes, in the order of :meth:`csv_headers`."""
        return [attribute for _, attribute in CSV_COLUMNS]

    def to_csv_row(self) -> list[str]:
        """The record's values in the order of :meth:`csv_headers`; None becomes an empty string."""
        row = []
        for _, attribute in CSV_COLUMNS:
            value = getattr(self, attribute)
            row.append("" if value is None else str(value))
        return row

    @classmethod
    def from_csv_fields(cls, fields: Mapping[str, str]) -> BookRecord:
        """A record from ``{CSV header: text}``; empty text is None, ``Is Decrypted`` is parsed.

        Raises:
            ValueError: a header is not one of :meth:`csv_headers`, the barcode
                is empty, or ``Is Decrypted`` is not a boolean.
        """
        values: dict[str, Any] = {}
        for header, text in fields.items():
            attribute = ATTRIBUTE_OF.get(header)
            if attribute is None:
                raise ValueError(f"unknown column {header!r}")
            if attribute == "is_decrypted":
                values[attribute] = parse_bool(text)
            else:
                values[attribute] = text if text != "" else None
        barcode = values.get("barcode")
        if not barcode or not barcode.strip():
            raise ValueError("the Barcode is empty")
        return cls(**values)


# Keep the column table and the dataclass in step: a new column needs both.
assert [f.name for f in dataclasses.fields(BookRecord)] == BookRecord.attributes()
assert len(CSV_COLUMNS) == 54
