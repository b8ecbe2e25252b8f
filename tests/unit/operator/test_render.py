from __future__ import annotations

from trainingjob_operator.render import worker_pod, workers_service
from trainingjob_operator.settings import Settings

from tests.unit.operator.factories import at, job

S = Settings()


def test_worker_pod_shape() -> None:
    j = job(at("Created"), workers=4, gpusPerWorker=8, command=["torchrun"],
            resources={"requests": {"cpu": 8, "memory": "64Gi"}},
            setup={"command": ["pip", "install", "x"]},
            template={"metadata": {"labels": {"team": "a"}, "annotations": {"x": "y"}},
                      "spec": {"tolerations": [{"key": "gpu", "operator": "Exists"}]}})
    pod = worker_pod(j, 3, "n2", S)
    assert pod["metadata"]["name"] == "j-worker-3"
    assert pod["metadata"]["labels"]["training.dev/worker-index"] == "3"
    assert pod["metadata"]["labels"]["team"] == "a" and pod["metadata"]["annotations"] == {"x": "y"}
    owner = pod["metadata"]["ownerReferences"][0]
    assert owner["controller"] and owner["blockOwnerDeletion"] and owner["uid"] == "u1"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never" and spec["subdomain"] == "j-workers"
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    c = spec["containers"][0]
    assert c["resources"] == {"requests": {"cpu": "8", "memory": "64Gi"},
                              "limits": {"nvidia.com/gpu": "8"}}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["RANK"] == "3" and env["WORLD_SIZE"] == "4"
    assert spec["initContainers"][0]["command"] == ["pip", "install", "x"]
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["n2"]


def test_pinning_keeps_the_users_node_affinity_terms() -> None:
    users = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                     "values": ["a"]}]}]}}}
    j = job(at("Created"), template={"spec": {"affinity": users}})
    terms = worker_pod(j, 0, "n0", S)["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "zone"
    assert terms[0]["matchFields"][0]["values"] == ["n0"]


def test_cpu_only_worker_requests_no_gpu() -> None:
    pod = worker_pod(job(at("Created"), gpusPerWorker=0), 0, None, S)
    assert "resources" not in pod["spec"]["containers"][0]
    assert "affinity" not in pod["spec"]


def test_headless_service() -> None:
    svc = workers_service(job(), S)
    assert svc["metadata"]["name"] == "j-workers" and svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == {"training.dev/job-name": "j"}


def test_failed_containers_report_the_tail_of_their_output() -> None:
    pod = worker_pod(job(at("Created"), setup={"command": ["pip"]}), 0, None, S)
    containers = [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]
    assert [c["terminationMessagePolicy"] for c in containers] == ["FallbackToLogsOnError"] * 2


def test_output_volume_is_mounted_in_every_container_and_named_in_the_env() -> None:
    j = job(at("Created"), setup={"command": ["pip"]},
            volumeMounts=[{"name": "data", "mountPath": "/data"}],
            output={"volume": {"persistentVolumeClaim": {"claimName": "models"}},
                    "path": "/models"},
            template={"spec": {"volumes": [{"name": "data", "emptyDir": {}}]}})
    spec = worker_pod(j, 1, None, S)["spec"]
    assert spec["volumes"] == [{"name": "data", "emptyDir": {}},
                               {"name": "output", "persistentVolumeClaim": {"claimName": "models"}}]
    for c in (*spec["initContainers"], *spec["containers"]):
        assert c["volumeMounts"] == [{"name": "data", "mountPath": "/data"},
                                     {"name": "output", "mountPath": "/models"}]
        assert {"name": "TRAININGJOB_OUTPUT_DIR", "value": "/models"} in c["env"]
    plain = worker_pod(job(at("Created")), 0, None, S)["spec"]
    assert "volumes" not in plain and "volumeMounts" not in plain["containers"][0]


def test_a_one_worker_job_needs_no_service_and_meets_itself_on_loopback() -> None:
    pod = worker_pod(job(at("Created"), workers=1), 0, "n0", S)
    assert "subdomain" not in pod["spec"]
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert (env["MASTER_ADDR"], env["WORLD_SIZE"]) == ("127.0.0.1", "1")


def test_security_context_goes_to_every_container_and_the_pod_keeps_its_own() -> None:
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    j = job(at("Created"), setup={"command": ["pip"]}, securityContext=restricted,
            template={"spec": {"securityContext": {"runAsNonRoot": True}}})
    spec = worker_pod(j, 0, None, S)["spec"]
    assert [c["securityContext"] for c in (*spec["initContainers"], *spec["containers"])] == [
        restricted, restricted]
    assert spec["securityContext"] == {"runAsNonRoot": True}
    plain = worker_pod(job(at("Created"), setup={"command": ["pip"]}), 0, None, S)["spec"]
    assert all("securityContext" not in c
               for c in (*plain["initContainers"], *plain["containers"]))


def test_worker_pods_are_always_in_the_jobs_namespace() -> None:
    """A template cannot move a worker (and what it references) to another namespace."""
    j = job(at("Created"), template={"metadata": {"namespace": "kube-system",
                                                  "labels": {"a": "b"}}})
    assert worker_pod(j, 0, None, S)["metadata"]["namespace"] == "ns"
    assert workers_service(j, S)["metadata"]["namespace"] == "ns"


def test_every_worker_carries_the_configured_node_set_next_to_its_own_selector() -> None:
    pool = Settings(worker_node_selector={"pool": "training"})
    j = job(at("Created"), workers=2, template={"spec": {"nodeSelector": {"gpu": "a100"}}})
    for index in range(2):
        spec = worker_pod(j, index, f"n{index}", pool)["spec"]
        assert spec["nodeSelector"] == {"gpu": "a100", "pool": "training"}
    assert worker_pod(job(at("Created")), 0, None, pool)["spec"]["nodeSelector"] == {
        "pool": "training"}
    assert "nodeSelector" not in worker_pod(job(at("Created")), 0, None, S)["spec"]


def test_a_worker_that_asks_for_no_gpu_is_shown_none_whatever_its_image_says() -> None:
    """CUDA base images set NVIDIA_VISIBLE_DEVICES=all; a CPU-only worker overrides it."""
    def devices(gpus: int) -> str | None:
        pod = worker_pod(job(gpusPerWorker=gpus), 0, "n1", Settings())
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        return env.get("NVIDIA_VISIBLE_DEVICES")

    assert devices(0) == "void"
    assert devices(2) is None  # the device plugin sets it for the GPUs it allocates
