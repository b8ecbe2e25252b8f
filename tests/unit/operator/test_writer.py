"""The writer against a fake API: status first under the precondition, then the actions,
then the Events; every answer of a create ends somewhere."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from trainingjob_operator.decision import CreatePod, Decision, DeletePod, Event
from trainingjob_operator.kube import Created
from trainingjob_operator.lifecycle import admit
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import EventType, Phase, Reason
from trainingjob_operator.writer import CREATE_TRIES, RETRY_MAX_SECONDS

from tests.unit.operator.factories import NOW, job
from tests.unit.operator.fakeapi import FakeApi, controller

KEY = ("ns", "j")


def test_a_decision_on_a_stale_version_touches_nothing() -> None:
    api = FakeApi()
    c = controller(api)
    api.put_job(job())  # resourceVersion 7
    stale = job().model_copy(update={"metadata": job().metadata.model_copy(
        update={"resource_version": "6"})})
    decision = admit(stale, ["n0"], NOW, Settings())
    assert asyncio.run(c.writer.apply(stale, decision, NOW)) is None
    assert [call[0] for call in api.calls] == ["status"]  # refused: no pod, no Event


def test_status_then_actions_then_events_and_the_old_version_is_remembered() -> None:
    api = FakeApi()
    c = controller(api)
    api.put_job(job())
    decision = admit(job(), ["n0"], NOW, Settings())
    written = asyncio.run(c.writer.apply(job(), decision, NOW))
    assert written == "101"
    kinds = [call[0] for call in api.calls]
    assert kinds[0] == "status" and kinds[1] == "create" and set(kinds[2:]) == {"event"}
    assert c.writer.superseded[KEY] == "7"
    assert not c.writer.stale(KEY, api.job(KEY))  # the informer shows the write


def test_a_flaky_create_is_tried_with_doubling_waits_then_ends_the_job() -> None:
    api = FakeApi(answers={"j-worker-0": Created(False, "etcdserver: request is too large",
                                                 flaky=True)})
    c = controller(api)
    j = job(status={"phase": "Deploying", "attempt": 1,
                    "reservation": {"attempt": 1, "nodes": ["n0"]}})
    api.put_job(j)
    waits = []
    for _ in range(CREATE_TRIES - 1):
        asyncio.run(c.writer.apply(j, Decision(actions=(CreatePod(0, "n0"),)), NOW))
        at = c.work.next_at()
        assert at is not None
        waits.append((at - NOW).total_seconds())
    assert waits == [5, 10, 20, 40] and max(waits) <= RETRY_MAX_SECONDS
    assert api.writes("status") == []
    asyncio.run(c.writer.apply(j, Decision(actions=(CreatePod(0, "n0"),)), NOW))
    ended = api.job(KEY).status
    assert ended.phase is Phase.DEPLOY_FAILED and ended.reason == Reason.POD_REJECTED
    assert f"{CREATE_TRIES} times in a row" in str(ended.message)


def test_a_passing_refusal_is_tried_again_without_end() -> None:
    api = FakeApi(answers={"j-worker-0": Created(False, "error looking up service account",
                                                 passing=True)})
    c = controller(api)
    j = job(status={"phase": "Deploying", "attempt": 1})
    api.put_job(j)
    for _ in range(CREATE_TRIES + 2):
        asyncio.run(c.writer.apply(j, Decision(actions=(CreatePod(0, "n0"),)), NOW))
    assert api.writes("status") == [] and c.work.next_at() == NOW + timedelta(seconds=5)


def test_a_status_the_api_refuses_is_told_once_per_version_and_frees_the_pods() -> None:
    api = FakeApi(refuse_status="spec is immutable once the TrainingJob exists")
    c = controller(api)
    j = job(status={"phase": "Running", "attempt": 1})
    api.put_job(j)
    decision = Decision(j.status.model_copy(update={"phase": Phase.FAILED}),
                        actions=(DeletePod("j-worker-0", 30),),
                        events=(Event(EventType.WARNING, Reason.ERROR, "worker 0 failed"),))
    for _ in range(3):
        asyncio.run(c.writer.apply(j, decision, NOW))
    assert api.writes("delete_pod") == [("delete_pod", "j-worker-0", 30)]
    (event,) = api.writes("event")
    assert "refuses this job's status" in event[4] and "create it again" in event[4]
