"""The work queue: the only caller of `reconcile`.

A key waits in it at most once (events that come meanwhile are taken by that one
reconcile), is handled under its own lock (which the admission pass takes too before it
writes), and may be added later, at a time (one heap for every job: no per-object timers).
Whatever goes wrong in one key's handling is that key's: it is logged and tried again.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from trainingjob_operator.clock import Clock
from trainingjob_operator.vocabulary import Key

log = logging.getLogger(__name__)
RETRY_SECONDS = 5


class WorkQueue:
    def __init__(self, clock: Clock, sooner: Callable[[], None] = lambda: None) -> None:
        self.clock = clock
        self._sooner = sooner  # told when the earliest delayed add moves earlier
        self._waiting: set[Key] = set()
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._locks: dict[Key, asyncio.Lock] = {}
        self._at: dict[Key, datetime] = {}
        self._heap: list[tuple[datetime, Key]] = []  # entries not in `_at` are stale

    def add(self, key: Key) -> None:
        if key not in self._waiting:
            self._waiting.add(key)
            self._ready.put_nowait(key)

    def add_at(self, key: Key, when: datetime) -> None:
        """Add `key` at `when`, instead of any time it had."""
        if self._at.get(key) == when:
            return  # that entry is in the heap already
        earliest = self.next_at()
        self._at[key] = when
        heapq.heappush(self._heap, (when, key))
        if earliest is None or when < earliest:
            self._sooner()

    def retry(self, key: Key) -> None:
        self.add_at(key, self.clock.now() + timedelta(seconds=RETRY_SECONDS))

    def cancel(self, key: Key) -> None:
        self._at.pop(key, None)

    def forget(self, key: Key) -> None:
        self.cancel(key)
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    def next_at(self) -> datetime | None:
        while self._heap and self._at.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def release(self, now: datetime) -> int:
        """Add every key whose time has come; how many."""
        count = 0
        while (when := self.next_at()) is not None and when <= now:
            _, key = heapq.heappop(self._heap)
            del self._at[key]
            self.add(key)
            count += 1
        return count

    def lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def __len__(self) -> int:
        return self._ready.qsize()

    async def take(self) -> Key:
        key = await self._ready.get()
        self._waiting.discard(key)
        return key

    async def handle(self, key: Key, reconcile: Callable[[Key], Awaitable[None]]) -> None:
        """reconcile(key) under its lock; whatever it raises (it answers its own job's
        faults and the API's) must not end a worker, nor stop other keys."""
        async with self.lock(key):
            try:
                await reconcile(key)
            except Exception:
                log.exception("reconciling %s/%s failed; retrying in %ss", *key,
                              RETRY_SECONDS)
                self.retry(key)

    async def work(self, reconcile: Callable[[Key], Awaitable[None]]) -> None:
        """One worker: keys in turn, for ever."""
        while True:
            await self.handle(await self.take(), reconcile)
