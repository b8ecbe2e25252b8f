"""The hostile-manifest strategies (tests/hostile.py): unmutated manifests are ones the
operator takes, mutations and strikes change what they say at the path they record, and a
refusal's field is recognised."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainingjob_operator.models import TrainingJob, read_job
from trainingjob_operator.render import worker_pod
from trainingjob_operator.settings import Settings
from trainingjob_operator.validation import invalid_spec

from tests.hostile import (
    BASE_SPEC,
    END,
    MUTATIONS,
    OUTCOME,
    POD,
    TABLES,
    Key,
    Manifest,
    Strike,
    _lookup,
    catalogue,
    dotted,
    generated,
    manifests,
    pod_paths,
    strike,
    valid_spec,
    with_outcome,
)

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
STRIKES = [(t.name, s) for t in TABLES for s in t.strikes]


@FAST
@given(valid_spec())
def test_an_unmutated_spec_is_one_the_operator_takes_and_renders(spec: dict[str, Any]) -> None:
    body = {"metadata": {"name": "h001", "namespace": "ns", "uid": "u"},
            "spec": with_outcome(spec)}
    job = read_job(json.loads(json.dumps(body)))
    assert isinstance(job, TrainingJob), job
    assert invalid_spec(job, Settings()) is None
    pod = worker_pod(job, 0, "n0", Settings())
    assert pod["spec"]["containers"][0]["image"] == spec["image"]
    names = {v["name"] for v in pod["spec"].get("volumes", [])}
    assert all(m["name"] in names for m in pod["spec"]["containers"][0].get("volumeMounts", []))


def test_the_base_of_the_catalogue_is_a_job_the_operator_takes() -> None:
    body = {"metadata": {"name": "c001", "namespace": "ns", "uid": "u"},
            "spec": with_outcome(copy.deepcopy(BASE_SPEC))}
    job = read_job(body)
    assert isinstance(job, TrainingJob), job
    assert invalid_spec(job, Settings()) is None


@FAST
@given(manifests("h001"))
def test_mutations_record_where_they_struck_and_stay_json(m: Manifest) -> None:
    json.dumps(m.body)
    assert all(path and path[0] in ("spec", "metadata") for path in m.mutated)
    names = {getattr(mutation, "name", getattr(mutation, "__name__", "")) for mutation in MUTATIONS}
    assert all(c.split(":")[0] in names for c in m.classes), m.classes
    assert len(m.mutated) >= len(m.classes)  # a strike may touch more than one field


@pytest.mark.parametrize(("table", "s"), STRIKES, ids=[f"{t}:{s.label}" for t, s in STRIKES])
def test_each_strike_sets_what_it_says_at_the_path_it_records(table: str, s: Strike) -> None:
    m = Manifest({"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
                  "metadata": {"name": "c001"}, "spec": with_outcome(copy.deepcopy(BASE_SPEC))})
    before = copy.deepcopy(m.body)
    m.strike(table, s)
    assert m.classes == [f"{table}:{s.label}"]
    assert len(m.mutated) == len(s.sets) > 0
    for path, (_, value) in zip(m.mutated, s.sets, strict=True):
        assert END not in path
        assert _lookup(m.body, path) == (True, value), dotted(path)
        assert _lookup(before, path) != (True, value), f"{dotted(path)} was already so"
    json.dumps(m.body)
    # What a strike asks stays asked until a later mutation undoes it.
    assert m.privileged() == ([s.label] if s.privileged else [])
    assert m.no_pods() == ([s.label] if s.no_pods else [])


def test_an_end_in_a_strike_appends_once_per_list() -> None:
    m = Manifest({"spec": {"template": {"spec": {"volumes": [{"name": "a", "emptyDir": {}}]}}}})
    m.strike("risky_volume", strike("nfs", ((*POD, "volumes", END, "nfs"), {"path": "/"}),
                                    setup=[((*POD, "volumes", END), {"name": "n"})]))
    assert m.body["spec"]["template"]["spec"]["volumes"] == [
        {"name": "a", "emptyDir": {}}, {"name": "n", "nfs": {"path": "/"}}]
    assert m.mutated == [(*POD, "volumes", 1, "nfs")]


def test_a_later_mutation_that_undoes_a_privileged_strike_clears_it() -> None:
    m = Manifest({"spec": {}})
    m.strike("security", strike("host-network", ((*POD, "hostNetwork"), True), privileged=True))
    assert m.privileged() == ["host-network"]
    m.body["spec"]["template"] = None
    assert m.privileged() == []


def test_a_strike_builds_the_objects_on_its_way_when_an_earlier_one_broke_them() -> None:
    m = Manifest({"spec": {"template": "x", "env": None}})
    m.strike("t", strike("s", ((*POD, "tolerations", END, "operator"), 5),
                         (("spec", "env", END), {"name": "A"})))
    assert m.body["spec"]["template"] == {"spec": {"tolerations": [{"operator": 5}]}}
    assert m.body["spec"]["env"] == [{"name": "A"}]


def test_the_catalogue_probes_every_strike_once_with_unique_names() -> None:
    c = catalogue()
    assert len(c) == len(STRIKES)
    assert len({m.name for m in c}) == len(c)
    assert [m.classes for m in c] == [[f"{t}:{s.label}"] for t, s in STRIKES]
    labels = {c for m in c for c in m.classes}
    for wanted in ["pod_shape:affinity-string", "explicit_null:null-spec.timeouts.deploySeconds",
                   "cpu_gang:cpu-only-4096", "security:seccomp-unconfined-pod",
                   "risky_volume:output-gitRepo", "huge:env-and-args-1.4m",
                   "reserved_env:NVIDIA_VISIBLE_DEVICES-value-gpus-0",
                   "hidden_accelerator:limits-amd.com/gpu", "control_chars:result-model",
                   "pod_field:set-containers"]:
        assert any(label.startswith(wanted) for label in labels), wanted


def test_the_near_limit_job_is_near_the_limit() -> None:
    m = next(m for m in catalogue() if m.label == "huge:env-and-args-1.4m")
    size = len(json.dumps(m.body))
    assert 1.2 * 2**20 < size < 1.5 * 2**20, size
    assert m.big and m.body["spec"]["setup"]  # its env is rendered twice


def test_generated_is_the_same_every_time() -> None:
    first, second = generated(20), generated(20)
    assert [m.body for m in first] == [m.body for m in second]
    # bad_name lengthens or upper-cases a name, but the counter stays in it: names are unique.
    assert all(f"h{i:03d}" in m.name.lower() for i, m in enumerate(first, start=1))


def test_a_cpu_gang_strike_stays_cpu_only() -> None:
    m = next(m for m in catalogue() if m.label == "cpu_gang:cpu-only-4096")
    assert (m.body["spec"]["workers"], m.body["spec"]["gpusPerWorker"]) == (4096, 0)
    assert m.no_pods() == ["cpu-only-4096"]


def test_control_characters_reach_the_worker_s_termination_message() -> None:
    m = next(m for m in catalogue() if m.label == "control_chars:result-model")
    said = m.body["spec"]["template"]["metadata"]["annotations"][OUTCOME + "termination-message"]
    assert "\x1b[" in json.loads(said)["model"]
    assert m.body["spec"]["template"]["metadata"]["annotations"][OUTCOME + "outcome"] == "succeed"


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


def test_a_policy_that_names_the_field_by_its_own_name_names_it() -> None:
    seccomp = Manifest({}, [(*POD, "securityContext", "seccompProfile", "type")])
    assert seccomp.named_in("the worker pods would get seccompProfile Unconfined")
    assert not seccomp.named_in("the worker pods would get a securityContext type")
    git = Manifest({}, [("spec", "output", "volume", "gitRepo")])
    assert git.named_in("the worker pods would get a gitRepo volume")
    # Outside the free-form parts only the path counts.
    assert not Manifest({}, [("spec", "workers")]).named_in("too many workers")


def test_a_pod_refusal_names_the_pod_field_a_spec_field_became() -> None:
    assert Manifest({}, [(*POD, "volumes", 1, "nfs")]).pod_named_in(
        'Pod "a-worker-0" is invalid: spec.volumes[3].nfs.server: Required value')
    assert Manifest({}, [("spec", "env", 0, "valueFrom")]).pod_named_in(
        "spec.initContainers[0].env[7].valueFrom: Invalid value")
    assert Manifest({}, [("spec", "output", "volume", "emptyDir")]).pod_named_in(
        "spec.volumes[2].emptyDir: Invalid value")
    assert Manifest({}, [("spec", "template", "metadata", "annotations", Key("team"))]
                    ).pod_named_in("metadata.annotations: Too long")
    assert Manifest({}, [("spec", "volumeMounts", 0, "mountPath")]).pod_named_in(
        "json: cannot unmarshal number into Go struct field "
        "VolumeMount.spec.containers.volumeMounts.mountPath of type string")
    assert Manifest({}, [(*POD, "overhead")]).pod_named_in(
        "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
    assert Manifest({}, [(*POD, "runtimeClassName")]).pod_named_in(
        'pod rejected: RuntimeClass "nvidia" not found')
    assert not Manifest({}, [(*POD, "runtimeClassName")]).pod_named_in(
        "pod rejected: Pod Overhead set without corresponding RuntimeHandler")
    assert not Manifest({}, [("spec", "env", 0)]).pod_named_in("spec.volumes[0]: Required")
    assert pod_paths(("spec", "workers")) == []


@FAST
@given(st.data())
def test_names_stay_unique_per_example(data: st.DataObject) -> None:
    m = data.draw(manifests("h007"))
    assert "h007" in m.name.lower()  # the counter the e2e test gives each example


def test_what_kwok_reports_as_a_worker_s_output_has_escapes_but_no_del_or_c1() -> None:
    """kwok's Stages cannot put DEL or C1 characters into a status: the pod never ends."""
    for label in ("control_chars:result-not-json", "control_chars:failure-output"):
        m = next(m for m in catalogue() if m.label == label)
        said = m.body["spec"]["template"]["metadata"]["annotations"][
            OUTCOME + "termination-message"]
        assert "\x1b[" in said and "\x07" in said, label
        assert not any(c == "\x7f" or "\x80" <= c <= "\x9f" for c in said), label
