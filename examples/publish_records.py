"""Publish records straight from an async source, keeping a local copy, in one pass.

python examples/publish_records.py [DESTINATION]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import csvpublish


async def books() -> AsyncIterator[dict[str, object]]:
    """Stands in for a database cursor: rows arrive one by one and are never all in memory."""
    for i in range(10_000):
        yield {"Barcode": f"3204400{i:07d}", "Title": f"Book {i}", "Is Decrypted": i % 2 == 0}


async def main() -> None:
    destination = sys.argv[1] if len(sys.argv) > 1 else "published"
    publisher = csvpublish.Publisher(destination, name="generated", keep=5)
    result = await publisher.publish(books(), local_path="published-local/generated.csv")
    print(f"{result.record_count} records -> {result.latest_uri} (archive {result.archive_uri})")


if __name__ == "__main__":
    asyncio.run(main())
