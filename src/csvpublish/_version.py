"""The installed version, read from the package metadata when first asked for.

>>> library_version().startswith("csvpublish ")
True
"""

from __future__ import annotations

from functools import cache


@cache
def version() -> str:
    """The version of the installed distribution (``0.0.0+unknown`` when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("csvpublish")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def library_version() -> str:
    """What manifests record as their writer: ``csvpublish <version>``."""
    return f"csvpublish {version()}"
