"""kube.py against the real API server: the guarantees the controller builds on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from trainingjob_operator.kube import Kube, NotLeaderError
from trainingjob_operator.models import ObjectMeta

from tests.conftest import Operator
from tests.harness import Cluster
from tests.kube import Kubectl, training_job


class SyncKube:
    """Kube's coroutines called from a test: each call on a connection of its own, closed
    after (an aiohttp pool belongs to the event loop that made it)."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.leading: Callable[[], bool] = lambda: True

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            async def run() -> Any:
                kube = await Kube.connect(self.kubeconfig)
                kube.leading = self.leading
                try:
                    return await getattr(kube, name)(*args)
                finally:
                    await kube.close()
            return asyncio.run(run())
        return call


@pytest.fixture
def kube(cluster: Cluster, operator: Operator) -> Iterator[SyncKube]:
    """The API as the operator's kube.py sees it, with the operator itself stopped so that
    nobody else writes the objects under test (the operator fixture installed the CRD)."""
    operator.stop()
    try:
        yield SyncKube(str(cluster.kubeconfig))
    finally:
        operator.start()


def _meta(ns: Kubectl, name: str) -> ObjectMeta:
    return ObjectMeta.model_validate(ns.json("get", "tj", name)["metadata"])


def test_status_write_on_stale_state_is_refused(ns: Kubectl, kube: SyncKube) -> None:
    ns.apply(training_job("cas", template={"spec": {"nodeSelector": {"nowhere": "x"}}}))
    stale = _meta(ns, "cas")
    ns.run("label", "tj", "cas", "touched=yes")  # anyone's write moves resourceVersion on
    refused = kube.patch_status(stale, {"message": "decided on stale state"})
    assert refused is None
    assert ns.json("get", "tj", "cas").get("status", {}).get("message") != \
        "decided on stale state"
    fresh = _meta(ns, "cas")
    written = kube.patch_status(fresh, {"message": "decided on fresh state"})
    assert written is not None and written != fresh.resource_version
    assert ns.json("get", "tj", "cas")["status"]["message"] == "decided on fresh state"


def test_create_counts_an_existing_pod_as_created_and_reports_refusals(
        ns: Kubectl, kube: SyncKube) -> None:
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": ns.namespace},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    assert kube.create(pod).ok
    assert kube.create(pod).ok  # AlreadyExists is success
    ns.run("create", "quota", "none", "--hard=pods=0")
    ns.wait("quota/none", "jsonpath={.status.hard.pods}=0")  # enforced once computed
    refused = kube.create({**pod, "metadata": {**pod["metadata"], "name": "q"}})
    assert not refused.ok and "exceeded quota: none" in str(refused.rejected)


def test_stop_pod_sets_the_deadline_only_on_the_pod_decided_on(ns: Kubectl, kube: SyncKube) -> None:
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "w", "namespace": ns.namespace},
                           "spec": {"nodeName": "nowhere",  # no kubelet acts on it
                                    "containers": [{"name": "c", "image": "x"}]}}
    ns.apply(pod)
    first = ns.json("get", "pod", "w")["metadata"]["uid"]
    kube.stop_pod(str(ns.namespace), "w", first, 1)
    assert ns.json("get", "pod", "w")["spec"]["activeDeadlineSeconds"] == 1
    ns.run("delete", "pod", "w", "--grace-period=0", "--force")
    ns.apply(pod)  # a new pod under the same name: the old decision must not touch it
    kube.stop_pod(str(ns.namespace), "w", first, 1)
    assert "activeDeadlineSeconds" not in ns.json("get", "pod", "w")["spec"]
    kube.stop_pod(str(ns.namespace), "gone", first, 1)  # 404: nothing to stop
    kube.leading = lambda: False
    with pytest.raises(NotLeaderError):
        kube.stop_pod(str(ns.namespace), "w", first, 1)
