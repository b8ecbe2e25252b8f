"""The admission pass against a fake API: what fits is admitted once, the rest is told why
it waits, within the write budget."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from trainingjob_operator.models import TrainingJob
from trainingjob_operator.vocabulary import Phase, Reason

from tests.unit.operator.factories import T0, job
from tests.unit.operator.fakeapi import FakeApi, FakeClock, controller, gpu_node


def named(j: TrainingJob, name: str, created: str = T0) -> TrainingJob:
    return j.model_copy(update={"metadata": j.metadata.model_copy(
        update={"name": name, "creation_timestamp": created})})


def test_a_pass_with_nothing_queued_writes_nothing() -> None:
    api = FakeApi()
    api.put_node(gpu_node("n0"))
    c = controller(api)
    api.put_job(job(status={"phase": "Running", "attempt": 1}))
    asyncio.run(c.admission.run())
    assert api.calls == []


def test_gpus_granted_are_not_granted_again_before_the_informer_shows_the_admission() -> None:
    api = FakeApi(echo=False)  # the informer lags: the stores still show both new
    api.put_node(gpu_node("n0"))
    c = controller(api)
    first, second = named(job(gpusPerWorker=8), "a"), named(job(gpusPerWorker=8), "b")
    for j in (first, second):
        api.put_job(j)
        c.job_changed((j.metadata.namespace, j.metadata.name), j)
    asyncio.run(c.admission.run())
    asyncio.run(c.admission.run())
    phases = [(w[1][1], w[2]["phase"]) for w in api.writes("status")]
    assert phases.count(("a", "Deploying")) == 1
    assert ("b", "Deploying") not in phases and ("b", "Pending") in phases
    assert api.writes("status")[1][2]["reason"] == Reason.WAITING_FOR_CAPACITY


def test_waiting_statuses_stay_within_the_write_budget_and_the_rest_wait_a_second() -> None:
    api, clock = FakeApi(), FakeClock()
    api.put_node(gpu_node("n0", gpus=0))
    c = controller(api, clock, queue_writes_per_second=2.0)
    for i in range(30):
        j = named(job(status={"phase": "Pending", "attempt": 1, "reason": "Old"},
                      gpusPerWorker=8), f"j{i:02}")
        api.put_job(j)
        c.job_changed((j.metadata.namespace, j.metadata.name), j)
    clock.advance(3)  # the budget has saved up 3 seconds of writes
    asyncio.run(c.admission.run())
    assert len(api.writes("status")) == 6
    assert c.admission.next_pass == clock.now() + timedelta(seconds=1)
    assert all(api.job(("ns", f"j{i:02}")).status.phase is Phase.PENDING for i in range(30))
