"""Share links: a signed read URL of the latest or of one archived version, for a reader without credentials.

The URL is a credential for as long as it lasts: nothing here logs it.
"""

from __future__ import annotations

from csvpublish.errors import StorageNotFoundError
from csvpublish.results import VersionInfo

from .catalog import Catalog
from .common import Target


class Sharer:
    """Signs read URLs of one target's objects."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.catalog = Catalog(target)

    async def share_url(self, version: str | VersionInfo | None, *, expires: int) -> str:
        """A signed URL of the latest (``version`` None) or of an archived version, valid ``expires`` seconds.

        Raises:
            InputError: the destination or its credentials cannot sign, or ``expires`` is out of range.
            VersionNotFoundError: no archived version is ``version``.
            StorageNotFoundError: nothing is published (for the latest).
        """
        st = self.target.storage
        st.check_share_url(expires)  # before any request: a folder or memory:// fails at once
        rel = await self._latest() if version is None else (await self.catalog.find(version)).path
        return await st.share_url(rel, expires=expires)

    async def _latest(self) -> str:
        """The latest's path: in the format its manifest says (or the configured one, for a latest without)."""
        st = self.target.storage
        manifest = await self.catalog.latest_manifest(quiet=True)
        rel = self.target.layout_of(manifest).latest if manifest is not None else self.target.layout.latest
        if not await st.exists(rel):
            raise StorageNotFoundError(
                f"{st.uri(rel)}: nothing is published as {self.target.name!r} there; publish it first"
            )
        return rel
