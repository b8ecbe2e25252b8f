from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from trainingjob_operator.models import JobResult
from trainingjob_operator.results import METRICS_LIMIT, MODEL_LIMIT, parse_result


def test_a_model_and_metrics_are_the_result() -> None:
    result, problem = parse_result('{"model": "s3://b/run-7/model", "metrics": {"loss": 0.12}}')
    assert result == JobResult(model="s3://b/run-7/model", metrics={"loss": 0.12})
    assert problem == ""


def test_no_message_is_no_result_and_no_problem() -> None:
    assert parse_result(None) == (None, "") and parse_result(" \n") == (None, "")


def test_what_is_not_a_json_object_is_ignored_with_the_reason() -> None:
    assert parse_result("done, model saved")[0] is None
    assert "not JSON" in parse_result("done, model saved")[1]
    assert "not an object" in parse_result("[1, 2]")[1]


def test_bad_parts_are_left_out_and_named() -> None:
    result, problem = parse_result(json.dumps({
        "model": "m", "metrics": {"loss": 0.5, "acc": "high", "nan": float("nan"), "ok": True},
        "extra": 1}))
    assert result == JobResult(model="m", metrics={"loss": 0.5})
    assert "unknown key 'extra'" in problem and "metric 'acc'" in problem
    assert "metric 'nan'" in problem and "metric 'ok'" in problem
    result, problem = parse_result(json.dumps({"model": "x" * (MODEL_LIMIT + 1)}))
    assert result is None and "at most 1024" in problem


@given(st.text(max_size=4096))
def test_any_message_gives_a_bounded_result_or_none(message: str) -> None:
    result, _ = parse_result(message)
    if result is not None:
        assert result.model is None or len(result.model) <= MODEL_LIMIT
        assert len(result.metrics) <= METRICS_LIMIT


@given(st.dictionaries(st.text(max_size=70), st.one_of(st.floats(), st.integers(),
                                                        st.text(max_size=5)), max_size=40))
def test_metrics_are_finite_numbers_and_at_most_the_limit(metrics: dict[str, object]) -> None:
    result, _ = parse_result(json.dumps({"metrics": metrics}))
    if result is not None:
        assert len(result.metrics) <= METRICS_LIMIT
        assert all(v == v and abs(v) != float("inf") for v in result.metrics.values())


def test_control_characters_are_removed_from_the_model_and_metric_names_and_said() -> None:
    """JSON carries ESC, CR and bidi overrides as escapes: after parsing they are real, and
    status.result is read in terminals (kubectl, the plugin)."""
    message = json.dumps({
        "model": "\x1b]8;;https://evil.example/\x1b\\s3://b/m\x1b]8;;\x1b\\\x1b[2J\rok\u202e",
        "metrics": {"\x1b[31mloss\x1b[0m": 0.5, "acc\u2066": 0.9, "\x1b[1m": 1.0}})
    result, problem = parse_result(message)
    assert result == JobResult(model="s3://b/m ok", metrics={"loss": 0.5, "acc": 0.9})
    assert "control characters were removed from model" in problem
    assert "control characters were removed from metric names" in problem
    assert "metric '' is not a finite number with a name" in problem
    assert parse_result('{"model": "s3://b/m"}') == (JobResult(model="s3://b/m"), "")
