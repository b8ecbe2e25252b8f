"""Leader election over a coordination.k8s.io/v1 Lease, as pure decisions.

The rules are client-go's (k8s.io/client-go/tools/leaderelection): a lease is free when it
has no holder, when its holder released it, or when its record has not changed for its
whole duration *as timed by the observer's own clock* (so clock skew between machines
cannot hand it over early). The holder renews well inside the duration and stops acting
as leader once it has not renewed for `renew_deadline`, before anyone else may take over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainingjob_operator.timeutil import format_micro_time


@dataclass(frozen=True)
class LeaseView:
    holder: str  # "" when released
    duration_seconds: float
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    resource_version: str

    @property
    def record(self) -> tuple[str, str | None, str]:
        """What changes on every renewal: an unchanged record means a silent holder."""
        return (self.holder, self.renew_time, self.resource_version)


def parse_lease(body: dict[str, Any]) -> LeaseView:
    spec = body.get("spec") or {}
    return LeaseView(
        holder=spec.get("holderIdentity") or "",
        duration_seconds=float(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str((body.get("metadata") or {}).get("resourceVersion") or ""))


def may_claim(lease: LeaseView | None, me: str, unchanged_for: float) -> bool:
    """Whether `me` may write itself as holder, given how long (on my clock) the record
    has looked the same."""
    if lease is None or lease.holder in ("", me):
        return True
    return unchanged_for >= lease.duration_seconds


def claim(lease: LeaseView | None, me: str, now: datetime, duration: float) -> dict[str, Any]:
    """The lease spec that makes `me` the holder (a renewal when it already is)."""
    stamp = format_micro_time(now)
    renewing = lease is not None and lease.holder == me
    transitions = lease.transitions if lease else 0
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": max(1, round(duration)),
        "acquireTime": lease.acquire_time if renewing and lease else stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions if renewing or lease is None else transitions + 1,
    }


def release(lease: LeaseView, now: datetime) -> dict[str, Any]:
    """Give the lease up on a clean shutdown, so a standby takes over at its next look
    instead of after a whole lease duration."""
    stamp = format_micro_time(now)
    return {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": stamp,
            "renewTime": stamp, "leaseTransitions": lease.transitions}
