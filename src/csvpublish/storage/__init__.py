"""Storage: one folder on any fsspec filesystem, and the backends that serve each kind.

::

    core.py         Storage: paths, URIs, retries, error translation; delegates to a backend
    backend.py      the Backend protocol, Capabilities, WriteOptions, Writer, committing()
    registry.py     protocol -> backend module, imported only when used
    translate.py    each backend's ErrorCodes table type, and translate(), the one entry point
    local.py        a folder on this machine (temp file, fsync, rename or hard link)
    s3.py           S3 and S3-compatible stores (multipart parts, CopyObject, If-None-Match)
    gcs.py          Google Cloud Storage (resumable uploads, rewrite, ifGenerationMatch)
    azure.py        Azure Blob Storage (staged blocks, Copy Blob, If-None-Match)
    objectstore.py  any other fsspec object store (its own file object)
    filesystem.py   memory:// and any other fsspec filesystem (temp file, then move)
"""

from __future__ import annotations

from .backend import PART_SIZE, Backend, Capabilities, ObjectState, Tagged, WriteOptions, Writer, committing
from .core import Storage
from .entry import Entry

__all__ = [
    "PART_SIZE",
    "Backend",
    "Capabilities",
    "Entry",
    "ObjectState",
    "Storage",
    "Tagged",
    "WriteOptions",
    "Writer",
    "committing",
]
