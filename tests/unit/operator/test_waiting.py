from __future__ import annotations

from datetime import timedelta

from trainingjob_operator.decision import Decision
from trainingjob_operator.queue import Waiting
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import Reason
from trainingjob_operator.waiting import WriteBudget, next_refresh, queue_writes, waiting

from tests.unit.operator.factories import NOW, at, job

S = Settings()


def test_waiting_status_says_why_and_where_and_is_rewritten_only_when_due() -> None:
    j = job(at("Pending", reason="WaitingForCapacity"), workers=2, gpusPerWorker=8)
    w = Waiting(("ns", "j"), Reason.WAITING_FOR_CAPACITY, 16, 8, 8, position=3,
                namespace_position=1)
    status = waiting(j, w, NOW, S).status
    assert status is not None and status.queue is not None
    assert status.message == ("waiting for capacity: needs 16 GPUs (2 workers x 8 "
                              "nvidia.com/gpu), 8 free on the nodes it may use")
    assert (status.queue.position, status.queue.namespace_position) == (3, 1)
    assert len(status.history) == len(j.status.history)  # not a transition
    again = j.model_copy(update={"status": status})
    assert waiting(again, w, NOW + timedelta(seconds=1), S) == Decision()
    moved = Waiting(("ns", "j"), Reason.WAITING_FOR_CAPACITY, 16, 8, 8, position=2,
                    namespace_position=1)
    assert waiting(again, moved, NOW + timedelta(seconds=1), S) == Decision()  # not due yet
    later = waiting(again, moved, NOW + timedelta(seconds=S.queue_refresh_seconds), S).status
    assert later is not None and later.queue is not None and later.queue.position == 2
    freed = Waiting(("ns", "j"), Reason.WAITING_FOR_CAPACITY, 16, 12, 8, position=3,
                    namespace_position=1)
    more = waiting(again, freed, NOW + timedelta(seconds=S.queue_refresh_seconds), S).status
    assert more is not None and "12 free" in str(more.message)  # new numbers: the conditions
    assert all(c.message == more.message for c in more.conditions)  # say them too
    held = Waiting(("ns", "j"), Reason.QUEUED_BEHIND_HIGHER_PRIORITY, 16, 16, 8, position=2,
                   detail="ns/vip (priority 5) is ahead in the queue and waits for the same nodes")
    now_held = waiting(again, held, NOW + timedelta(seconds=1), S).status  # reason: at once
    assert now_held is not None and now_held.reason == "QueuedBehindHigherPriority"
    assert now_held.message == ("queued: needs 16 GPUs (2 workers x 8 nvidia.com/gpu), 16 free, "
                                "but ns/vip (priority 5) is ahead in the queue and waits for the "
                                "same nodes")
    admitted = {c.type: c.status for c in now_held.conditions}["Admitted"]
    assert admitted == "False"


def test_no_node_fits_message() -> None:
    j = job(at("Pending"), gpusPerWorker=16)
    status = waiting(j, Waiting(("ns", "j"), Reason.NO_NODE_FITS, 16, 32, 8), NOW, S).status
    assert status is not None and status.reason == "NoNodeFits"
    assert "no node can hold one worker: each needs 16 nvidia.com/gpu, the largest node has 8" \
        in (status.message or "")
    nowhere = waiting(j, Waiting(("ns", "j"), Reason.NO_NODE_FITS, 16, 0, 0,
                                 detail="no node matches nodeSelector {'a': 'b'}"),
                      NOW, S).status
    assert nowhere is not None and nowhere.message == (
        "no node can hold one worker: no node matches nodeSelector {'a': 'b'}; fix the node "
        "constraints in spec.template.spec or add such nodes")


