"""kopf wiring, kept thin: indexes are the informer state, events hand keys to the controller.

kopf fills every index (jobs, nodes) from its initial LIST before it calls any handler, and
the pod informer (informer.py, pods only: kopf's per-object machinery cost more than anything
else per pod event) reports its own first list; the controller decides nothing before both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import kopf

from trainingjob_operator import health
from trainingjob_operator.controller import WORKERS, Controller, Indexes
from trainingjob_operator.election import Elector, identity
from trainingjob_operator.informer import PodInformer
from trainingjob_operator.kube import Kube
from trainingjob_operator.models import TrainingJob, Unreadable, read_job
from trainingjob_operator.nodes import NodeView, parse_node
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import GROUP, PLURAL, VERSION

JOBS = (GROUP, VERSION, PLURAL)


class NoDiffBase(kopf.DiffBaseStorage):
    """Only event and index handlers here, no on.create/update ones: kopf's change detection
    (a deep copy of every body on every event) would serve nothing."""

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def build(self, *, body: kopf.Body,
              extra_fields: Iterable[Any] | None = None) -> Any:
        return {}

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf keeps its own bookkeeping in status (declared in the CRD), never in annotations.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # No watching of CRDs and namespaces for changes: the operator needs no RBAC on them.
    # The price: the CRD must exist at startup (the chart installs it first), checked here.
    settings.scanning.disabled = True
    ours = Settings.from_env()
    kube = await Kube.connect()
    memo["kube"] = kube
    if not await kube.serves_trainingjobs():
        raise kopf.PermanentError(
            f"the API server does not serve {PLURAL}.{GROUP}/{VERSION}: install the CRD "
            "(kubectl apply -f crds/, or the Helm chart) and start the operator again")
    controller = Controller(kube, ours)
    memo["controller"] = controller
    if ours.leader_elect:
        elector = Elector(kube, ours, identity(), controller.resync)
        kube.leading = controller.leading = elector.leading
        memo["elector"] = elector
        memo["election"] = asyncio.create_task(elector.run(), name="trainingjob-election")
    if ours.metrics_port:
        controller.metrics.serve(ours.metrics_port)
    pods = PodInformer(kube.rest, controller.pod_changed)
    controller.pods_synced = pods.synced
    memo["pods"] = pods
    memo["tasks"] = [
        asyncio.create_task(pods.run(), name="trainingjob-pod-watch"),
        asyncio.create_task(controller.become_ready(), name="trainingjob-ready"),
        *(asyncio.create_task(controller.worker(), name=f"trainingjob-worker-{i}")
          for i in range(WORKERS))]
    loop = asyncio.create_task(controller.run(), name="trainingjob-admission-and-sweep")
    memo["loop"] = loop
    if ours.health_port:
        memo["health"] = await health.serve(ours.health_port, lambda: _alive(loop),
                                            lambda: _ready(controller))


def _alive(loop: asyncio.Task[None]) -> tuple[bool, str]:
    if loop.done():
        why = "cancelled" if loop.cancelled() else repr(loop.exception())
        return False, f"the admission loop ended: {why}"
    return True, "ok"


def _ready(controller: Controller) -> tuple[bool, str]:
    if not controller.ready.is_set():
        return False, "waiting for the watches to fill the indexes"
    return True, "ready, " + ("leader" if controller.leading() else "standby")


@kopf.on.cleanup()
async def stop_loop(memo: kopf.Memo, **_: Any) -> None:
    for name in ("election", "loop"):
        task = memo.get(name)
        if task is not None:
            task.cancel()
    for task in memo.get("tasks", []):
        task.cancel()
    elector: Elector | None = memo.get("elector")
    if elector is not None:
        await elector.resign()
    runner = memo.get("health")
    if runner is not None:
        await runner.cleanup()
    kube: Kube | None = memo.get("kube")
    if kube is not None:
        await kube.close()


@kopf.index(*JOBS)
async def jobs_idx(body: kopf.Body, **kwargs: Any) -> dict[Any, TrainingJob | Unreadable]:
    return {(body.metadata.namespace, body.metadata.name): read_job(dict(body))}


@kopf.index("nodes")
async def nodes_idx(body: kopf.Body, **kwargs: Any) -> dict[Any, NodeView]:
    return {body.metadata.name: parse_node(dict(body))}


def _controller(kwargs: dict[str, Any]) -> Controller:
    """The controller, attached to the indexes (complete by the time any handler runs)."""
    controller: Controller = kwargs["memo"]["controller"]
    pods: PodInformer = kwargs["memo"]["pods"]
    controller.attach(Indexes(jobs=kwargs["jobs_idx"], pods=pods.store,
                              nodes=kwargs["nodes_idx"]))
    return controller


@kopf.on.event(*JOBS)
async def job_event(body: kopf.Body, **kwargs: Any) -> None:
    controller = _controller(kwargs)
    key = (body.metadata.namespace or "", body.metadata.name or "")
    if kwargs.get("type") == "DELETED":
        controller.forget(key)
        return
    controller.enqueue(key)


@kopf.on.event("nodes")
async def node_event(body: kopf.Body, **kwargs: Any) -> None:
    controller = _controller(kwargs)
    deleted = kwargs.get("type") == "DELETED"
    view = parse_node(dict(body))
    if deleted or not view.ready:
        await controller.node_trouble(body.metadata.name or "", deleted)
    if controller.node_changed(view, deleted):
        controller.wake.set()  # capacity may have changed; a heartbeat alone changes nothing
