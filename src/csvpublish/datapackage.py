"""The Frictionless Data Package descriptor written beside the latest and beside each archive.

Pure functions, no I/O: the descriptor is built from a version's manifest, so it
can be written (or written again) wherever that version is. One tabular data
resource whose ``path`` is the object relative to the descriptor, whose
``bytes`` and ``hash`` (``sha256:<hex>``) are of the stored bytes, gzipped or
not (what frictionless-py checks), with the CSV dialect and a Table Schema
(https://specs.frictionlessdata.io/tabular-data-resource/).

>>> from csvpublish.manifest import Manifest
>>> m = Manifest(name="books", version="20261126_053708", created_at="2026-11-26T05:37:09.412Z",
...     archive="timestamped/books_20261126_053708.csv.gz", compression="gzip",
...     content_type="application/gzip", size=54, sha256="ab" * 32, csv_size=34, csv_sha256="cd" * 32,
...     record_count=2, columns=["Barcode", "Count"], library="csvpublish 0.1.0", column_types=["string", "int64"])
>>> resource = descriptor(m, "books_latest.csv.gz", primary_key=["Barcode"])["resources"][0]
>>> resource["path"], resource["compression"], resource["hash"][:11], resource["bytes"]
('books_latest.csv.gz', 'gz', 'sha256:abab', 54)
>>> resource["schema"]
{'fields': [{'name': 'Barcode', 'type': 'string'}, {'name': 'Count', 'type': 'integer'}], 'primaryKey': ['Barcode']}
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .dialect import Dialect
from .manifest import Manifest

CONTENT_TYPE = "application/json"

_TYPES = (
    ("boolean", r"bool(ean)?|<class 'bool'>"),
    ("integer", r"u?int(8|16|32|64)?|<class 'int'>"),
    ("number", r"(half)?float(16|32|64)?|double|decimal.*|<class '(float|decimal\.decimal)'>"),
    ("datetime", r"timestamp\[.*|datetime.*|<class 'datetime\.datetime'>"),
    ("date", r"date(32|64)?(\[.*\])?|<class 'datetime\.date'>"),
    ("time", r"time(32|64)?(\[.*\])?|<class 'datetime\.time'>"),
)
"""Table Schema types of the source types a manifest records (Arrow, pandas and polars dtypes, Python classes)."""


def field_type(source_type: str | None) -> str:
    """The Table Schema type of a column whose source type is ``source_type``; ``string`` when unclear.

    >>> [field_type(t) for t in ("int64", "Int64", "double", "timestamp[us, tz=UTC]", "date32[day]", None, "object")]
    ['integer', 'integer', 'number', 'datetime', 'date', 'string', 'string']
    """
    if source_type is None:
        return "string"
    lowered = source_type.strip().lower()
    return next((kind for kind, pattern in _TYPES if re.fullmatch(pattern, lowered)), "string")


def _field(name: str, source_type: str | None) -> dict[str, Any]:
    kind = field_type(source_type)
    # Python writes datetimes with a space and times with microseconds, not the spec's default form
    return {"name": name, "type": kind, **({"format": "any"} if kind in ("datetime", "time") else {})}


def resource_name(name: str) -> str:
    """A snapshot name as a Data Package name (lower-case letters, digits, ``-``, ``.``, ``_``).

    >>> resource_name("My Books 2026")
    'my-books-2026'
    """
    return re.sub(r"[^-a-z0-9._]+", "-", name.lower()).strip("-") or "snapshot"


def _schema(manifest: Manifest, primary_key: Sequence[str] | None) -> dict[str, Any] | None:
    columns = list(manifest.columns)
    if not columns:  # unknown: a file without a header, or a manifest rebuilt for a seed archive
        return None
    types = ([*(manifest.column_types or [])] + [None] * len(columns))[: len(columns)]
    schema: dict[str, Any] = {"fields": [_field(c, t) for c, t in zip(columns, types, strict=True)]}
    if primary_key and all(k in columns for k in primary_key):
        schema["primaryKey"] = list(primary_key)
    return schema


def descriptor(manifest: Manifest, path: str, *, primary_key: str | Sequence[str] | None = None) -> dict[str, Any]:
    """The Data Package that describes ``manifest``'s version stored at ``path`` (relative to the descriptor)."""
    dialect = Dialect.from_dict(manifest.dialect)
    tab = dialect.delimiter == "\t"
    key = [primary_key] if isinstance(primary_key, str) else primary_key
    resource: dict[str, Any] = {
        "name": resource_name(manifest.name),
        "type": "table",
        "path": path,
        "format": "tsv" if tab else "csv",
        "mediatype": "text/tab-separated-values" if tab else "text/csv",
        "encoding": "utf-8",  # a byte-order mark, when there is one, is part of UTF-8
        **({"compression": "gz"} if manifest.compression else {}),
        "bytes": manifest.size,
        "hash": f"sha256:{manifest.sha256}",
        "dialect": {
            "delimiter": dialect.delimiter,
            "lineTerminator": dialect.lineterminator,
            "header": dialect.header,
            "quoteChar": '"',
            "doubleQuote": True,
        },
    }
    schema = _schema(manifest, key)
    if schema is not None:
        resource["schema"] = schema
    return {"name": resource_name(manifest.name), "created": manifest.created_at, "resources": [resource]}


def descriptor_json(manifest: Manifest, path: str, *, primary_key: str | Sequence[str] | None = None) -> bytes:
    """:func:`descriptor` as the bytes written to storage."""
    body = descriptor(manifest, path, primary_key=primary_key)
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
