from __future__ import annotations

import asyncio
from datetime import timedelta

from trainingjob_operator import lifecycle
from trainingjob_operator.decision import Decision
from trainingjob_operator.lifecycle import decide
from trainingjob_operator.metrics import Metrics
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.settings import Settings

from tests.unit.operator.factories import NOW, at, job, pod, running

S = Settings()


def _after(j: TrainingJob, m: Metrics, d: Decision) -> None:
    assert d.status is not None
    m.transition(j.status, d.status, NOW)


def test_transitions_feed_admissions_queue_wait_deploy_time_retries_and_timeouts() -> None:
    m = Metrics()
    pending = job(at("Pending"))  # Pending since T0 = NOW - 60s
    _after(pending, m, lifecycle.admit(pending, ["n0"], NOW, S))
    assert m.registry.get_sample_value("trainingjob_admissions_total") == 1
    assert m.registry.get_sample_value("trainingjob_queue_wait_seconds_sum") == 60
    deploying = job(at("Deploying", history=[{"phase": "Created", "reason": "Admitted",
                                              "time": "2026-01-01T11:59:50Z"}]))
    _after(deploying, m, decide(deploying, [running(0)], NOW, S))
    assert m.registry.get_sample_value("trainingjob_deploy_seconds_sum") == 10
    assert m.registry.get_sample_value("trainingjob_deploy_seconds_bucket", {"le": "10.0"}) == 1
    lost = job(at("Running"))
    _after(lost, m, decide(lost, [pod(0, deleted=True)], NOW, S))
    assert m.registry.get_sample_value("trainingjob_retries_total") == 1
    late = job(at("Pending"), timeouts={"queueSeconds": 5})
    _after(late, m, decide(late, [], NOW, S))
    assert m.registry.get_sample_value("trainingjob_timeouts_total", {"timeout": "queue"}) == 1
    assert m.registry.get_sample_value("trainingjob_timeouts_total", {"timeout": "run"}) == 0
    assert m.registry.get_sample_value("trainingjob_transitions_total", {
        "phase": "DeployFailed", "reason": "QueueTimeout"}) == 1


def test_a_new_job_admitted_at_once_counts_one_admission_that_waited_no_time() -> None:
    m = Metrics()
    new = job()
    _after(new, m, lifecycle.admit(new, ["n0"], NOW, S))
    assert m.registry.get_sample_value("trainingjob_admissions_total") == 1
    assert m.registry.get_sample_value("trainingjob_queue_wait_seconds_count") == 1
    assert m.registry.get_sample_value("trainingjob_queue_wait_seconds_sum") == 0


def test_a_status_refresh_without_a_new_phase_counts_nothing() -> None:
    m = Metrics()
    j = job(at("Running"))
    m.transition(j.status, j.status.model_copy(update={"message": "x"}), NOW + timedelta(1))
    assert m.registry.get_sample_value("trainingjob_transitions_total", {
        "phase": "Running", "reason": "X"}) is None


def test_census_counts_jobs_by_phase_and_queued_gpus() -> None:
    m = Metrics()
    m.census([job(at("Pending"), gpusPerWorker=4, workers=2), job(at("Running")),
              job(at("Pending"))])
    assert m.registry.get_sample_value("trainingjob_jobs", {"phase": "Pending"}) == 2
    assert m.registry.get_sample_value("trainingjob_jobs", {"phase": "Completed"}) == 0
    assert m.registry.get_sample_value("trainingjob_queue_gpus_requested") == 9


def test_the_tasks_gauge_counts_the_loops_live_tasks_when_read() -> None:
    m = Metrics()

    async def scene() -> tuple[float | None, float | None]:
        m.count_tasks(asyncio.get_running_loop())
        alone = m.registry.get_sample_value("trainingjob_operator_asyncio_tasks")
        gate = asyncio.Event()
        waiting = [asyncio.create_task(gate.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        busy = m.registry.get_sample_value("trainingjob_operator_asyncio_tasks")
        gate.set()
        await asyncio.gather(*waiting)
        return alone, busy

    alone, busy = asyncio.run(scene())
    assert (alone, busy) == (1, 4)  # the scene itself, then it and the three waiters
    assert m.registry.get_sample_value("trainingjob_operator_asyncio_tasks") == 0  # loop gone
