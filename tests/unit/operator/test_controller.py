"""The shell against a fake API: the loop's turn, the events' routing, the leader gate, a
node lost with many jobs, and the queue woken only when capacity or the queue may move."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from trainingjob_operator.controller import Controller
from trainingjob_operator.kube import Created
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.nodes import NodeView
from trainingjob_operator.timeutil import format_time
from trainingjob_operator.vocabulary import Key, Phase, Reason

from tests.unit.operator.factories import NOW, at, exited, job, running
from tests.unit.operator.fakeapi import FakeApi, FakeClock, bound, controller, gpu_node

KEY: Key = ("ns", "j")


def named(j: TrainingJob, name: str) -> TrainingJob:
    return j.model_copy(update={"metadata": j.metadata.model_copy(update={"name": name})})


async def drain(c: Controller) -> None:
    """Handle every key the work queue holds, as the workers would."""
    while len(c.work):
        await c.work.handle(await c.work.take(), c.reconcile)


def test_a_new_job_wakes_the_queue_and_is_admitted_on_the_clock_s_time() -> None:
    api, clock = FakeApi(), FakeClock(at=NOW + timedelta(hours=1))
    api.put_node(gpu_node("n0"))
    c = controller(api, clock)
    new = job(gpusPerWorker=8)
    api.put_job(new)
    c.job_changed(KEY, new)
    assert c.pass_wanted and len(c.work) == 1
    asyncio.run(c.step())
    admitted = api.job(KEY)
    assert admitted.status.phase is Phase.DEPLOYING
    assert admitted.status.reservation is not None
    assert admitted.status.reservation.nodes == ["n0"]
    assert admitted.status.phase_time == format_time(clock.now())
    assert [c[1:] for c in api.writes("create")] == [("Pod", "j-worker-0")]
    assert not c.pass_wanted


def test_a_job_s_event_that_frees_nothing_runs_no_pass() -> None:
    api = FakeApi()
    api.put_node(gpu_node("n0"))
    c = controller(api)
    j = job(status=at("Running"), gpusPerWorker=8)
    api.put_job(j)
    api.pods.put(running(0))
    c.job_changed(KEY, j)  # admitted already: not queued
    asyncio.run(drain(c))
    assert not c.pass_wanted
    c.pod_changed(None, running(0))  # a worker's pod updated, still running
    assert not c.pass_wanted and len(c.work) == 1


def test_a_pod_that_stops_holding_gpus_wakes_the_queue() -> None:
    c = controller(FakeApi())
    before = bound(running(0), "n0")
    c.pod_changed(before, bound(exited(0, code=0), "n0"))
    assert c.pass_wanted
    c.pass_wanted = False
    c.pod_changed(before, None)  # deleted
    assert c.pass_wanted
    c.pass_wanted = False
    c.pod_changed(running(0).model_copy(update={"node_name": None}), before)  # bound: takes
    assert not c.pass_wanted


def test_a_decision_that_releases_wakes_the_queue_when_applied() -> None:
    api = FakeApi()
    c = controller(api)
    j = job(status=at("Running"), gpusPerWorker=8, stop=True)
    api.put_job(j)
    api.pods.put(running(0))
    asyncio.run(c.work.handle(KEY, c.reconcile))
    assert api.job(KEY).status.phase is Phase.STOPPED
    assert c.pass_wanted


def test_a_standby_decides_nothing_and_its_loop_admits_nothing() -> None:
    api = FakeApi()
    api.put_node(gpu_node("n0"))
    c = controller(api)
    c.leading = lambda: False
    api.put_job(job())
    c.job_changed(KEY, job())
    asyncio.run(c.work.handle(KEY, c.reconcile))
    asyncio.run(c.step())
    assert api.calls == []
    assert c.metrics.leader._value.get() == 0


def test_a_lost_node_s_jobs_are_queued_for_the_workers_not_reconciled_inline() -> None:
    api = FakeApi()
    api.put_node(gpu_node("n0"))
    c = controller(api, node_lost_grace_seconds=60)
    for i in range(50):
        j = named(job(status=at("Running", reservation={"attempt": 1, "nodes": ["n0"]}),
                      gpusPerWorker=8), f"j{i}")
        api.put_job(j)
    c.node_changed("n0", gpu_node("n0"))
    assert len(c.work) == 0
    down = NodeView(name="n0", allocatable={"nvidia.com/gpu": 8}, schedulable=False,
                    ready=False, ready_since=format_time(NOW))
    api.put_node(down)
    c.node_changed("n0", down)
    assert api.calls == [] and len(c.work) == 50 and c.pass_wanted
    asyncio.run(drain(c))
    # Each job judged once, by a worker (they have no pods left: each restarts its gang).
    judged = {w[1]: w[2]["reason"] for w in api.writes("status")}
    assert judged == {("ns", f"j{i}"): Reason.WORKER_LOST for i in range(50)}


def test_the_loop_hands_jobs_whose_time_has_come_to_the_work_queue() -> None:
    api, clock = FakeApi(), FakeClock()
    c = controller(api, clock)
    c.work.add_at(KEY, NOW + timedelta(seconds=30))
    assert 29 < c._sleep() <= 30
    asyncio.run(c.step())
    assert len(c.work) == 0
    clock.advance(30)
    asyncio.run(c.step())
    assert len(c.work) == 1


def test_a_refused_pod_ends_the_job_with_the_api_s_message() -> None:
    api = FakeApi(answers={"j-worker-0": Created(False, 'pods "j-worker-0" is forbidden: '
                                                       "exceeded quota: gpus")})
    api.put_node(gpu_node("n0"))
    c = controller(api)
    api.put_job(job(gpusPerWorker=8))
    c.job_changed(KEY, job(gpusPerWorker=8))
    asyncio.run(c.step())
    ended = api.job(KEY).status
    assert ended.phase is Phase.DEPLOY_FAILED and ended.reason == Reason.POD_REJECTED
    assert "exceeded quota" in str(ended.message)
    assert c.pass_wanted  # its reservation is free again


def test_forgetting_a_deleted_job_wakes_the_queue() -> None:
    c = controller(FakeApi())
    c.job_changed(KEY, None)
    assert c.pass_wanted


def test_reconcile_skips_a_job_the_informer_has_not_shown_since_its_write() -> None:
    api = FakeApi(echo=False)
    c = controller(api)
    j = job(status=at("Running"), gpusPerWorker=8, stop=True)
    api.put_job(j)
    api.pods.put(running(0))
    c.writer.superseded[KEY] = j.metadata.resource_version
    asyncio.run(c.work.handle(KEY, c.reconcile))
    assert api.calls == []
