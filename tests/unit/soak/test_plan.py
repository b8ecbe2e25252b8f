import itertools

import pytest

from tests.soak import plan


@pytest.mark.parametrize(("text", "seconds"), [
    ("30m", 1800), ("1h30m", 5400), ("90s", 90), ("45", 45), ("2.5m", 150), ("1h0m5s", 3605)])
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert plan.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "30x", "30m junk", "0m", "-5m", "m30"])
def test_a_duration_that_is_not_one_says_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        plan.parse_duration(text)


def test_every_rotation_meets_every_end_a_user_can_meet() -> None:
    ends = {o.expect for o in plan.ROTATION}
    assert ends == {"Completed", "Failed", "DeployFailed", "Stopped", plan.GONE}
    assert {o.act for o in plan.ROTATION} == {None, "stop", "delete"}
    assert any(o.workers > 1 for o in plan.ROTATION)  # a gang
    assert all(o.workers * o.gpus <= 8 for o in plan.ROTATION)  # each fits on one node


def test_jobs_follow_the_rotation_with_unique_names_and_deadlines_from_their_create() -> None:
    plans = [plan.job_plan(i, 4.0 * i) for i in range(25)]
    assert len({p.name for p in plans}) == 25
    assert [p.outcome for p in plans[:10]] == [p.outcome for p in plans[10:20]]
    stop = next(p for p in plans if p.outcome.act == "stop")
    assert stop.act_at == stop.created + plan.ACT_AFTER
    assert stop.deadline == stop.created + plan.ACT_AFTER + plan.MARGIN_SECONDS
    assert plans[0].act_at is None


def test_a_manifest_asks_kwok_for_its_outcome_and_the_operator_for_its_ttl() -> None:
    failed = next(plan.job_plan(i, 0) for i in range(10)
                  if plan.ROTATION[i].name == "failed")
    m = plan.manifest(failed)
    annotations = m["spec"]["template"]["metadata"]["annotations"]
    assert annotations[plan.ANNOTATION + "outcome"] == "fail"
    assert annotations[plan.ANNOTATION + "exit-code"] == "3"
    assert m["spec"]["ttlSecondsAfterFinished"] == plan.TTL_SECONDS
    assert m["metadata"]["name"] == failed.name


def test_flaps_go_round_the_nodes_alternately_short_and_long_and_end_before_the_soak() -> None:
    got = plan.flaps(1800, 4)
    assert [f.node for f in got[:5]] == [0, 1, 2, 3, 0]
    assert [f.seconds for f in got[:3]] == [30, 90, 30]
    assert all(f.at + f.seconds <= 1800 for f in got)
    assert len(got) == 10  # 60, 240, ..., 1680 (+30 s)
    assert all(b.at - a.at == plan.FLAP_EVERY for a, b in itertools.pairwise(got))
    assert plan.flaps(80, 4) == []  # the first would outlast it
