from __future__ import annotations

from trainingjob_operator.models import TrainingJob, Unreadable, read_job
from trainingjob_operator.vocabulary import Phase


def test_read_job_parses_camel_case_and_defaults() -> None:
    job = read_job({"metadata": {"name": "j", "namespace": "ns", "resourceVersion": "5"},
                    "spec": {"image": "x", "gpusPerWorker": 8, "timeouts": {"runSeconds": 60}}})
    assert isinstance(job, TrainingJob)
    assert job.spec.gpus_per_worker == 8 and job.spec.workers == 1
    assert job.spec.timeouts.run_seconds == 60 and job.spec.timeouts.deploy_seconds == 900
    assert job.metadata.resource_version == "5" and job.total_gpus == 8


def test_read_job_never_raises_on_what_an_older_schema_let_through() -> None:
    job = read_job({"metadata": {"name": "j", "namespace": "ns"},
                    "spec": {"workers": "many"}, "status": {"phase": "Running"}})
    assert isinstance(job, Unreadable)
    assert "spec.image: Field required" in job.problems
    assert "spec.workers" in job.problems and job.phase == "Running"


def test_phase_sets() -> None:
    assert {p for p in Phase if p.active} == {Phase.PENDING, Phase.CREATED, Phase.DEPLOYING,
                                               Phase.RUNNING}
    assert Phase.STOPPED.terminal and not Phase.RUNNING.terminal
