"""``RetryPolicy`` and the one retry engine behind the async and the blocking paths.

The decision (is this error worth another try, how long to wait, when to give
up, what to raise) is made in one place, :class:`Attempts`; :func:`call` and
:func:`acall` only iterate it, one with ``time.sleep``, one with
``asyncio.sleep`` (the way stamina's ``_RetryContextIterator`` serves both).

>>> policy = RetryPolicy(attempts=3, initial=0.0)
>>> tries = []
>>> def flaky() -> str:
...     tries.append(1)
...     if len(tries) < 3:
...         raise ConnectionResetError(104, "reset")
...     return "ok"
>>> call(policy, "doc", flaky, transient=lambda exc: isinstance(exc, ConnectionResetError),
...      translate=lambda exc, what: exc)
'ok'
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

logger = logging.getLogger("csvpublish")

T = TypeVar("T")

Classify = Callable[[BaseException], bool]
Translate = Callable[[BaseException, str], BaseException]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient errors are retried.

    Waits grow from ``initial`` by ``multiplier`` up to ``maximum`` seconds, with
    jitter; after ``attempts`` tries the error is raised as
    :class:`~csvpublish.TransientStorageError`.
    """

    attempts: int = 5
    initial: float = 0.2
    maximum: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> list[float]:
        out, wait = [], self.initial
        for _ in range(self.attempts - 1):
            out.append(min(wait, self.maximum) * random.uniform(0.5, 1.0))
            wait *= self.multiplier
        return out


class Attempts:
    """One run of a policy: after each failure, the wait before the next try, or the error to raise."""

    def __init__(self, policy: RetryPolicy | None, what: str, transient: Classify, translate: Translate) -> None:
        self._delays = policy.delays() if policy is not None else []
        self._what = what
        self._transient = transient
        self._translate = translate

    def wait_after(self, exc: Exception) -> float:
        """Seconds to wait before trying again; raises ``exc`` translated when there is no next try."""
        if self._delays and self._transient(exc):
            delay = self._delays.pop(0)
            logger.warning("%s: temporary error (%s), retrying in %.1fs", self._what, type(exc).__name__, delay)
            return delay
        raise self._translate(exc, self._what) from exc


def call(policy: RetryPolicy | None, what: str, op: Callable[[], T], *, transient: Classify, translate: Translate) -> T:
    """Run a blocking ``op`` under ``policy`` (``None``: once, translating its failure)."""
    attempts = Attempts(policy, what, transient, translate)
    while True:
        try:
            return op()
        except Exception as exc:
            time.sleep(attempts.wait_after(exc))


async def acall(
    policy: RetryPolicy | None,
    what: str,
    op: Callable[[], Awaitable[T]],
    *,
    transient: Classify,
    translate: Translate,
) -> T:
    """Await ``op()`` under ``policy`` (``None``: once, translating its failure)."""
    attempts = Attempts(policy, what, transient, translate)
    while True:
        try:
            return await op()
        except Exception as exc:
            await asyncio.sleep(attempts.wait_after(exc))
