from collections.abc import Sequence

import pytest

from tests.soak import checks, plan
from tests.soak.plan import Tracked


def _series(values: Sequence[float], every: float = 10) -> list[tuple[float, float]]:
    return [(i * every, v) for i, v in enumerate(values)]


def test_warm_up_is_a_fifth_of_the_run_at_most_five_minutes() -> None:
    assert checks.warmup(180) == 36
    assert checks.warmup(1800) == 300


def test_a_level_series_after_a_climbing_warm_up_is_flat() -> None:
    # 30 minutes every 10 s: the first 5 climb (warm-up), then 100 +- 5.
    values = [50 + i for i in range(30)] + [100 + (5 if i % 2 else -5) for i in range(151)]
    f = checks.flatness("RSS", _series(values), 1800)
    assert f.ok and f.baseline == pytest.approx(100, abs=0.5) and f.start == 50
    assert f.highest == 105
    assert f.growth == pytest.approx(0, abs=0.06)


def test_a_slow_leak_fails_though_each_step_is_small() -> None:
    values = [100 + 0.1 * i for i in range(181)]  # +18 over the run
    f = checks.flatness("RSS", _series(values), 1800)
    assert not f.ok and f.peak > 1.1 * f.baseline and f.end == f.peak


def test_one_busy_sample_does_not_fail_it_a_lasting_rise_does() -> None:
    values = [40.0] * 181
    values[100] = 80  # a burst of jobs ending together
    assert checks.flatness("tasks", _series(values), 1800).ok
    for i in range(100, 110):  # above the limit for longer than half a window
        values[i] = 50
    assert not checks.flatness("tasks", _series(values), 1800).ok


def test_flatness_refuses_too_few_samples() -> None:
    with pytest.raises(ValueError, match="too few"):
        checks.flatness("RSS", [(0, 1.0), (10, 1.0)], 1800)
    with pytest.raises(ValueError, match="no samples"):
        checks.flatness("RSS", [], 1800)


def _tracked(index: int, **seen: object) -> Tracked:
    t = Tracked(plan.job_plan(index, 4.0 * index))
    for k, v in seen.items():
        setattr(t, k, v)
    return t


def test_jobs_ended_as_planned_and_deleted_in_time_pass_the_rest_are_named() -> None:
    ok = _tracked(0, ended=20.0, gone=40.0)  # completed in 10 s, TTL 15 s
    deleted = _tracked(7, ended=50.0, gone=50.0)
    wrong = _tracked(1, wrong="ended Completed/Succeeded")
    late = _tracked(10, ended=1000.0, gone=1010.0, last="Running/")
    stuck = _tracked(20, last="Deploying/")
    kept = _tracked(30, ended=130.0, last="Completed/Succeeded")
    v = checks.judge_jobs([ok, deleted, wrong, late, stuck, kept])
    assert v.created == {"completed": 4, "deleted": 1, "failed": 1}
    assert v.ended == {"completed": 1, "deleted": 1}
    assert v.slowest == {"completed": 20.0, "deleted": 22.0}
    assert v.wrong == [f"{wrong.plan.name}: ended Completed/Succeeded, expected Failed"]
    assert [s.split(":")[0] for s in v.stuck] == [late.plan.name, stuck.plan.name,
                                                   kept.plan.name]
    assert "not deleted" in v.stuck[2] and "Deploying/" in v.stuck[1]


def _line(resource: str, verb: str, value: int, subresource: str = "",
          code: str = "200") -> str:
    return (f'apiserver_request_total{{code="{code}",component="apiserver",group="",'
            f'resource="{resource}",scope="namespace",subresource="{subresource}",'
            f'verb="{verb}",version="v1"}} {value}')


METRICS = "\n".join(["# HELP apiserver_request_total Counter", _line("pods", "LIST", 10),
                      _line("pods", "POST", 4, "binding", "201"),
                      _line("pods", "LIST", 2, code="404"), _line("", "GET", 7, "/healthz")])


def test_requests_are_counted_by_verb_and_resource_over_every_code() -> None:
    assert checks.by_verb_resource(METRICS) == {"LIST pods": 12, "POST pods/binding": 4}


def test_rates_of_the_first_window_after_warm_up_and_of_the_last() -> None:
    readings = [(t, {"LIST pods": 2.0 * t, "GET nodes": 10.0 + (t if t > 1000 else 0)})
                for t in range(0, 1801, 30)]
    early, late = checks.window_rates(readings, 1800)
    assert early == {"LIST pods": 2.0}  # 300 s .. 450 s
    assert late == {"LIST pods": 2.0, "GET nodes": 1.0}  # 1650 s .. 1800 s
