import json
from pathlib import Path

import pytest
import yaml
from trainingjob_operator.settings import Settings, deprecated
from trainingjob_operator.vocabulary import DEFAULT_ACCELERATORS

CHART = Path(__file__).resolve().parents[3] / "charts" / "trainingjob-operator"


def test_settings_read_the_environment() -> None:
    s = Settings.from_env({"TRAININGJOB_IMAGE_PULL_GRACE_SECONDS": "5",
                           "TRAININGJOB_HISTORY_LIMIT": "7"})
    assert s.image_pull_grace_seconds == 5.0 and s.history_limit == 7
    assert Settings.from_env({}) == Settings()


def test_leader_election_settings_and_their_defaults() -> None:
    s = Settings.from_env({"TRAININGJOB_LEADER_ELECT": "true", "POD_NAMESPACE": "ops",
                           "TRAININGJOB_LOG_FORMAT": "json"})
    assert (s.leader_elect, s.lease_namespace, s.log_format) == (True, "ops", "json")
    assert Settings.from_env({}).lease_namespace == "default"
    assert Settings.from_env({"TRAININGJOB_LEASE_NAMESPACE": "x",
                              "POD_NAMESPACE": "y"}).lease_namespace == "x"


def test_a_renamed_setting_still_reads_its_old_variable_with_one_warning() -> None:
    """TRAININGJOB_SWEEP_SECONDS (chart: settings.sweepSeconds) swept nothing any more: it is
    how often the loop looks at the leader gauge. Old deployments keep working."""
    old, new = "TRAININGJOB_SWEEP_SECONDS", "TRAININGJOB_LEADER_CHECK_SECONDS"
    assert Settings.from_env({old: "0.5"}).leader_check_seconds == 0.5
    assert deprecated({old: "0.5"}) == [
        "TRAININGJOB_SWEEP_SECONDS is deprecated: it is read as "
        "TRAININGJOB_LEADER_CHECK_SECONDS; set that instead (in the Helm chart: "
        "settings.leaderCheckSeconds instead of settings.sweepSeconds)"]
    both = {old: "0.5", new: "3"}
    assert Settings.from_env(both).leader_check_seconds == 3.0
    assert deprecated(both) == [
        "TRAININGJOB_SWEEP_SECONDS is deprecated and ignored: "
        "TRAININGJOB_LEADER_CHECK_SECONDS is set (in the Helm chart: "
        "settings.leaderCheckSeconds instead of settings.sweepSeconds)"]
    assert deprecated({new: "3"}) == [] and Settings.from_env({new: "3"}).leader_check_seconds == 3
    with pytest.raises(ValueError, match=old):  # the variable that was set, by its name
        Settings.from_env({old: "soon"})


@pytest.mark.parametrize(("name", "value"), [("TRAININGJOB_LEADER_ELECT", "maybe"),
                                             ("TRAININGJOB_HISTORY_LIMIT", "ten"),
                                             ("TRAININGJOB_LOG_FORMAT", "xml")])
def test_a_bad_setting_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_accelerators_are_a_comma_separated_or_json_list() -> None:
    assert Settings().accelerators == DEFAULT_ACCELERATORS
    for raw in ("amd.com/gpu, example.com/accel,", '["amd.com/gpu", "example.com/accel"]'):
        s = Settings.from_env({"TRAININGJOB_ACCELERATORS": raw})
        assert s.accelerators == ("amd.com/gpu", "example.com/accel")
    assert Settings.from_env({"TRAININGJOB_ACCELERATORS": "nvidia.com/mig-*"}).accelerators == (
        "nvidia.com/mig-*",)


def test_cpu_only_bound_and_worker_node_selector_read_the_environment() -> None:
    s = Settings.from_env({"TRAININGJOB_CPU_ONLY_MAX_WORKERS": "4",
                           "TRAININGJOB_WORKER_NODE_SELECTOR": '{"example.com/pool": "train"}'})
    assert (s.cpu_only_max_workers, s.worker_node_selector) == (4, {"example.com/pool": "train"})
    assert Settings().worker_node_selector == {}
    assert Settings.from_env({"TRAININGJOB_WORKER_NODE_SELECTOR": "{}"}).worker_node_selector == {}


@pytest.mark.parametrize(("name", "value", "says"), [
    ("TRAININGJOB_ACCELERATORS", "gpu", "'gpu' is not an extended resource name"),
    ("TRAININGJOB_ACCELERATORS", "nvidia.com/*-x", "a * may only end it"),
    ("TRAININGJOB_ACCELERATORS", '["amd.com/gpu", 1]', "a JSON list must hold strings only"),
    ("TRAININGJOB_ACCELERATORS", '["amd.com/gpu"', "not a JSON list"),
    ("TRAININGJOB_CPU_ONLY_MAX_WORKERS", "-1", "use 0 (no CPU-only jobs) or more"),
    ("TRAININGJOB_CPU_ONLY_MAX_WORKERS", "many", "is not a valid int"),
    ("TRAININGJOB_WORKER_NODE_SELECTOR", "pool=training", "not a JSON object"),
    ("TRAININGJOB_WORKER_NODE_SELECTOR", '["pool"]', "a JSON object of label keys"),
    ("TRAININGJOB_WORKER_NODE_SELECTOR", '{"pool": 1}', "to string values"),
    ("TRAININGJOB_WORKER_NODE_SELECTOR", '{"a pool": "x"}', "'a pool' is not a label key"),
    ("TRAININGJOB_WORKER_NODE_SELECTOR", '{"pool": "a b"}', "the value of 'pool' is not a label"),
])
def test_a_bad_list_or_map_setting_names_the_variable_and_what_is_wrong(
        name: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=name) as e:
        Settings.from_env({name: value})
    assert says in str(e.value)


def test_the_charts_defaults_are_the_operators() -> None:
    """The chart renders its accelerators, cpuOnlyMaxWorkers and workerNodeSelector always:
    with its defaults the operator behaves as with none set."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    env = {"TRAININGJOB_ACCELERATORS": ",".join(values["accelerators"]),
           "TRAININGJOB_CPU_ONLY_MAX_WORKERS": str(values["cpuOnlyMaxWorkers"]),
           "TRAININGJOB_WORKER_NODE_SELECTOR": json.dumps(values["workerNodeSelector"])}
    assert Settings.from_env(env) == Settings()
