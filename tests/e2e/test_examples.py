"""Every example in examples/ plays out as its `training.dev/example-expects` annotation says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.kube import Kubectl, status_of

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
STOP = json.dumps({"spec": {"stop": True}})


def _job(path: Path) -> dict[str, object]:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "TrainingJob")


@pytest.fixture
def namespaces(kubectl: Kubectl, ns: Kubectl) -> Iterator[dict[Path, Kubectl]]:
    """A namespace per example (the quota example would block the others' pods)."""
    made = {}
    for i, path in enumerate(EXAMPLES):
        name = f"{ns.namespace}-{i}"[:63]
        kubectl.run("create", "namespace", name)
        made[path] = kubectl.in_namespace(name)
    yield made
    for k in made.values():
        kubectl.run("delete", "namespace", str(k.namespace), "--wait=false", check=False)


def test_examples_exist_for_every_failure_row() -> None:
    expected = {str(_job(p)["metadata"]["annotations"]["training.dev/example-expects"])  # type: ignore[index]
                for p in EXAMPLES}
    for reason in ("InvalidImageName", "ImagePullFailed", "ContainerConfigError", "SetupFailed",
                   "Unschedulable", "PodRejected", "OOMKilled", "Error", "DeadlineExceeded",
                   "WorkerLost", "Succeeded", "StoppedByUser"):
        assert any(e.endswith("/" + reason) for e in expected), reason


def test_every_example_ends_as_it_says(namespaces: dict[Path, Kubectl]) -> None:
    for path, k in namespaces.items():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "ResourceQuota":  # a quota is enforced once it is computed
                k.apply(doc)
                k.wait(f"quota/{doc['metadata']['name']}", "jsonpath={.status.hard}")
        k.run("apply", "-f", str(path))
    for path, k in namespaces.items():
        job = _job(path)
        name = str(job["metadata"]["name"])  # type: ignore[index]
        phase, reason = str(job["metadata"]["annotations"][  # type: ignore[index]
            "training.dev/example-expects"]).split("/")
        if reason in ("WorkerLost", "StoppedByUser"):  # these need a person's action
            k.wait(f"tj/{name}", "jsonpath={.status.phase}=Running", timeout=60)
            if reason == "WorkerLost":
                k.run("delete", "pod", f"{name}-worker-0", "--wait=false")
            else:
                k.run("patch", "tj", name, "--type=merge", "-p", STOP)
        k.wait(f"tj/{name}", "condition=Finished", timeout=90)
        status = status_of(k, name)
        assert (status["phase"], status["reason"]) == (phase, reason), (path.name, status)
