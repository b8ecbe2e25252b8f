"""The hostile-manifest strategies (tests/hostile.py): unmutated manifests are ones the
operator takes, mutations say where they struck, and a refusal's field is recognised."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainingjob_operator.models import TrainingJob, read_job
from trainingjob_operator.render import worker_pod
from trainingjob_operator.settings import Settings
from trainingjob_operator.validation import invalid_spec

from tests.hostile import Key, Manifest, dotted, manifests, valid_spec, with_outcome

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@FAST
@given(valid_spec())
def test_an_unmutated_spec_is_one_the_operator_takes_and_renders(spec: dict[str, Any]) -> None:
    body = {"metadata": {"name": "h001", "namespace": "ns", "uid": "u"},
            "spec": with_outcome(spec)}
    job = read_job(json.loads(json.dumps(body)))
    assert isinstance(job, TrainingJob), job
    assert invalid_spec(job) is None
    assert worker_pod(job, 0, "n0", Settings())["spec"]["containers"][0]["image"] == \
        spec["image"]


@FAST
@given(manifests("h001"))
def test_mutations_record_where_they_struck_and_stay_json(m: Manifest) -> None:
    json.dumps(m.body)
    assert all(path and path[0] in ("spec", "metadata") for path in m.mutated)


def test_paths_are_spelled_as_the_api_server_spells_fields() -> None:
    assert dotted(("spec", "resources", "requests", Key("cpu"))) == \
        "spec.resources.requests[cpu]"
    assert dotted(("spec", "env", 0, "name")) == "spec.env[0].name"


def test_a_refusal_names_the_field_itself_or_a_parent_below_the_top() -> None:
    env = Manifest({}, [("spec", "env", 0, "name")])
    assert env.named_in('spec.env[0].name: Invalid value: "string"')
    assert env.named_in('spec.env[0]: Invalid value: "object"')
    assert env.named_in("spec.env: Too many")
    assert not env.named_in('spec: Invalid value: "object": something else')
    assert Manifest({}, [("spec",)]).named_in("spec: Required value")
    assert Manifest({}, [("metadata", "name")]).named_in(
        'metadata: Invalid value: "object": metadata.name must be a DNS label')
    assert not Manifest({}, []).named_in("anything")


@FAST
@given(st.data())
def test_names_stay_unique_per_example(data: st.DataObject) -> None:
    m = data.draw(manifests("h007"))
    assert "h007" in m.name.lower()  # the counter the e2e test gives each example
