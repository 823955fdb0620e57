"""``python -m csvpublish``: the same command as the ``csvpublish`` script."""

from __future__ import annotations

from csvpublish.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
