"""The one way a decision reaches the API.

Status first, under the resourceVersion precondition, then the actions, then the Events,
then the queue's wake-up: a decision made on stale state is refused before it can touch a
pod, and a crash between the steps leaves a status from which the next reconcile finishes
the actions. Every answer of a create ends somewhere: created, refused (the job ends with
the API's message), a name held by a foreign object, or tried again (a bounded number of
times unless the failure is surely the cluster's and passes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from trainingjob_operator import refusals, render
from trainingjob_operator.decision import (
    STOP_DEADLINE_SECONDS,
    Action,
    CreatePod,
    CreateService,
    Decision,
    DeleteJob,
    DeletePod,
    Event,
    StopPod,
)
from trainingjob_operator.isolation import Faults, key_of
from trainingjob_operator.kube import Created, PassingRefusalError, StatusRefusedError
from trainingjob_operator.metrics import Metrics
from trainingjob_operator.models import ObjectMeta, TrainingJob, TrainingJobStatus, Unreadable
from trainingjob_operator.settings import Settings
from trainingjob_operator.status import dump_status
from trainingjob_operator.vocabulary import EventType, Key, Reason
from trainingjob_operator.workqueue import RETRY_SECONDS, WorkQueue

log = logging.getLogger(__name__)
# A create answered with an error that is neither surely the object's nor the cluster's (a
# 500, an unknown 4xx; kube.answer) is tried this many times in a row, the waits doubling
# from RETRY_SECONDS up to RETRY_MAX_SECONDS, before the job ends with the API's message.
CREATE_TRIES = 5
RETRY_MAX_SECONDS = 60


class Api(Protocol):
    """What the writer asks of the API server (kube.Kube)."""

    async def patch_status(self, meta: ObjectMeta, status: dict[str, Any]) -> str | None: ...
    async def create(self, manifest: dict[str, Any]) -> Created: ...
    async def delete_pod(self, namespace: str, name: str, grace_seconds: int) -> None: ...
    async def stop_pod(self, namespace: str, name: str, uid: str,
                       deadline_seconds: int) -> None: ...
    async def delete_trainingjob(self, meta: ObjectMeta, resource_version: str) -> None: ...
    async def event(self, meta: ObjectMeta, type_: str, reason: str, message: str) -> None: ...


@dataclass
class Writer:
    api: Api
    settings: Settings
    faults: Faults
    queue: WorkQueue
    metrics: Metrics
    wake: Callable[[], None]  # capacity may have moved: run the admission pass
    # The resourceVersion each job had when this process last wrote its status: while the
    # informer still shows it, it has not seen that write, and deciding would be on stale
    # state (refused by the precondition anyway); the write's own event comes next.
    superseded: dict[Key, str] = field(default_factory=dict)
    # Creates in a row answered with a flaky error, per job (reset by a create that works).
    create_failures: dict[Key, int] = field(default_factory=dict)

    def stale(self, key: Key, job: TrainingJob | Unreadable) -> bool:
        seen = self.superseded.get(key)
        if seen is not None and seen != job.metadata.resource_version:
            del self.superseded[key]  # the informer caught up
            return False
        return seen is not None

    def forget(self, key: Key) -> None:
        self.superseded.pop(key, None)
        self.create_failures.pop(key, None)

    async def apply(self, job: TrainingJob | Unreadable, decision: Decision,
                    now: datetime) -> str | None:
        """Returns the resourceVersion written, None when nothing was."""
        written = None
        if decision.status is not None:
            try:
                written = await self.api.patch_status(job.metadata,
                                                      dump_status(decision.status))
            except StatusRefusedError as err:
                await self._unrecordable(job, decision, str(err), now)
                return None
            if written is None:
                return None  # stale decision: the next event re-decides from fresh state
            self.superseded[(job.metadata.namespace, job.metadata.name)] = \
                job.metadata.resource_version
            old = job.status if isinstance(job, TrainingJob) else TrainingJobStatus()
            self.metrics.transition(old, decision.status, now)
            if isinstance(job, TrainingJob):
                job = job.model_copy(update={
                    "status": decision.status,
                    "metadata": job.metadata.model_copy(update={"resource_version": written})})
        for action in decision.actions:
            try:
                ended = await self._act(job, action, now)
            except PassingRefusalError as err:  # the status stands: its next reconcile acts again
                key = (job.metadata.namespace, job.metadata.name)
                wait = min(RETRY_MAX_SECONDS,
                           RETRY_SECONDS * 2 ** max(0, self.create_failures.get(key, 0) - 1))
                log.warning("%s/%s: %s; trying again in %ss", *key, err, wait)
                self.queue.add_at(key, now + timedelta(seconds=wait))
                break
            if ended is not None:  # the API refused what the job needs, or it cannot render
                assert isinstance(job, TrainingJob)
                await self._announce(job, decision)
                await self.apply(job, ended, now)
                return written
        await self._announce(job, decision)
        return written

    async def _unrecordable(self, job: TrainingJob | Unreadable, decision: Decision,
                            why: str, now: datetime) -> None:
        """The API server refuses any status for this stored object (StatusRefusedError): say
        so once per resourceVersion, in the log and in an Event (a separate object, always
        writable), and free what the job holds (its pods deleted or stopped, never created).
        It is not tried again: only a new object, or a fixed CRD, can change the answer."""
        key = (job.metadata.namespace, job.metadata.name)
        if not self.faults.first(key, job.metadata.resource_version):
            return
        log.error("%s/%s: the API server refuses its status (%s); delete the TrainingJob and "
                  "create it again", *key, why)
        for action in decision.actions:
            if isinstance(action, DeletePod | StopPod):
                await self._act(job, action, now)
        message = decision.status.message if decision.status else ""
        for e in decision.events or (Event(EventType.WARNING, Reason.INVALID_SPEC,
                                           str(message)),):
            await self.api.event(job.metadata, EventType.WARNING, e.reason,
                                 f"{e.message}; the API server refuses this job's status "
                                 f"({why}): delete the TrainingJob and create it again")
        if decision.wakes_queue:
            self.wake()

    async def _act(self, job: TrainingJob | Unreadable, action: Action,
                   now: datetime) -> Decision | None:
        """Carry out one action; the decision that ends the job when the API refused what it
        needs (or its pods cannot be rendered). PassingRefusalError: the same later."""
        ns = job.metadata.namespace
        if isinstance(action, DeletePod):  # the one action an unreadable job gets
            await self.api.delete_pod(ns, action.name, action.grace_seconds)
            return None
        assert isinstance(job, TrainingJob), "an unreadable job gets only DeletePod"
        if isinstance(action, StopPod):  # its GPUs free when it is Failed
            await self.api.stop_pod(ns, action.name, action.uid, STOP_DEADLINE_SECONDS)
        elif isinstance(action, DeleteJob):
            log.info("deleting %s/%s: its ttlSecondsAfterFinished is over", ns,
                     job.metadata.name)
            await self.api.delete_trainingjob(job.metadata, action.resource_version)
        elif isinstance(action, CreateService):
            def service(j: TrainingJob) -> dict[str, Any]:
                return render.workers_service(j, self.settings)
            return await self._create(job, "render the workers' Service", service, None, now)
        elif isinstance(action, CreatePod):
            index, node = action.index, action.node

            def pod(j: TrainingJob) -> dict[str, Any]:
                return render.worker_pod(j, index, node, self.settings)
            return await self._create(job, f"render worker {index}'s pod", pod, index, now)
        return None

    async def _create(self, job: TrainingJob, step: str,
                      manifest: Callable[[TrainingJob], dict[str, Any]], worker: int | None,
                      now: datetime) -> Decision | None:
        """Render and create a worker pod (`worker`) or the Service (None)."""
        key = key_of(job)
        try:
            body = manifest(job)
        except Exception as err:
            return self.faults.end(job, step, err, manifest, now)
        created = await self.api.create(body)
        if created.ok:
            self.create_failures.pop(key, None)
            return None
        why = created.rejected or ""
        if created.taken:
            return refusals.name_taken(job, body["kind"], body["metadata"]["name"],
                                        created.owner_uid, now, self.settings)
        if created.passing:
            raise PassingRefusalError(why)
        if created.flaky:
            tries = self.create_failures[key] = self.create_failures.get(key, 0) + 1
            if tries < CREATE_TRIES:
                raise PassingRefusalError(f"{why} (try {tries} of {CREATE_TRIES})")
            self.create_failures.pop(key, None)
            why = f"{why} (answered so {tries} times in a row)"
        if worker is None:
            return refusals.service_rejected(job, why, now, self.settings)
        return refusals.pod_rejected(job, worker, why, now, self.settings)

    async def _announce(self, job: TrainingJob | Unreadable, decision: Decision) -> None:
        for e in decision.events if decision.status is not None else ():
            await self.api.event(job.metadata, e.type, e.reason, e.message)
        if decision.wakes_queue:
            self.wake()
