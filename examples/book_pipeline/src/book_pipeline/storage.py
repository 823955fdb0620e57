"""Where the commands publish: the ``--storage``/``--destination`` flags and the storage options.

Storage options come from three places, later ones winning:

1. the environment, read by the backends themselves: botocore reads
   ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE`` ...; gcsfs reads
   ``STORAGE_EMULATOR_HOST`` and Google's default credentials; fsspec reads
   ``FSSPEC_<PROTOCOL>_<OPTION>`` (``FSSPEC_S3_ENDPOINT_URL``, ``FSSPEC_GCS_TOKEN``);
2. ``--endpoint-url URL``;
3. ``--storage-option KEY=VALUE`` (repeatable; ``a.b=VALUE`` sets a nested key).

Option values are never logged or printed: only their keys are.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import csvpublish

STORAGE_KINDS = ("local", "s3", "gcs", "fsspec")
"""``local``: keep the CSV on this machine (no upload); ``s3``, ``gcs``: those object stores;
``fsspec``: any fsspec URL or folder (``az://...``, ``file:///srv/share``, ``/mnt/nfs/meta``)."""

PUBLISHED_NAME = "books"
"""The snapshot name: ``<destination>/books_latest.csv.gz`` and ``timestamped/books_<UTC>.csv.gz``."""

_SCHEMES = {"s3": ("s3", "s3a"), "gcs": ("gs", "gcs")}


class SettingsError(ValueError):
    """Raised when the storage flags do not fit together; the message says which flag to fix."""


@dataclass(frozen=True)
class StorageSettings:
    """The storage a command publishes to.

    Args:
        kind: one of :data:`STORAGE_KINDS`.
        destination: the folder URL (``s3://bucket/meta``); None for local storage.
        options: fsspec storage options; kept out of ``repr`` because they may hold secrets.
    """

    kind: str
    destination: str | None = None
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def uses_block_storage(self) -> bool:
        """True when the CSV is uploaded with csvpublish (every kind but ``local``)."""
        return self.kind != "local"

    @property
    def display_destination(self) -> str | None:
        """The destination with any ``user:password@`` removed, for messages."""
        return redact_url(self.destination) if self.destination else None

    def publisher(self, *, compression: bool) -> csvpublish.Publisher:
        """A :class:`csvpublish.Publisher` of the ``books`` snapshot at the destination."""
        if self.destination is None:
            raise SettingsError("local storage does not publish; give --storage s3, gcs or fsspec and --destination")
        return csvpublish.Publisher(
            self.destination, name=PUBLISHED_NAME, compression=compression, storage_options=self.options
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StorageSettings:
        """Build the settings from the flags added by :func:`add_storage_arguments`.

        Raises:
            SettingsError: a missing or mismatched destination, or a malformed option.
        """
        kind: str = args.storage
        options: dict[str, Any] = {}
        if kind == "local":
            return cls("local", None, options)
        destination: str | None = args.destination
        if not destination:
            raise SettingsError(f"--storage {kind} needs --destination, e.g. {_example(kind)}")
        destination = _normalise_destination(kind, destination)
        if args.endpoint_url:
            if kind == "s3":
                options["client_kwargs"] = {"endpoint_url": args.endpoint_url}
            else:
                options["endpoint_url"] = args.endpoint_url
        for item in args.storage_option or []:
            key, value = parse_storage_option(item)
            _set_nested(options, key.split("."), value)
        return cls(kind, destination, options)


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--storage``, ``--destination``, ``--endpoint-url``, ``--storage-option`` and ``--no-compress``."""
    group = parser.add_argument_group("storage")
    group.add_argument(
        "--storage",
        choices=STORAGE_KINDS,
        default="local",
        help="where the CSV goes: local keeps it on this machine; s3, gcs or any fsspec URL publish it "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--destination",
        metavar="URL",
        help="folder to publish to, e.g. s3://bucket/meta or gs://bucket/meta; required unless --storage local",
    )
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="S3-compatible or GCS endpoint (MinIO, R2, an emulator); AWS_ENDPOINT_URL works too",
    )
    group.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="an fsspec storage option, repeatable; VALUE is JSON when it parses as JSON "
        "(anon=true, client_kwargs.region_name=eu-west-1). Prefer environment variables for secrets: "
        "the command line is visible to other users",
    )
    group.add_argument(
        "--no-compress",
        dest="compress",
        action="store_false",
        help="publish books_latest.csv instead of books_latest.csv.gz",
    )


def parse_storage_option(item: str) -> tuple[str, Any]:
    """Split ``KEY=VALUE``; VALUE is decoded as JSON when it is JSON, else kept as text.

    >>> parse_storage_option("anon=true"), parse_storage_option("region=eu-west-1")
    (('anon', True), ('region', 'eu-west-1'))
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise SettingsError(f"--storage-option {key or item!r}...: write KEY=VALUE, e.g. anon=true")
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return key, value


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@`` part.

    >>> redact_url("ftp://me:hunter2@host/path")
    'ftp://***@host/path'
    """
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
    return url


def option_keys(options: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of ``options``, for a log line that shows no value."""
    keys = []
    for key, value in sorted(options.items()):
        if isinstance(value, dict):
            keys += option_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _set_nested(options: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        child = options.setdefault(part, {})
        if not isinstance(child, dict):
            raise SettingsError(f"--storage-option {'.'.join(path)}: {part} already has a value that is not a mapping")
        options = child
    options[path[-1]] = value


def _normalise_destination(kind: str, destination: str) -> str:
    schemes = _SCHEMES.get(kind)
    if schemes is None:  # fsspec: any URL or path
        return destination.rstrip("/") or destination
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", destination)
    if match is None:
        destination = f"{schemes[0]}://{destination.lstrip('/')}"  # "bucket/meta" -> "s3://bucket/meta"
    elif match.group(1).lower() not in schemes:
        raise SettingsError(
            f"--storage {kind} does not fit --destination {redact_url(destination)}: "
            f"use a {schemes[0]}:// URL, or --storage fsspec for other URLs"
        )
    return destination.rstrip("/")


def _example(kind: str) -> str:
    return {"s3": "s3://my-bucket/meta", "gcs": "gs://my-bucket/meta"}.get(kind, "az://container/meta or /srv/share")


def environment_hint() -> str:
    """Which storage-related environment variables are set (names only), for a debug log line."""
    prefixes = ("AWS_", "FSSPEC_", "GOOGLE_", "STORAGE_EMULATOR_HOST", "GCSFS_")
    return ", ".join(sorted(name for name in os.environ if name.startswith(prefixes))) or "none"
