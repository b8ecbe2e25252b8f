"""kopf wiring, kept thin: indexes are the informer state, events hand keys to the controller.

kopf fills every index from its initial LIST before it calls any handler, so the first
handler call (which attaches the indexes) means the controller starts from complete state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from trainingjob_operator import GROUP, PLURAL, VERSION
from trainingjob_operator.admission import NodeView, parse_node
from trainingjob_operator.controller import Controller, Indexes
from trainingjob_operator.kube import Kube
from trainingjob_operator.pods import JOB_LABEL, PodView, parse_pod
from trainingjob_operator.settings import Settings

JOBS = (GROUP, VERSION, PLURAL)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf keeps its own bookkeeping in status (declared in the CRD), never in annotations.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(
        field="status.kopf.diffbase")
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    controller = Controller(Kube(), Settings.from_env())
    memo["controller"] = controller
    memo["loop"] = asyncio.create_task(controller.run(), name="trainingjob-admission-and-sweep")


@kopf.on.cleanup()
async def stop_loop(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("loop")
    if task is not None:
        task.cancel()


@kopf.index(*JOBS)
def jobs_idx(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): dict(body)}


@kopf.index("pods", labels={JOB_LABEL: kopf.PRESENT})
def job_pods_idx(body: kopf.Body, namespace: str, labels: kopf.Labels,
                 **_: Any) -> dict[Any, PodView]:
    return {(namespace, labels[JOB_LABEL]): parse_pod(dict(body))}


@kopf.index("pods")
def usage_idx(body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[Any, PodView] | None:
    pod = parse_pod(dict(body))
    if not pod.requests or not pod.node_name:
        return None
    return {pod.node_name: pod}


@kopf.index("nodes")
def nodes_idx(body: kopf.Body, name: str, **_: Any) -> dict[Any, NodeView]:
    return {name: parse_node(dict(body))}


def _controller(memo: kopf.Memo, **indexes: Any) -> Controller:
    controller: Controller = memo["controller"]
    controller.attach(Indexes(jobs=indexes["jobs_idx"], pods=indexes["job_pods_idx"],
                              usage=indexes["usage_idx"], nodes=indexes["nodes_idx"]))
    return controller


@kopf.on.event(*JOBS)
async def job_event(type: str | None, namespace: str, name: str, memo: kopf.Memo,
                    jobs_idx: Any, job_pods_idx: Any, usage_idx: Any, nodes_idx: Any,
                    **_: Any) -> None:
    controller = _controller(memo, jobs_idx=jobs_idx, job_pods_idx=job_pods_idx,
                             usage_idx=usage_idx, nodes_idx=nodes_idx)
    if type == "DELETED":
        controller.forget((namespace, name))
        return
    await controller.reconcile((namespace, name))
    controller.wake.set()


@kopf.on.event("pods", labels={JOB_LABEL: kopf.PRESENT})
async def pod_event(namespace: str, labels: kopf.Labels, memo: kopf.Memo, jobs_idx: Any,
                    job_pods_idx: Any, usage_idx: Any, nodes_idx: Any, **_: Any) -> None:
    controller = _controller(memo, jobs_idx=jobs_idx, job_pods_idx=job_pods_idx,
                             usage_idx=usage_idx, nodes_idx=nodes_idx)
    await controller.reconcile((namespace, labels[JOB_LABEL]))
    controller.wake.set()


@kopf.on.event("nodes")
async def node_event(memo: kopf.Memo, jobs_idx: Any, job_pods_idx: Any, usage_idx: Any,
                     nodes_idx: Any, **_: Any) -> None:
    _controller(memo, jobs_idx=jobs_idx, job_pods_idx=job_pods_idx, usage_idx=usage_idx,
                nodes_idx=nodes_idx).wake.set()
