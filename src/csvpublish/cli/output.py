"""What the ``csvpublish`` command prints: result text and JSON, and the masking of every secret in it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

from csvpublish.credentials import MASK, NOT_SECRET, credential_values, is_credential_variable, secret_leaves
from csvpublish.dialect import DELIMITERS, Dialect
from csvpublish.manifest import Manifest
from csvpublish.results import PublishResult, VerifyReport, VersionInfo

from .parser import parse_value


def secrets_in(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """Every secret the command line or the environment may carry, to be masked in all output.

    Looks at each ``KEY=VALUE`` argument (``--storage-option`` or a typo of it), at
    passwords in URLs, and at environment variables named like credentials.

    >>> secrets_in(["--storage-option", "secret=s3cr3t", "s3://me:pa55word@host/b"], {"MY_TOKEN": "t0ken-value"})
    ['t0ken-value', 'pa55word', 's3cr3t']
    """
    found: list[str] = []
    for arg in argv:
        text = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        key, sep, raw = text.partition("=")
        if sep:
            found += credential_values({key: parse_value(raw)})
        with_password = text if "://" in text else raw
        try:
            password = urlsplit(with_password).password if "://" in with_password else None
        except ValueError:
            password = None
        if password:
            found.append(password)
    for name, value in environ.items():
        if is_credential_variable(name):
            found += [s for s in secret_leaves(value, True) if len(s) >= 8]
    return sorted({s for s in found if s.lower() not in NOT_SECRET}, key=len, reverse=True)


class MaskingStream:
    """A text stream that writes through to another one with every secret replaced by ``***``."""

    def __init__(self, stream: TextIO, secrets: Sequence[str]) -> None:
        self._stream = stream
        self._secrets = list(secrets)

    def write(self, text: str) -> int:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return self._stream.write(text)

    def writelines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def __getattr__(self, name: str) -> Any:  # encoding, errors, buffer...
        return getattr(self._stream, name)


@dataclass(frozen=True)
class Output:
    """Where and how a command reports."""

    out: TextIO
    err: TextIO
    json: bool
    quiet: bool
    progress: bool
    unmasked: TextIO | None = None
    """stdout without the masking, for the one line of the ``url`` command."""

    def text(self, *lines: str) -> None:
        """Print result text on stdout, unless ``--json`` or ``--quiet``."""
        if not self.json and not self.quiet:
            for line in lines:
                print(line, file=self.out)

    def url(self, line: str) -> None:
        """Print a share URL (or the JSON that holds it) on stdout, past the masking of secrets.

        A presigned URL carries the access key id (and a session token) it was
        signed with, which the masking would garble; it carries no secret key.
        Nothing else ever goes to this stream.
        """
        print(line, file=self.unmasked or self.out, flush=True)

    def data(self, obj: Mapping[str, Any]) -> None:
        """Print the result as one JSON object on stdout, with ``--json``."""
        if self.json:
            print(json.dumps(obj, ensure_ascii=False, default=str), file=self.out)


def size_text(n: int) -> str:
    """``1.2 MiB (1,258,291 bytes)``; plain bytes below 1 KiB."""
    return f"{n} bytes" if n < 1024 else f"{short_size(n)} ({n:,} bytes)"


def short_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def records_text(count: int | None, *, bare: bool = False) -> str:
    if count is None:
        return "unknown" if bare else "unknown record count"
    return f"{count:,}" if bare else f"{count:,} record{'s' if count != 1 else ''}"


def locations(result: PublishResult) -> list[str]:
    return [
        f"  latest:   {result.latest_uri}",
        f"  archive:  {result.archive_uri}",
        f"  manifest: {result.manifest_uri}",
        f"  version:  {result.version}",
        f"  sha256:   {result.sha256}",
    ]


def version_table(versions: Sequence[VersionInfo]) -> list[str]:
    header = ("VERSION", "CREATED (UTC)", "SIZE", "RECORDS", "LATEST", "URI")
    rows = [
        (
            v.version,
            v.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            short_size(v.size),
            records_text(v.record_count, bare=True),
            "*" if v.is_latest else "",
            v.uri,
        )
        for v in versions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    right = {2, 3}  # numbers align right

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        return "  ".join([*cells, row[-1]])

    return [line(header), *(line(row) for row in rows)]


def manifest_lines(manifest: Manifest) -> list[str]:
    """A manifest as ``show`` prints it, one field a line."""
    dialect = Dialect.from_dict(manifest.dialect)
    lines = [
        f"{manifest.name} version {manifest.version}",
        f"  created:      {manifest.created_at}",
        f"  archive:      {manifest.archive}",
        f"  compression:  {manifest.compression or 'none'} ({manifest.content_type})",
        f"  size:         {size_text(manifest.size)}",
        f"  sha256:       {manifest.sha256}",
        f"  csv size:     {size_text(manifest.csv_size) if manifest.csv_size >= 0 else 'unknown'}",
        f"  csv sha256:   {manifest.csv_sha256}",
        f"  records:      {records_text(manifest.record_count, bare=True)}",
        f"  columns:      {', '.join(manifest.columns)}",
        f"  dialect:      {DELIMITERS[dialect.delimiter]}, {dialect.lineterminator!r}, "
        f"{'header' if dialect.header else 'no header'}{', BOM' if dialect.bom else ''}",
        f"  library:      {manifest.library}",
    ]
    if manifest.restored_at:
        lines.append(f"  restored at:  {manifest.restored_at}")
    return lines


def verify_failure(report: VerifyReport) -> str:
    return f"verification failed for {report.uri}: " + "; ".join(report.problems)


def one_line(text: str) -> str:
    return " ".join(text.split())
