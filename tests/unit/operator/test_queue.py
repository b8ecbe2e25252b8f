from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from trainingjob_operator.nodes import NodeView, Placement, Taint, eligible
from trainingjob_operator.queue import Candidate, candidate, plan
from trainingjob_operator.vocabulary import Reason

from tests.unit.operator.factories import NOW, at, job

R = "nvidia.com/gpu"
NODES = [NodeView(f"n{i}", {R: 8}, True) for i in range(4)]
WINDOW = timedelta(minutes=10)


def _c(name: str, workers: int, per: int, priority: int = 0, created: str = "t1",
       ns: str = "ns", waited: timedelta = timedelta(0),
       placement: Placement | None = None) -> Candidate:
    return Candidate((ns, name), priority, created, workers, per, R,
                     placement or Placement(), NOW - waited)


def _free(**gpus: int) -> dict[str, dict[str, int]]:
    return {R: gpus}


def _reasons(result: object) -> dict[str, str]:
    return {w.key[1]: w.reason for w in result.waiting}  # type: ignore[attr-defined]


def test_gang_is_admitted_only_when_every_worker_fits() -> None:
    result = plan([_c("big", 3, 8), _c("small", 2, 8)], NODES, _free(n0=8, n1=8, n2=0, n3=4))
    assert list(result.admit) == [("ns", "small")]
    assert [(w.key[1], w.reason, w.needed, w.free) for w in result.waiting] == [
        ("big", Reason.WAITING_FOR_CAPACITY, 24, 20)]


def test_a_gang_more_than_all_its_nodes_hold_is_too_large_and_blocks_nobody() -> None:
    result = plan([_c("big", 5, 8, priority=9), _c("small", 2, 8)], NODES,
                  _free(n0=8, n1=8, n2=8, n3=8))
    assert list(result.admit) == [("ns", "small")]
    big = result.waiting[0]
    assert (big.reason, big.needed, big.free, big.largest_node) == (
        Reason.GANG_TOO_LARGE, 40, 32, 8)
    assert big.detail == ("4 nodes it may use hold at most 4 such workers even when empty "
                          "(32 nvidia.com/gpu in total, the largest node 8)")


def test_too_large_counts_workers_per_node_not_just_gpus() -> None:
    # 32 GPUs in all, but a 5-GPU worker takes a node of 8: four nodes hold four workers.
    assert _reasons(plan([_c("odd", 5, 5)], NODES, _free(n0=8))) == {
        "odd": Reason.GANG_TOO_LARGE}
    assert _reasons(plan([_c("fits", 4, 5)], NODES, _free(n0=8))) == {
        "fits": Reason.WAITING_FOR_CAPACITY}


def test_too_large_judges_only_the_nodes_the_job_may_use_ready_or_not() -> None:
    a100 = Placement(node_selector={"gpu": "a100"})
    nodes = [NodeView("a", {R: 8}, True, {"gpu": "a100"}), *NODES]
    assert _reasons(plan([_c("sel", 2, 8, placement=a100)], nodes, _free(a=8))) == {
        "sel": Reason.GANG_TOO_LARGE}
    # A NotReady node may come back: the gang could fit then, so it waits for capacity.
    down = [*NODES[:3], NodeView("n3", {R: 8}, False)]
    assert _reasons(plan([_c("all", 4, 8)], down, _free(n0=8, n1=8, n2=8))) == {
        "all": Reason.WAITING_FOR_CAPACITY}


def test_no_node_fits_names_the_largest_node() -> None:
    result = plan([_c("huge", 1, 16)], NODES, _free(n0=8))
    assert result.waiting[0].reason == Reason.NO_NODE_FITS and result.waiting[0].largest_node == 8


def test_higher_priority_is_admitted_first() -> None:
    result = plan([_c("old", 1, 8, 0, "t0"), _c("urgent", 1, 8, 5, "t9")], NODES[:1],
                  _free(n0=8))
    assert list(result.admit) == [("ns", "urgent")]
    assert _reasons(result) == {"old": Reason.WAITING_FOR_CAPACITY}


def test_a_waiting_higher_priority_job_holds_its_nodes_against_lower_priority() -> None:
    result = plan([_c("urgent", 1, 8, priority=5), _c("small", 1, 2, priority=0)],
                  NODES[:1], _free(n0=4))
    assert result.admit == {}
    assert _reasons(result) == {"urgent": Reason.WAITING_FOR_CAPACITY,
                                "small": Reason.QUEUED_BEHIND_HIGHER_PRIORITY}
    assert "ns/urgent (priority 5) is ahead in the queue" in result.waiting[1].detail


