from __future__ import annotations

from typing import Any

import pytest
from trainingjob_operator.settings import Settings
from trainingjob_operator.validation import accelerator, invalid_spec
from trainingjob_operator.vocabulary import DEFAULT_ACCELERATORS

from tests.unit.operator.factories import job

S = Settings()


@pytest.mark.parametrize(("spec", "says"), [
    ({"gpuResource": "gpu"}, "spec.gpuResource 'gpu' is not an extended resource name"),
    ({"resources": {"limits": {"nvidia.com/gpu": 2}}}, "request GPUs with spec.gpusPerWorker"),
])
def test_invalid_spec_messages_name_the_field_and_the_fix(spec: dict[str, Any],
                                                          says: str) -> None:
    assert says in (invalid_spec(job(**spec), S) or "")


def test_too_long_name_is_invalid() -> None:
    j = job().model_copy(update={"metadata": job().metadata.model_copy(update={"name": "x" * 60})})
    assert "shorten the TrainingJob's name" in (invalid_spec(j, S) or "")


def test_template_may_not_set_the_active_deadline_the_operator_stops_workers_with() -> None:
    problem = invalid_spec(job(template={"spec": {"activeDeadlineSeconds": 600}}), S)
    assert problem == ("spec.template.spec.activeDeadlineSeconds is set by the operator; use "
                       "spec.timeouts.runSeconds instead")


@pytest.mark.parametrize("volume", [{}, {"emptyDir": {}, "hostPath": {"path": "/x"}}])
def test_the_output_volume_names_exactly_one_source(volume: dict[str, Any]) -> None:
    problem = invalid_spec(job(output={"volume": volume}), S)
    assert problem is not None and problem.startswith(
        "spec.output.volume must name exactly one volume source")
    assert invalid_spec(job(output={"volume": {"name": "x", "emptyDir": {}}}), S) is None


ACCEL = Settings(accelerators=("nvidia.com/gpu", "nvidia.com/mig-*", "example.com/accel"))


@pytest.mark.parametrize(("kind", "name"), [("limits", "example.com/accel"),
                                            ("requests", "example.com/accel"),
                                            ("limits", "nvidia.com/mig-1g.5gb")])
def test_an_accelerator_in_spec_resources_is_invalid_whatever_gpu_resource_says(
        kind: str, name: str) -> None:
    """The queue counts only spec.gpuResource: a CPU-only job that limits an accelerator
    would take GPUs the queue reserved for other jobs."""
    problem = invalid_spec(job(gpusPerWorker=0, gpuResource="example.com/foo",
                               resources={"limits": {name: 8}, **(
                                   {"requests": {name: 8}} if kind == "requests" else {})}),
                           ACCEL)
    assert problem == (f"spec.resources.{kind} sets {name}, an accelerator; request it with "
                       f"spec.gpusPerWorker and spec.gpuResource: {name} instead, so that "
                       "the queue counts it")


def test_only_the_configured_accelerators_are_refused_in_spec_resources() -> None:
    fpga = job(resources={"limits": {"example.com/fpga": 1, "example.com/accel": 1}})
    assert invalid_spec(fpga, Settings(accelerators=("example.com/fpga-*",))) is None
    assert "sets example.com/accel, an accelerator" in (invalid_spec(fpga, ACCEL) or "")
    # the prefix is the text before the *, no more
    assert invalid_spec(job(resources={"limits": {"nvidia.com/migx": 1}}), ACCEL) is None


@pytest.mark.parametrize(("resource", "patterns", "expected"), [
    ("nvidia.com/gpu", DEFAULT_ACCELERATORS, True),
    ("amd.com/gpu", DEFAULT_ACCELERATORS, True),
    ("nvidia.com/mig-3g.20gb", DEFAULT_ACCELERATORS, True),
    ("gpu.intel.com/i915", DEFAULT_ACCELERATORS, True),
    ("example.com/fpga", DEFAULT_ACCELERATORS, False),
    ("nvidia.com/gpu.shared", ("nvidia.com/gpu",), False),
    ("anything/at-all", ("*",), True),
])
def test_accelerator_matches_names_and_trailing_star_prefixes(
        resource: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert accelerator(resource, patterns) is expected


def test_a_cpu_only_gang_has_a_bound() -> None:
    bound = Settings(cpu_only_max_workers=4)
    assert invalid_spec(job(gpusPerWorker=0, workers=4), bound) is None
    assert invalid_spec(job(gpusPerWorker=1, workers=5), bound) is None  # queued: no bound here
    problem = invalid_spec(job(gpusPerWorker=0, workers=5), bound) or ""
    assert problem.startswith("spec.workers is 5, but a CPU-only job (spec.gpusPerWorker 0) "
                              "may have at most 4 workers")
    assert "TRAININGJOB_CPU_ONLY_MAX_WORKERS" in problem and "cpuOnlyMaxWorkers" in problem
    assert "use fewer workers" in problem
    assert invalid_spec(job(gpusPerWorker=0, workers=17), Settings()) is not None


def test_a_template_node_selector_may_not_leave_the_configured_node_set() -> None:
    pool = Settings(worker_node_selector={"pool": "training", "zone": "a"})
    outside = job(template={"spec": {"nodeSelector": {"pool": "infra"}}})
    assert invalid_spec(outside, pool) == (
        "spec.template.spec.nodeSelector sets pool: 'infra', but workers run only on nodes "
        "with pool: 'training' (the operator's setting TRAININGJOB_WORKER_NODE_SELECTOR, chart "
        "value workerNodeSelector); leave pool out of spec.template.spec.nodeSelector or set "
        "it to 'training'")
    assert invalid_spec(outside, Settings()) is None
    same = job(template={"spec": {"nodeSelector": {"pool": "training", "gpu": "a100"}}})
    assert invalid_spec(same, pool) is None
    assert invalid_spec(job(), pool) is None
