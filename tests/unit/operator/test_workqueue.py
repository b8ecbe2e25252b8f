"""The work queue: dedupe, delayed adds on one heap, a lock per key, faults isolated."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from trainingjob_operator.vocabulary import Key
from trainingjob_operator.workqueue import RETRY_SECONDS, WorkQueue

from tests.unit.operator.factories import NOW
from tests.unit.operator.fakeapi import FakeClock

A, B = ("ns", "a"), ("ns", "b")


def test_a_key_waits_once_however_many_events_come() -> None:
    q = WorkQueue(FakeClock())
    for _ in range(3):
        q.add(A)
    q.add(B)
    assert len(q) == 2
    assert asyncio.run(q.take()) == A
    q.add(A)  # taken: a new event queues it again
    assert len(q) == 2


def test_delayed_adds_come_due_in_time_order_and_the_last_time_set_wins() -> None:
    sooner: list[int] = []
    q = WorkQueue(FakeClock(), sooner=lambda: sooner.append(1))
    q.add_at(A, NOW + timedelta(seconds=30))
    q.add_at(B, NOW + timedelta(seconds=60))
    q.add_at(A, NOW + timedelta(seconds=90))  # moved later: B is now first
    assert q.next_at() == NOW + timedelta(seconds=60)
    assert len(sooner) == 1  # only the first add moved the earliest time
    assert q.release(NOW + timedelta(seconds=59)) == 0
    assert q.release(NOW + timedelta(seconds=60)) == 1 and asyncio.run(q.take()) == B
    q.cancel(A)
    assert q.next_at() is None and q.release(NOW + timedelta(days=1)) == 0
    q.add_at(A, NOW)
    assert len(sooner) == 2


def test_a_reconcile_that_raises_is_logged_and_retried_and_the_worker_goes_on() -> None:
    clock = FakeClock()
    q = WorkQueue(clock)
    done: list[Key] = []

    async def reconcile(key: Key) -> None:
        assert q.lock(key).locked(), "reconcile runs under the key's lock"
        if key == A:
            raise RuntimeError("boom")
        done.append(key)

    async def drive() -> None:
        await q.handle(A, reconcile)
        await q.handle(B, reconcile)

    asyncio.run(drive())
    assert done == [B]
    assert q.next_at() == clock.now() + timedelta(seconds=RETRY_SECONDS)


def test_forget_drops_a_free_lock_and_the_key_s_time() -> None:
    q = WorkQueue(FakeClock())
    q.lock(A)
    q.add_at(A, NOW)
    q.forget(A)
    assert q.next_at() is None and A not in q._locks
