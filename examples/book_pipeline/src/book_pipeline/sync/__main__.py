"""``python -m book_pipeline.sync``: the same as ``book-sync``."""

import sys

from book_pipeline.sync.cli import main

sys.exit(main())
