"""The informers' stores and relists, on plain data (no API: a relist is given its list)."""

import asyncio
from typing import Any, cast

from trainingjob_operator.informer import KeyedInformer, KeyedStore, PodInformer, PodStore, keys
from trainingjob_operator.kube import Rest
from trainingjob_operator.pods import PodView, parse_pod


def _pod(uid: str, node: str | None, job: str | None, gpus: int = 0) -> dict[str, Any]:
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


def _job(name: str, version: str, namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": version}}


def _keyed(path: str, store: KeyedStore[tuple[str, str], str] | None = None,
           ) -> tuple[KeyedInformer[tuple[str, str], str], list[tuple[object, str | None]]]:
    seen: list[tuple[object, str | None]] = []

    async def changed(key: tuple[str, str], value: str | None) -> None:
        seen.append((key, value))

    def key(obj: dict[str, Any]) -> tuple[str, str]:
        return (obj["metadata"]["namespace"], obj["metadata"]["name"])

    informer = KeyedInformer(cast(Rest, None), path, key,
                             lambda obj: f"{obj['metadata']['name']}@"
                                         f"{obj['metadata']['resourceVersion']}",
                             changed, store)
    return informer, seen


def test_a_relist_reports_what_vanished_while_the_watch_was_broken() -> None:
    """After 410 Gone the list replaces the store: an object deleted meanwhile is reported
    gone (kopf's indexes would keep it), an unchanged one is not parsed or reported again."""
    informer, seen = _keyed("/apis/g/v1/things")
    asyncio.run(informer.replace([_job("a", "1"), _job("b", "1"), _job("c", "1")]))
    assert sorted(informer.store) == [("ns", "a"), ("ns", "b"), ("ns", "c")]
    seen.clear()
    asyncio.run(informer.replace([_job("a", "1"), _job("c", "2"), _job("d", "3")]))
    assert sorted(seen, key=str) == [(("ns", "b"), None), (("ns", "c"), "c@2"),
                                     (("ns", "d"), "d@3")]
    assert informer.store[("ns", "c")] == ["c@2"] and ("ns", "b") not in informer.store
    seen.clear()
    asyncio.run(informer.apply(True, _job("a", "4")))
    assert seen == [(("ns", "a"), None)] and ("ns", "a") not in informer.store


def test_a_namespaced_relist_drops_only_its_own_namespace_from_a_shared_store() -> None:
    store: KeyedStore[tuple[str, str], str] = KeyedStore()
    first, _ = _keyed("/apis/g/v1/namespaces/one/things", store)
    second, seen = _keyed("/apis/g/v1/namespaces/two/things", store)
    asyncio.run(first.replace([_job("a", "1", "one")]))
    asyncio.run(second.replace([_job("b", "1", "two")]))
    asyncio.run(second.replace([]))
    assert seen[-1] == (("two", "b"), None)
    assert list(store) == [("one", "a")]


def test_a_pod_relist_reports_pods_deleted_meanwhile() -> None:
    changed: list[str] = []

    async def note(pod: PodView) -> None:
        changed.append(pod.uid)

    informer = PodInformer(cast(Rest, None), note)
    asyncio.run(informer.replace([_pod("u1", "n1", "j"), _pod("u2", "n1", "j")]))
    changed.clear()
    asyncio.run(informer.replace([_pod("u2", "n1", "j")]))
    assert changed == ["u1"] and [p.uid for p in informer.store[("ns", "j")]] == ["u2"]