def test_same_priority_may_backfill_until_the_backfill_window_passes() -> None:
    jobs = [_c("old", 1, 8, created="t0", waited=timedelta(minutes=9)), _c("young", 1, 2)]
    early = plan(jobs, NODES[:1], _free(n0=4), NOW, WINDOW)
    assert list(early.admit) == [("ns", "young")]
    jobs[0] = _c("old", 1, 8, created="t0", waited=timedelta(minutes=11))
    late = plan(jobs, NODES[:1], _free(n0=4), NOW, WINDOW)
    assert late.admit == {}
    assert _reasons(late) == {"old": Reason.WAITING_FOR_CAPACITY,
                              "young": Reason.QUEUED_BEHIND_HIGHER_PRIORITY}
    assert "waiting longer than the backfill window" in late.waiting[1].detail


def test_a_held_node_is_only_one_the_waiting_job_could_use() -> None:
    a100 = Placement(node_selector={"gpu": "a100"})
    nodes = [NodeView("n0", {R: 8}, True, {"gpu": "a100"}), NodeView("n1", {R: 8}, True)]
    result = plan([_c("urgent", 1, 8, 5, placement=a100), _c("small", 1, 2)], nodes,
                  _free(n0=4, n1=4))
    assert result.admit == {("ns", "small"): ["n1"]}


def test_jobs_that_can_never_fit_hold_nothing() -> None:
    result = plan([_c("huge", 1, 16, priority=9), _c("wide", 5, 8, priority=8),
                   _c("small", 1, 1)], NODES, _free(n0=8, n1=8, n2=8, n3=8))
    assert list(result.admit) == [("ns", "small")]
    assert _reasons(result) == {"huge": Reason.NO_NODE_FITS, "wide": Reason.GANG_TOO_LARGE}


def test_a_job_too_big_for_the_nodes_that_are_ready_holds_nothing() -> None:
    nodes = [*NODES[:3], NodeView("n3", {R: 8}, False)]  # one node NotReady
    result = plan([_c("all", 4, 8, priority=9), _c("small", 1, 1)], nodes,
                  _free(n0=8, n1=8, n2=8))
    assert list(result.admit) == [("ns", "small")]


def test_positions_count_waiting_jobs_cluster_wide_and_per_namespace() -> None:
    jobs = [_c("a", 1, 8, created="t0", ns="x"), _c("b", 1, 8, created="t1", ns="y"),
            _c("c", 1, 8, created="t2", ns="x"), _c("d", 1, 8, created="t3", ns="x")]
    result = plan(jobs, NODES[:1], _free(n0=8))
    assert list(result.admit) == [("x", "a")]
    assert [(w.key[1], w.position, w.namespace_position) for w in result.waiting] == [
        ("b", 1, 1), ("c", 2, 1), ("d", 3, 2)]


def test_selectors_and_taints_decide_which_nodes_count() -> None:
    tainted = NodeView("t", {R: 8}, True, taints=(Taint("dedicated", "ml", "NoSchedule"),))
    plain = Placement()
    tolerant = Placement(tolerations=({"key": "dedicated", "operator": "Equal", "value": "ml",
                                       "effect": "NoSchedule"},))
    assert plan([_c("j", 1, 8, placement=plain)], [tainted], _free(t=8)).admit == {}
    assert plan([_c("j", 1, 8, placement=tolerant)], [tainted], _free(t=8)).admit == {
        ("ns", "j"): ["t"]}
    nowhere = plan([_c("j", 1, 1, placement=Placement(node_selector={"gpu": "h100"}))],
                   NODES, _free(n0=8))
    assert nowhere.waiting[0].reason == Reason.NO_NODE_FITS
    assert nowhere.waiting[0].detail == "no node matches nodeSelector {'gpu': 'h100'}"


def test_cpu_only_jobs_need_no_capacity() -> None:
    assert plan([_c("cpu", 3, 0)], [], {}).admit == {("ns", "cpu"): []}


def test_candidate_reads_priority_placement_and_queue_time_from_the_job() -> None:
    j = job(at("Pending"), priority=3, workers=2, gpusPerWorker=4,
            template={"spec": {"nodeSelector": {"gpu": "a100"}}})
    c = candidate(("ns", "j"), j)
    assert (c.priority, c.workers, c.per_worker, c.created) == (3, 2, 4, "2026-01-01T11:59:00Z")
    assert c.placement.node_selector == {"gpu": "a100"}
    assert c.waiting_since is not None and c.waiting_since < NOW


@settings(max_examples=200, deadline=None)
@given(jobs=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 9), st.integers(0, 3),
                               st.integers(0, 20), st.booleans()), max_size=12),
       free_gpus=st.lists(st.integers(0, 8), min_size=4, max_size=4))
