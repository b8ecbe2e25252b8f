"""Which field is to blame when a job's own data makes a step raise, on plain data."""

from __future__ import annotations

from trainingjob_operator import faults
from trainingjob_operator.models import TrainingJob

from tests.unit.operator.factories import job


def boom(j: TrainingJob) -> None:
    """A step that breaks on one value deep in the spec, as placement once broke on an
    affinity of the wrong shape (the typed template now refuses that one when it is read)."""
    for t in (j.spec.template.spec.tolerations or []) if j.spec.template else []:
        if t.key == "boom":
            raise AttributeError("'str' object has no attribute 'get'")
    if any(e.name == "BOOM" for e in j.spec.env or []):
        raise ValueError("no")


def test_the_smallest_part_whose_removal_lets_the_step_pass_is_named() -> None:
    tolerations = [{"key": "fine", "operator": "Exists"}, {"key": "boom", "operator": "Exists"}]
    assert faults.blame(job(template={"spec": {"tolerations": tolerations,
                                                "nodeSelector": {"pool": "a"}}}), boom) == \
        "spec.template.spec.tolerations[1].key"
    assert faults.blame(job(env=[{"name": "A", "value": "1"}, {"name": "BOOM"}]), boom) == \
        "spec.env[1]"  # a name is required: the whole variable is to blame


def test_no_field_is_named_when_no_one_part_is_to_blame() -> None:
    def always(_: TrainingJob) -> None:
        raise ValueError("not the spec's fault")

    assert faults.blame(job(env=[{"name": "A", "value": "1"}]), always) is None
    assert faults.blame(job(), boom) is None  # nothing to take away, and it passes anyway


def test_the_message_names_the_step_the_field_and_the_fix() -> None:
    err = AttributeError("'str' object has no attribute 'get'")
    assert faults.message("place its workers", "spec.template.spec.affinity", err) == (
        "the operator could not place its workers: spec.template.spec.affinity cannot be read "
        "(AttributeError: 'str' object has no attribute 'get'); fix "
        "spec.template.spec.affinity and create the TrainingJob again")
    assert faults.message("decide its next step", None, ValueError("x" * 1000)).endswith(
        "; fix the spec and create the TrainingJob again")
    assert len(faults.message("s", None, ValueError("x" * 1000))) < 400
