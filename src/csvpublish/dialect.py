"""``Dialect``: the CSV a snapshot is written in (delimiter, line ends, header, byte-order mark).

The default is what every csvpublish snapshot has always been: comma, ``\\r\\n``,
a header row, no byte-order mark. A field is quoted only when it holds the
delimiter, a double quote, CR or LF (doubling its quotes), as ``csv.writer``
does; a row whose only field is empty is written ``""`` so it is not a blank line.

>>> Dialect().delimiter, Dialect(delimiter="\\t").extension
(',', '.tsv')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .errors import InputError

DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
LINE_TERMINATORS = ("\r\n", "\n")
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Dialect:
    """How the CSV is written.

    Args:
        delimiter: ``","`` (default), ``"\\t"``, ``";"`` or ``"|"``; a tab publishes ``.tsv``.
        lineterminator: ``"\\r\\n"`` (default) or ``"\\n"``.
        header: write the header row first (default True).
        bom: start with a UTF-8 byte-order mark, which Excel needs to read UTF-8 (default False).
    """

    delimiter: str = ","
    lineterminator: str = "\r\n"
    header: bool = True
    bom: bool = False

    def __post_init__(self) -> None:
        if self.delimiter not in DELIMITERS:
            names = ", ".join(f"{d!r} ({n})" for d, n in DELIMITERS.items())
            raise InputError(f"delimiter {self.delimiter!r} is not supported: use one of {names}")
        if self.lineterminator not in LINE_TERMINATORS:
            raise InputError(f"lineterminator {self.lineterminator!r} is not supported: use '\\r\\n' or '\\n'")

    @property
    def extension(self) -> str:
        """``.tsv`` for tab-separated values, ``.csv`` otherwise."""
        return ".tsv" if self.delimiter == "\t" else ".csv"

    @property
    def special(self) -> tuple[str, ...]:
        """The characters that make a field quoted."""
        return (self.delimiter, '"', "\r", "\n")

    def to_dict(self) -> dict[str, Any]:
        """The dialect as the manifest records it (Frictionless-style names).

        >>> Dialect().to_dict()
        {'delimiter': ',', 'lineTerminator': '\\r\\n', 'header': True, 'bom': False, 'quoteChar': '"'}
        """
        data = asdict(self)
        return {
            "delimiter": data["delimiter"],
            "lineTerminator": data["lineterminator"],
            "header": data["header"],
            "bom": data["bom"],
            "quoteChar": '"',
        }

    @classmethod
    def from_dict(cls, data: Any) -> Dialect:
        """The dialect a manifest records; the default when it records none (older manifests)."""
        if not isinstance(data, dict):
            return cls()
        return cls(
            delimiter=str(data.get("delimiter", ",")),
            lineterminator=str(data.get("lineTerminator", "\r\n")),
            header=bool(data.get("header", True)),
            bom=bool(data.get("bom", False)),
        )
