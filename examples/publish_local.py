"""Publish the bundled example CSV to a local folder, then list, verify and print where it went.

Run from the repository root:

    python examples/publish_local.py [DESTINATION]

DESTINATION defaults to ./published; any fsspec URL works (s3://bucket/prefix, gs://..., memory://...).
"""

from __future__ import annotations

import sys
from pathlib import Path

import csvpublish

HERE = Path(__file__).parent


def main() -> None:
    destination = sys.argv[1] if len(sys.argv) > 1 else "published"
    publisher = csvpublish.Publisher(destination, name="books")
    result = publisher.publish_file_sync(HERE / "books.csv")
    print(f"published {result.record_count} records ({result.size} bytes, sha256 {result.sha256[:12]}...)")
    print(f"  latest:   {result.latest_uri}")
    print(f"  archive:  {result.archive_uri}")
    print(f"  manifest: {result.manifest_uri}")
    report = publisher.verify_sync()
    print(f"verify: {'ok' if report.ok else 'FAILED: ' + '; '.join(report.problems)}")
    print(f"versions: {', '.join(v.version for v in publisher.versions_sync())}")


if __name__ == "__main__":
    main()
