"""Run a coroutine to completion from blocking code: the engine behind every ``*_sync`` twin."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` and return its result.

    With no event loop running in this thread, runs it with :func:`asyncio.run`.
    Inside a running loop (a notebook, an async app) it runs on a fresh loop in
    a helper thread, so the call still blocks instead of failing.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="csvpublish-sync") as pool:
        return pool.submit(asyncio.run, coro).result()
