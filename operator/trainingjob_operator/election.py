"""The leader-election loop: one task per process (not per job) that holds or watches the
Lease, on the rules in leases.py.

A standby keeps its watches and indexes warm but makes no writes; it reads the Lease once
per retry period. On winning, the controller re-decides every job from the indexes, since
the events the standby saw were not acted on. Leading ends by itself when renewals stop
succeeding for `renew_deadline`, which is shorter than the lease, so two replicas never
both believe they lead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime

from trainingjob_operator.kube import Kube, said
from trainingjob_operator.leases import claim, may_claim, parse_lease, release
from trainingjob_operator.settings import Settings

log = logging.getLogger(__name__)


def identity() -> str:
    """The pod name in a cluster (downward API), else host and process."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class Elector:
    def __init__(self, kube: Kube, settings: Settings, me: str,
                 on_elected: Callable[[], Coroutine[None, None, None]]) -> None:
        self.kube = kube
        self.settings = settings
        self.me = me
        self.on_elected = on_elected
        self.renew_deadline = settings.lease_duration_seconds * 0.7
        self.renewed_at: float | None = None  # monotonic time the last renewal was sent
        self.seen: tuple[tuple[str, str | None, str] | None, float] = (None, 0.0)
        self.resyncs: set[asyncio.Task[None]] = set()

    def leading(self) -> bool:
        return (self.renewed_at is not None
                and time.monotonic() - self.renewed_at < self.renew_deadline)

    async def run(self) -> None:
        s = self.settings
        log.info("leader election: %s wants lease %s/%s", self.me, s.lease_namespace,
                 s.lease_name)
        while True:
            was = self.leading()
            try:
                await self.try_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the API is away: keep trying; leading() times out
                log.warning("leader election: %s; trying again in %gs", said(err),
                            s.lease_retry_seconds)
            if was and not self.leading():
                log.error("leader election: %s lost lease %s/%s; standing by", self.me,
                          s.lease_namespace, s.lease_name)
            await asyncio.sleep(s.lease_retry_seconds)

    async def try_once(self) -> None:
        s = self.settings
        body = await self.kube.get_lease(s.lease_namespace, s.lease_name)
        lease = parse_lease(body) if body else None
        now_mono = time.monotonic()
        record = lease.record if lease else None
        if record != self.seen[0]:
            self.seen = (record, now_mono)
        if lease is not None and lease.holder not in ("", self.me):
            self.renewed_at = None  # someone else holds it: stop leading now, not at the deadline
        if not may_claim(lease, self.me, now_mono - self.seen[1]):
            return
        sent = time.monotonic()
        spec = claim(lease, self.me, datetime.now(UTC), s.lease_duration_seconds)
        if not await self.kube.write_lease(s.lease_namespace, s.lease_name, spec,
                                           lease.resource_version if lease else None):
            return  # another replica won this round
        newly = not self.leading()
        self.renewed_at = sent
        if newly:
            log.info("leader election: %s is now the leader (%s/%s)", self.me,
                     s.lease_namespace, s.lease_name)
            # In the background: re-deciding 10,000 jobs must not delay the next renewal.
            task = asyncio.create_task(self.on_elected(), name="trainingjob-leader-resync")
            self.resyncs.add(task)
            task.add_done_callback(self.resyncs.discard)

    async def resign(self) -> None:
        """On a clean shutdown: stop leading first, then hand the lease over at once."""
        if not self.leading():
            return
        self.renewed_at = None
        s = self.settings
        body = await self.kube.get_lease(s.lease_namespace, s.lease_name)
        lease = parse_lease(body) if body else None
        if lease is not None and lease.holder == self.me:
            await self.kube.write_lease(s.lease_namespace, s.lease_name,
                                        release(lease, datetime.now(UTC)),
                                        lease.resource_version)
            log.info("leader election: %s released the lease", self.me)
