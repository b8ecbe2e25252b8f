from __future__ import annotations

from typing import Any

import pytest
from trainingjob_operator.validation import invalid_spec

from tests.unit.operator.factories import job


@pytest.mark.parametrize(("spec", "says"), [
    ({"gpuResource": "gpu"}, "spec.gpuResource 'gpu' is not an extended resource name"),
    ({"resources": {"limits": {"nvidia.com/gpu": 2}}}, "request GPUs with spec.gpusPerWorker"),
])
def test_invalid_spec_messages_name_the_field_and_the_fix(spec: dict[str, Any],
                                                          says: str) -> None:
    assert says in (invalid_spec(job(**spec)) or "")


def test_too_long_name_is_invalid() -> None:
    j = job().model_copy(update={"metadata": job().metadata.model_copy(update={"name": "x" * 60})})
    assert "shorten the TrainingJob's name" in (invalid_spec(j) or "")


def test_template_may_not_set_the_active_deadline_the_operator_stops_workers_with() -> None:
    problem = invalid_spec(job(template={"spec": {"activeDeadlineSeconds": 600}}))
    assert problem == ("spec.template.spec.activeDeadlineSeconds is set by the operator; use "
                       "spec.timeouts.runSeconds instead")


@pytest.mark.parametrize("volume", [{}, {"emptyDir": {}, "hostPath": {"path": "/x"}}])
def test_the_output_volume_names_exactly_one_source(volume: dict[str, Any]) -> None:
    problem = invalid_spec(job(output={"volume": volume}))
    assert problem is not None and problem.startswith(
        "spec.output.volume must name exactly one volume source")
    assert invalid_spec(job(output={"volume": {"name": "x", "emptyDir": {}}})) is None