def test_a_plan_never_admits_more_than_is_free_nor_onto_a_node_a_job_may_not_use(
        jobs: list[tuple[int, int, int, int, bool]], free_gpus: list[int]) -> None:
    nodes = [NodeView(f"n{i}", {R: 8}, True, {"zone": "a" if i < 2 else "b"}) for i in range(4)]
    zone_a = Placement(node_selector={"zone": "a"})
    candidates = [_c(f"j{i}", w, per, prio, f"t{i:02}", waited=timedelta(minutes=minutes),
                     placement=zone_a if pinned else None)
                  for i, (w, per, prio, minutes, pinned) in enumerate(jobs)]
    pool = {f"n{i}": f for i, f in enumerate(free_gpus)}
    result = plan(candidates, nodes, {R: pool}, NOW, WINDOW)
    taken = dict.fromkeys(pool, 0)
    by_key = {c.key: c for c in candidates}
    for key, placement in result.admit.items():
        c = by_key[key]
        assert len(placement) == (c.workers if c.per_worker else 0)
        for node in placement:
            taken[node] += c.per_worker
            assert eligible(next(n for n in nodes if n.name == node), c.placement)
    assert all(taken[n] <= pool[n] for n in pool)
    assert len(result.admit) + len(result.waiting) == len(candidates)
    assert [w.position for w in result.waiting] == list(range(1, len(result.waiting) + 1))


def test_a_retried_job_keeps_its_place_ahead_of_younger_jobs() -> None:
    retried = job(at("Pending", attempt=2, phaseTime="2026-01-01T12:00:00Z"))  # just requeued
    first = job(at("Pending"))
    younger = first.model_copy(update={"metadata": first.metadata.model_copy(update={
        "name": "y", "creation_timestamp": "2026-01-01T11:59:30Z"})})
    result = plan([candidate(("ns", "y"), younger), candidate(("ns", "j"), retried)],
                  NODES[:1], _free(n0=1), NOW, WINDOW)
    assert list(result.admit) == [("ns", "j")]
    assert [(w.key[1], w.position) for w in result.waiting] == [("y", 1)]


def test_a_job_of_another_resource_waits_for_that_resource_and_takes_no_other() -> None:
    """Free nvidia.com/gpu does not admit an amd.com/gpu job, and admitting it takes nothing
    from the nvidia pool: the queue keeps one pool, and one set of holds, per resource."""
    amd = "amd.com/gpu"
    nodes = [NodeView("a0", {amd: 4}, True), NodeView("n0", {R: 8}, True)]
    jobs = {("ns", "amd"): job(at("Pending"), gpuResource=amd, gpusPerWorker=4),
            ("ns", "nv"): job(at("Pending"), gpusPerWorker=8)}
    full = {amd: {"a0": 0, "n0": 0}, R: {"a0": 0, "n0": 8}}
    candidates = [candidate(k, j) for k, j in jobs.items()]
    result = plan(candidates, nodes, full, NOW, WINDOW)
    assert result.admit == {("ns", "nv"): ["n0"]}
    assert [(w.key[1], w.reason, w.needed, w.free) for w in result.waiting] == [
        ("amd", Reason.WAITING_FOR_CAPACITY, 4, 0)]
    freed = {amd: {"a0": 4, "n0": 0}, R: {"a0": 0, "n0": 8}}
    assert plan(candidates, nodes, freed, NOW, WINDOW).admit == {
        ("ns", "amd"): ["a0"], ("ns", "nv"): ["n0"]}


def test_the_configured_node_set_is_part_of_every_candidates_placement() -> None:
    nodes = [NodeView("in", {R: 8}, True, {"pool": "training"}),
             NodeView("out", {R: 8}, True, {"pool": "infra"})]
    free = {R: {"in": 0, "out": 8}}
    j = job(at("Pending"), template={"spec": {"nodeSelector": {"gpu": "a100"}}})
    c = candidate(("ns", "j"), j, {"pool": "training"})
    assert c.placement.node_selector == {"gpu": "a100", "pool": "training"}
    # what the template's affinity allows does not widen it: the selector is ANDed
    anywhere = job(at("Pending"), template={"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "Exists"}]}]}}}}})
    result = plan([candidate(("ns", "a"), anywhere, {"pool": "training"})], nodes, free, NOW)
    assert result.admit == {}
    assert result.waiting[0].reason == Reason.WAITING_FOR_CAPACITY
    assert plan([candidate(("ns", "a"), anywhere)], nodes, free, NOW).admit == {
        ("ns", "a"): ["out"]}
    nowhere = plan([candidate(("ns", "j"), j, {"pool": "training"})], nodes, free, NOW)
    assert nowhere.waiting[0].detail == ("no node matches nodeSelector {'gpu': 'a100', "
                                         "'pool': 'training'}")
