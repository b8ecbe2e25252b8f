from trainingjob_operator.informer import PodStore, keys
from trainingjob_operator.pods import parse_pod


def _pod(uid: str, node: str | None, job: str | None, gpus: int = 0) -> dict[str, object]:
    labels = {"training.dev/job-name": job} if job else {}
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {"metadata": {"name": uid, "namespace": "ns", "uid": uid, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c",
                                                        "resources": {"limits": limits}}]}}


def test_a_pod_is_filed_under_its_job_and_its_node_and_moves_with_them() -> None:
    store = PodStore()
    worker = parse_pod(_pod("u1", None, "j"))
    assert keys(worker) == [("ns", "j")]
    store.put(worker)
    assert [p.uid for p in store[("ns", "j")]] == ["u1"] and "n1" not in store
    store.put(parse_pod(_pod("u1", "n1", "j")))  # bound: now under its node too
    assert [p.node_name for p in store["n1"]] == ["n1"] and len(store[("ns", "j")]) == 1
    store.put(parse_pod(_pod("u2", "n1", None, gpus=2)))  # a GPU pod of someone else
    store.put(parse_pod(_pod("u3", "n1", None)))  # neither worker nor GPU: not kept by key
    assert sorted(p.uid for p in store["n1"]) == ["u1", "u2"]
    assert store.remove("u1") is not None
    assert ("ns", "j") not in store and [p.uid for p in store["n1"]] == ["u2"]
    assert store.remove("gone") is None
