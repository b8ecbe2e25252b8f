"""The typed views read the informers' stores as the controller needs them."""

from __future__ import annotations

from trainingjob_operator.models import Unreadable

from tests.unit.operator.factories import job, running
from tests.unit.operator.fakeapi import FakeApi, bound, gpu_node


def test_jobs_pods_and_nodes_by_their_keys() -> None:
    api = FakeApi()
    api.put_job(job())
    gone = job().model_copy(update={"metadata": job().metadata.model_copy(
        update={"name": "gone", "deletion_timestamp": "2026-01-01T12:00:00Z"})})
    api.put_job(gone)
    bad = Unreadable.model_validate({"metadata": {"name": "bad", "namespace": "ns"},
                                     "problems": "spec.workers: not a number"})
    api.put_job(bad)
    api.pods.put(bound(running(0), "n0"))
    api.put_node(gpu_node("n0"))
    views = api.views()
    assert sorted(views.jobs.keys()) == [("ns", "bad"), ("ns", "gone"), ("ns", "j")]
    assert list(views.jobs.live()) == [("ns", "j")]  # readable and not being deleted
    assert views.jobs.get(("ns", "bad")) is bad and views.jobs.get(("ns", "x")) is None
    assert [p.name for p in views.pods.of_job(("ns", "j"))] == ["j-worker-0"]
    assert [p.name for p in views.pods.on_node("n0")] == ["j-worker-0"]
    assert [p.name for p in views.pods.bound()] == ["j-worker-0"]
    assert views.pods.of_job(("ns", "x")) == [] and views.nodes.get("n1") is None
    assert [n.name for n in views.nodes.all()] == ["n0"]
