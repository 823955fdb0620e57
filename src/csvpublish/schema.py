"""The schema guard: how a snapshot's columns differ from the latest's, and the refusal that names it.

Pure functions, no I/O. A rename shows as one column removed and one added.

>>> ColumnChanges.between(["Barcode", "Title"], ["Title", "Barcode", "Year"]).describe()
'added: Year; order changed'
>>> ColumnChanges.between(["a", "b"], ["a", "b"]).changed
False
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from .errors import InputError, SchemaChangedError

SchemaPolicy = Literal["refuse", "allow"]
"""What a publish does when its columns differ from the latest's."""
ON_SCHEMA_CHANGE = ("refuse", "allow")


def validate_policy(value: object) -> SchemaPolicy:
    """``value`` if it is a valid ``on_schema_change``, else raise :class:`InputError`."""
    if value not in ON_SCHEMA_CHANGE:
        raise InputError(f"on_schema_change={value!r} must be 'refuse' (the default) or 'allow'")
    return cast(SchemaPolicy, value)


@dataclass(frozen=True)
class ColumnChanges:
    """The columns added, the columns removed, and whether the columns both have changed order."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    reordered: bool

    @classmethod
    def between(cls, before: Sequence[str], after: Sequence[str]) -> ColumnChanges:
        old, new = Counter(before), Counter(after)
        added, removed = new - old, old - new
        return cls(
            tuple(c for c in dict.fromkeys(after) if c in added),
            tuple(c for c in dict.fromkeys(before) if c in removed),
            [c for c in before if c in new] != [c for c in after if c in old],
        )

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.reordered)

    def describe(self) -> str:
        parts = [f"added: {', '.join(self.added)}"] if self.added else []
        parts += [f"removed: {', '.join(self.removed)}"] if self.removed else []
        parts += ["order changed"] if self.reordered else []
        return "; ".join(parts)


def guard(before: Sequence[str], version: str) -> Callable[[Sequence[str]], None]:
    """A check of a new snapshot's columns against the latest's (``before``, of ``version``).

    It raises :class:`SchemaChangedError` when they differ. Columns that are
    unknown (empty: a CSV file without a header row, a manifest rebuilt for a
    seed archive) are never refused.

    >>> guard(["a", "b"], "20261126_053708")(["a", "c"])
    Traceback (most recent call last):
    csvpublish.errors.SchemaChangedError: the columns differ from the latest's (version 20261126_053708): \
added: c; removed: b; nothing was written and the current latest is untouched; pass on_schema_change="allow" \
(CLI: --allow-schema-change) to publish new columns
    """

    def check(after: Sequence[str]) -> None:
        if not before or not after:
            return
        changes = ColumnChanges.between(list(before), list(after))
        if changes.changed:
            raise SchemaChangedError(
                f"the columns differ from the latest's (version {version}): {changes.describe()}; nothing was "
                'written and the current latest is untouched; pass on_schema_change="allow" '
                "(CLI: --allow-schema-change) to publish new columns"
            )

    return check
