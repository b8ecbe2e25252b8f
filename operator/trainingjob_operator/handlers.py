"""kopf wiring, kept thin: kopf runs the process (startup, cleanup, signals, logging); the
informers (informer.py) keep jobs, pods and nodes, and hand what changed to the controller.

Each informer reports its first list; the controller decides nothing before all have.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import kopf

from trainingjob_operator import health
from trainingjob_operator.controller import WORKERS, Controller
from trainingjob_operator.election import Elector, identity
from trainingjob_operator.informer import (
    KeyedInformer,
    KeyedStore,
    ListWatch,
    PodInformer,
    PodStore,
)
from trainingjob_operator.kube import Kube
from trainingjob_operator.models import TrainingJob, Unreadable, read_job
from trainingjob_operator.nodes import NodeView, parse_node
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings, port_taken
from trainingjob_operator.views import Jobs, Nodes, Pods, Views
from trainingjob_operator.vocabulary import GROUP, PLURAL, VERSION, Key


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING
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
    jobs: KeyedStore[Key, TrainingJob | Unreadable] = KeyedStore()
    pods = PodStore()
    nodes: KeyedStore[str, NodeView] = KeyedStore()
    controller = Controller(kube, ours, Views(Jobs(jobs), Pods(pods), Nodes(nodes)))
    memo["controller"] = controller
    # The endpoints first: a port that is taken ends the process here, before any work
    # starts, instead of leaving it alive and idle (kopf retries a failed startup).
    if ours.metrics_port:
        await _bind("TRAININGJOB_METRICS_PORT", ours.metrics_port,
                    lambda: controller.metrics.serve(ours.metrics_port))
    if ours.health_port:
        memo["health"] = await _bind(
            "TRAININGJOB_HEALTH_PORT", ours.health_port,
            lambda: health.serve(ours.health_port, lambda: _alive(memo.get("loop"), kube),
                                 lambda: _ready(controller, kube)))
    if ours.leader_elect:
        elector = Elector(kube, ours, identity(), controller.resync)
        kube.leading = controller.leading = elector.leading
        memo["elector"] = elector
        memo["election"] = asyncio.create_task(elector.run(), name="trainingjob-election")
    informers = _informers(kube, controller, list(memo.get("namespaces") or []),
                           jobs, pods, nodes)
    for informer in informers:
        informer.watch_seconds = ours.watch_seconds
        informer.page_size = ours.list_page_size
    controller.synced = [i.synced for i in informers]
    memo["tasks"] = [
        *(asyncio.create_task(i.run(), name=f"trainingjob-watch-{i.path}") for i in informers),
        asyncio.create_task(controller.become_ready(), name="trainingjob-ready"),
        *(asyncio.create_task(controller.worker(), name=f"trainingjob-worker-{i}")
          for i in range(WORKERS))]
    memo["loop"] = asyncio.create_task(controller.run(), name="trainingjob-admission-loop")


async def _bind(setting: str, port: int, serve: Callable[[], Any]) -> Any:
    """Serve an endpoint; a port that cannot be bound is a permanent error naming the
    setting (and the chart value) to change."""
    try:
        served = serve()
        return await served if inspect.isawaitable(served) else served
    except OSError as err:
        raise kopf.PermanentError(port_taken(setting, port, err)) from err


def _alive(loop: asyncio.Task[None] | None, kube: Kube) -> tuple[bool, str]:
    """Alive while the loop runs: an API server that does not answer is reported, but a
    restart would not bring it back, so it does not fail the probe."""
    if loop is None:
        return False, "the admission loop has not started"
    if loop.done():
        why = "cancelled" if loop.cancelled() else repr(loop.exception())
        return False, f"the admission loop ended: {why}"
    lost = kube.rest.unanswered(time.monotonic())
    return True, f"ok, but {lost}" if lost else "ok"


def _ready(controller: Controller, kube: Kube) -> tuple[bool, str]:
    if not controller.ready.is_set():
        return False, "waiting for the watches to fill the indexes"
    lost = kube.rest.unanswered(time.monotonic())
    if lost:
        return False, lost
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


def _informers(kube: Kube, controller: Controller, namespaces: list[str],
               jobs: KeyedStore[Key, TrainingJob | Unreadable], pods: PodStore,
               nodes: KeyedStore[str, NodeView]) -> list[ListWatch]:
    """Jobs and pods of every namespace (or of each watched one: one list each, one store
    per kind), and the nodes, each filling the store the controller's views read."""

    async def job_changed(key: Key, job: TrainingJob | Unreadable | None) -> None:
        controller.job_changed(key, job)

    async def pod_changed(before: PodView | None, after: PodView | None) -> None:
        controller.pod_changed(before, after)

    async def node_changed(name: str, view: NodeView | None) -> None:
        controller.node_changed(name, view)

    scopes = [f"/namespaces/{n}" for n in namespaces] or [""]
    return [
        *(KeyedInformer(kube.rest, f"/apis/{GROUP}/{VERSION}{scope}/{PLURAL}", _job_key,
                        read_job, job_changed, jobs) for scope in scopes),
        *(PodInformer(kube.rest, pod_changed, f"/api/v1{scope}/pods", pods)
          for scope in scopes),
        KeyedInformer(kube.rest, "/api/v1/nodes", _name, parse_node, node_changed, nodes)]


def _job_key(body: dict[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _name(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name") or "")