def test_gang_too_large_message_says_what_it_needs_what_the_nodes_hold_and_the_fix() -> None:
    j = job(at("Pending"), workers=5, gpusPerWorker=8)
    w = Waiting(("ns", "j"), Reason.GANG_TOO_LARGE, 40, 32, 8,
                detail="4 nodes it may use hold at most 4 such workers even when empty "
                "(32 nvidia.com/gpu in total, the largest node 8)")
    status = waiting(j, w, NOW, S).status
    assert status is not None and status.reason == "GangTooLarge"
    assert status.message == (
        "the gang can never fit the cluster as it is: needs 40 GPUs (5 workers x 8 "
        "nvidia.com/gpu); 4 nodes it may use hold at most 4 such workers even when empty "
        "(32 nvidia.com/gpu in total, the largest node 8); lower spec.workers or "
        "spec.gpusPerWorker, or add nodes")


def test_queue_writes_put_changed_reasons_first_then_the_head_of_the_queue() -> None:
    fresh = at("Pending", reason="WaitingForCapacity",
               queue={"gpusNeeded": 1, "gpusFree": 0, "updatedTime": "2026-01-01T11:59:59Z"})
    jobs = {("ns", name): job(at("Pending", reason="WaitingForCapacity") if name != "held"
                              else fresh).model_copy(update={"metadata": job().metadata.model_copy(
                                  update={"name": name})})
            for name in ("a", "b", "held", "c")}
    waits = [Waiting(("ns", "a"), Reason.WAITING_FOR_CAPACITY, 1, 0, 8, position=1),
             Waiting(("ns", "b"), Reason.WAITING_FOR_CAPACITY, 1, 0, 8, position=2),
             Waiting(("ns", "held"), Reason.WAITING_FOR_CAPACITY, 1, 0, 8, position=3),
             Waiting(("ns", "c"), Reason.NO_NODE_FITS, 1, 0, 0, position=4)]
    due = queue_writes(jobs, waits, NOW, S)
    # c's reason changed: first; held was refreshed a second ago: not due at all.
    assert [j.metadata.name for j, _ in due] == ["c", "a", "b"]
    assert all(d.status is not None and d.events == () for _, d in due)


def test_write_budget_refills_at_its_rate_and_saves_up_only_a_burst() -> None:
    budget = WriteBudget(0.0, 100.0)
    allowed, budget = budget.spend(50, 100.5, 20.0)
    assert allowed == 10 and budget.tokens == 0.0
    allowed, budget = budget.spend(3, 100.75, 20.0)
    assert allowed == 3 and budget.tokens == 2.0  # 0.25 s at 20/s: five writes, three spent
    allowed, budget = budget.spend(500, 1000.0, 20.0)
    assert allowed == 100  # an hour idle saves up five seconds' worth, no more
    assert budget.spend(0, 1000.0, 20.0)[0] == 0


def test_a_spec_changed_while_waiting_is_observed_even_when_the_numbers_stay() -> None:
    j = job(at("Pending", reason="WaitingForCapacity"))
    w = Waiting(("ns", "j"), Reason.WAITING_FOR_CAPACITY, 1, 0, 8, position=1)
    status = waiting(j, w, NOW, S).status
    assert status is not None and status.observed_generation == 1
    later = NOW + timedelta(seconds=S.queue_refresh_seconds)
    same = j.model_copy(update={"status": status})
    assert waiting(same, w, later, S) == Decision()
    edited = same.model_copy(update={"metadata": same.metadata.model_copy(
        update={"generation": 2})})  # e.g. a new image: the same GPUs, the same message
    again = waiting(edited, w, later, S).status
    assert again is not None and again.observed_generation == 2
    assert {c.observed_generation for c in again.conditions} == {2}


def test_a_refresh_held_back_says_when_the_queue_must_look_again() -> None:
    j = job(at("Pending", reason="WaitingForCapacity"), workers=2, gpusPerWorker=8)
    w = Waiting(("ns", "j"), Reason.WAITING_FOR_CAPACITY, 16, 8, 8, position=3)
    status = waiting(j, w, NOW, S).status
    written = {("ns", "j"): j.model_copy(update={"status": status})}
    soon = NOW + timedelta(seconds=1)
    assert next_refresh(written, [w], soon, S) is None  # the same numbers: nothing held
    moved = Waiting(("ns", "j"), Reason.WAITING_FOR_CAPACITY, 16, 8, 8, position=2)
    assert next_refresh(written, [moved], soon, S) == \
        NOW + timedelta(seconds=S.queue_refresh_seconds)
