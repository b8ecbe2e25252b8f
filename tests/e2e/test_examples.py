"""Every example in examples/ plays out as its `training.dev/example-expects` annotation says."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import Kubectl, status_of

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
STOP = json.dumps({"spec": {"stop": True}})


def _job(path: Path) -> dict[str, object]:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "TrainingJob")


@pytest.fixture
def as_default(kubectl: Kubectl, ns: Kubectl, tmp_path: Path) -> Iterator[Kubectl]:
    """kubectl whose kubeconfig's own namespace is a fresh one, as `default` is a user's:
    `kubectl apply -f examples/` puts each example there unless it names its own."""
    config = tmp_path / "kubeconfig"
    shutil.copyfile(kubectl.kubeconfig, config)
    mine = Kubectl(kubectl.binary, config)
    mine.run("config", "set-context", "--current", f"--namespace={ns.namespace}")
    yield mine
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "Namespace":
                kubectl.run("delete", "namespace", doc["metadata"]["name"], "--wait=false",
                            check=False)


def test_examples_exist_for_every_failure_row() -> None:
    expected = {str(_job(p)["metadata"]["annotations"]["training.dev/example-expects"])  # type: ignore[index]
                for p in EXAMPLES}
    for reason in ("InvalidImageName", "ImagePullFailed", "ContainerConfigError", "SetupFailed",
                   "Unschedulable", "PodRejected", "OOMKilled", "Error", "DeadlineExceeded",
                   "WorkerLost", "Succeeded", "StoppedByUser", "GPUOutOfMemory",
                   "RendezvousFailed", "DependenciesFailed"):
        assert any(e.endswith("/" + reason) for e in expected), reason


@pytest.mark.usefixtures("real_nodes")  # some examples run on a real node
def test_the_whole_folder_applied_at_once_plays_out_as_each_example_says(
        as_default: Kubectl) -> None:
    """As a new user would: one `kubectl apply -f examples/` into their namespace. An
    example that needs objects of its own (the quota) keeps them in its own namespace, so
    no example spoils another."""
    as_default.run("apply", "-f", str(EXAMPLES[0].parent))
    for path in EXAMPLES:
        job = _job(path)
        meta: dict[str, Any] = job["metadata"]  # type: ignore[assignment]
        k = as_default.in_namespace(meta["namespace"]) if "namespace" in meta else as_default
        name = str(meta["name"])
        phase, reason = str(meta["annotations"]["training.dev/example-expects"]).split("/")
        if reason in ("WorkerLost", "StoppedByUser"):  # these need a person's action
            k.wait(f"tj/{name}", "jsonpath={.status.phase}=Running", timeout=60)
            if reason == "WorkerLost":
                k.run("delete", "pod", f"{name}-worker-0", "--wait=false")
            else:
                k.run("patch", "tj", name, "--type=merge", "-p", STOP)
        k.wait(f"tj/{name}", "condition=Finished", timeout=90)
        status = status_of(k, name)
        assert (status["phase"], status["reason"]) == (phase, reason), (path.name, status)
        if reason in ("GPUOutOfMemory", "RendezvousFailed", "DependenciesFailed"):
            assert status["failure"]["output"], (path.name, status)  # the log tail it shows
    wide = as_default.run("get", "tj", "fine-tune", "-o", "wide").stdout
    assert "/output/fine-tune/model.safetensors" in wide and "MODEL" in wide
