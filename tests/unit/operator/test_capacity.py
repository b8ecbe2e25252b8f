from __future__ import annotations

from trainingjob_operator.capacity import (
    free,
    free_gpus,
    granted,
    place,
    reserved,
    still_granted,
    used,
)
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.nodes import NodeView
from trainingjob_operator.pods import PodView

from tests.unit.operator.factories import at, exited, job, pod

R = "nvidia.com/gpu"
NODES = [NodeView(f"n{i}", {R: 8}, True) for i in range(4)]


def _named(j: TrainingJob, name: str, version: str = "1") -> TrainingJob:
    return j.model_copy(update={"metadata": j.metadata.model_copy(
        update={"name": name, "resource_version": version})})


def test_free_subtracts_running_pods_and_reservations_but_not_finished_pods() -> None:
    pods = [pod(0, node="n0", gpus=8), pod(1, node="n1", gpus=4), exited(2)]
    assert free(R, NODES, used(R, pods), {"n2": 8}) == {"n0": 0, "n1": 4, "n2": 0, "n3": 8}


def test_a_stopped_worker_holds_its_gpus_until_the_kubelet_marks_it_failed() -> None:
    """A pod given its active deadline still runs (SIGTERM, grace) until its phase is Failed;
    the kubelet holds that phase back until no container can run (status_manager.go)."""
    stopping = pod(0, node="n0", gpus=8, deadline=1)
    killed = pod(0, node="n0", gpus=8, deadline=1, phase="Failed", reason="DeadlineExceeded",
                 containers=[{"name": "trainer", "state": {"terminated": {"exitCode": 137}}}])
    assert used(R, [stopping]) == {"n0": 8}
    assert used(R, [killed]) == {}


def test_place_is_all_or_nothing_and_best_fit() -> None:
    assert place(2, 4, {"a": 8, "b": 4}) == ["b", "a"]
    assert place(3, 8, {"a": 8, "b": 8}) is None


def test_a_reservation_holds_gpus_only_for_workers_whose_pods_are_not_bound_yet() -> None:
    deploying = _named(job(at("Deploying", reservation={"attempt": 1, "nodes": ["n0", "n1"]}),
                           workers=2, gpusPerWorker=4), "d")
    pending = _named(job(at("Pending"), workers=1, gpusPerWorker=8), "p")
    jobs = {("ns", "d"): deploying, ("ns", "p"): pending}
    assert reserved(jobs, {}, {("ns", "d"): []}) == {R: {"n0": 4, "n1": 4}}
    bound = pod(0, node="n0", gpus=4)  # worker 0's pod is bound: `used` counts it now
    assert reserved(jobs, {}, {("ns", "d"): [bound]}) == {R: {"n1": 4}}
    assert free_gpus(jobs, {}, {("ns", "d"): [bound]}, NODES, [bound]) == {
        R: {"n0": 4, "n1": 4, "n2": 8, "n3": 8}}


def test_a_reservation_of_an_older_attempt_holds_nothing() -> None:
    retried = job(at("Created", attempt=2, reservation={"attempt": 1, "nodes": ["n0"]}))
    assert reserved({("ns", "j"): retried}, {}, {}) == {}


def test_an_admission_not_yet_seen_counts_until_the_index_shows_it() -> None:
    pending = _named(job(at("Pending"), workers=2, gpusPerWorker=8), "p", version="7")
    grant = granted(pending, "8", ["n2", "n3"])
    grants = {("ns", "p"): grant}
    jobs = {("ns", "p"): pending}
    assert reserved(jobs, grants, {}) == {R: {"n2": 8, "n3": 8}}
    assert still_granted(grants, jobs) == grants  # the index still shows version 7
    seen = _named(pending, "p", version="8")
    assert still_granted(grants, {("ns", "p"): seen}) == {}
    admitted = _named(job(at("Created"), workers=2, gpusPerWorker=8), "p", version="9")
    assert still_granted(grants, {("ns", "p"): admitted}) == {}
    assert still_granted(grants, {}) == {}  # deleted
    retried = _named(job(at("Pending", attempt=2), workers=2, gpusPerWorker=8), "p", "7")
    assert still_granted(grants, {("ns", "p"): retried}) == {}


def test_free_gpus_counts_only_the_resources_jobs_ask_for() -> None:
    amd = job(at("Pending"), gpuResource="amd.com/gpu")
    nodes = [NodeView("a", {"amd.com/gpu": 4, R: 8}, True)]
    assert free_gpus({("ns", "j"): amd}, {}, {}, nodes, [exited(0)]) == {"amd.com/gpu": {"a": 4}}


def test_each_resource_is_counted_on_its_own_pods_reservations_and_nodes() -> None:
    """amd.com/gpu and nvidia.com/gpu pools share nodes but never each other's counts: a bound
    amd pod, an amd reservation and an nvidia job's pods each take only their own resource."""
    amd, mig = "amd.com/gpu", "nvidia.com/mig-1g.5gb"
    nodes = [NodeView("a0", {amd: 4}, True), NodeView("a1", {amd: 4}, True),
             NodeView("n0", {R: 8, mig: 7}, True)]
    amd_pod = PodView(name="x", namespace="other", uid="x", node_name="a0", phase="Running",
                      requests={amd: 4})
    nvidia_pod = pod(0, node="n0", gpus=8)
    deploying = _named(job(at("Deploying", reservation={"attempt": 1, "nodes": ["a1"]}),
                           gpuResource=amd, gpusPerWorker=2), "d")
    jobs = {("ns", "d"): deploying,
            ("ns", "p"): _named(job(at("Pending"), gpuResource=amd), "p"),
            ("ns", "m"): _named(job(at("Pending"), gpuResource=mig), "m"),
            ("ns", "n"): _named(job(at("Pending")), "n")}
    pools = free_gpus(jobs, {}, {("ns", "d"): []}, nodes, [amd_pod, nvidia_pod])
    assert pools == {amd: {"a0": 0, "a1": 2, "n0": 0},
                     R: {"a0": 0, "a1": 0, "n0": 0},
                     mig: {"a0": 0, "a1": 0, "n0": 7}}


def test_a_squatting_pod_is_no_workers_but_its_gpus_are_used_on_its_node() -> None:
    """A pod labelled as worker 0 of a job, not owned by it, bound to n2 with 8 GPUs: the
    job's reservation on n0 still holds for its own worker 0, and n2's GPUs are in use."""
    deploying = _named(job(at("Deploying", reservation={"attempt": 1, "nodes": ["n0"]}),
                           gpusPerWorker=4), "d")
    squatter = pod(0, node="n2", gpus=8, owner="not-the-job")
    jobs = {("ns", "d"): deploying}
    assert reserved(jobs, {}, {("ns", "d"): [squatter]}) == {R: {"n0": 4}}
    assert free_gpus(jobs, {}, {("ns", "d"): [squatter]}, NODES, [squatter]) == {
        R: {"n0": 4, "n1": 8, "n2": 0, "n3": 8}}
