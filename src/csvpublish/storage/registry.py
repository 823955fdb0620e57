"""Which backend module serves which protocol, imported only when a destination needs it.

The only place besides the backend modules that knows protocol names. A
protocol no module claims gets :class:`~csvpublish.storage.filesystem.FilesystemBackend`
(temp file, then move), which works on any fsspec filesystem.

>>> backend_class(["s3", "s3a"]).__name__
'S3Backend'
>>> backend_class(["az"]).__name__, backend_class(["ftp"]).__name__
('AzureBackend', 'FilesystemBackend')
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from csvpublish.errors import InputError, MissingBackendError

from .backend import Backend

_BACKENDS: dict[str, tuple[str, str]] = {
    "file": ("local", "LocalBackend"),
    "local": ("local", "LocalBackend"),
    "s3": ("s3", "S3Backend"),
    "s3a": ("s3", "S3Backend"),
    "gs": ("gcs", "GCSBackend"),
    "gcs": ("gcs", "GCSBackend"),
    "az": ("azure", "AzureBackend"),
    "abfs": ("azure", "AzureBackend"),
    "abfss": ("azure", "AzureBackend"),
    "adl": ("objectstore", "ObjectStoreBackend"),  # Data Lake Storage Gen1: another service than Blob storage
    "memory": ("filesystem", "MemoryBackend"),
}
_FALLBACK = ("filesystem", "FilesystemBackend")

_PACKAGES: dict[str, tuple[str, str | None]] = {
    # protocol: (the fsspec package that implements it, the csvpublish extra that brings it)
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
    "adl": ("adlfs", None),
}


def backend_class(protocols: Iterable[str]) -> type[Backend]:
    """The backend for a filesystem with these protocols (the first one claimed wins)."""
    module, name = next((_BACKENDS[p] for p in protocols if p in _BACKENDS), _FALLBACK)
    found: type[Backend] = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return found


def protocol_of(url: str) -> str:
    """The protocol of a URL or path: ``s3`` for ``s3://b/p``, the last one of a chain, ``file`` for a path.

    >>> protocol_of("s3://bucket/x"), protocol_of("/tmp/out"), protocol_of("simplecache::gs://b/x")
    ('s3', 'file', 'gs')
    """
    last = url.rsplit("::", 1)[-1]
    return last.split("://", 1)[0].lower() if "://" in last else "file"


def install_hint(protocol: str) -> str:
    """What a user installs to reach ``protocol://``, as a sentence.

    >>> install_hint("s3")
    "s3:// needs s3fs, which is not installed: pip install 'csvpublish[s3]'"
    """
    package, extra = _PACKAGES.get(protocol, (f"the fsspec backend for {protocol}://", None))
    hint = f"pip install 'csvpublish[{extra}]'" if extra else f"pip install {package}"
    return f"{protocol}:// needs {package}, which is not installed: {hint}"


def with_endpoint(destination: str, options: dict[str, Any], endpoint_url: str) -> dict[str, Any]:
    """``options`` with ``endpoint_url`` put where the destination's backend reads it.

    Raises:
        InputError: the destination's backend takes no endpoint URL.
    """
    protocol = protocol_of(destination)
    backend = backend_class([protocol])
    if not backend.capabilities.endpoint_url:
        shown = " and ".join(f"{p}://" for p in endpoint_protocols())
        raise InputError(f"an endpoint URL applies to {shown} destinations, not {protocol}://")
    return backend.with_endpoint(options, endpoint_url)


def endpoint_protocols() -> list[str]:
    """The main protocol of each backend that takes an endpoint URL.

    >>> endpoint_protocols()
    ['s3', 'gs']
    """
    main: dict[tuple[str, str], str] = {}
    for protocol, where in _BACKENDS.items():
        main.setdefault(where, protocol)
    return [p for p in main.values() if backend_class([p]).capabilities.endpoint_url]


def open_url(url: str, options: dict[str, Any]) -> tuple[AbstractFileSystem, str]:
    """The filesystem and root folder of a URL, with a clear error for a missing package or protocol."""
    if not url:
        raise InputError("the destination is empty: give a folder or a URL such as s3://bucket/prefix")
    protocol = protocol_of(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise MissingBackendError(install_hint(protocol)) from exc
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise InputError(f"unknown storage protocol {protocol}:// in the destination") from None
        raise
    return fs, str(path).rstrip("/")
