"""The informers' stores and relists, on plain data (no API: a relist is given its list)."""

import asyncio
import json
import logging
from typing import Any, cast

import pytest
from kubernetes.aio.client.exceptions import ApiException
from trainingjob_operator import informer as informer_module
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

    async def note(before: PodView | None, after: PodView | None) -> None:
        pod = after or before
        assert pod is not None
        changed.append(pod.uid)

    informer = PodInformer(cast(Rest, None), note)
    asyncio.run(informer.replace([_pod("u1", "n1", "j"), _pod("u2", "n1", "j")]))
    changed.clear()
    asyncio.run(informer.replace([_pod("u2", "n1", "j")]))
    assert changed == ["u1"] and [p.uid for p in informer.store[("ns", "j")]] == ["u2"]


def test_a_pod_event_reports_the_pod_as_it_was_and_as_it_is() -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def note(before: PodView | None, after: PodView | None) -> None:
        seen.append((before.node_name if before else None, after.node_name if after else None))

    informer = PodInformer(cast(Rest, None), note)
    asyncio.run(informer.apply(False, _pod("u1", "", "j")))
    asyncio.run(informer.apply(False, _pod("u1", "n1", "j")))
    asyncio.run(informer.apply(True, _pod("u1", "n1", "j")))
    assert seen == [(None, ""), ("", "n1"), ("n1", None)]


class Pages:
    """A list endpoint's paging as the API server answers it (limit, continue; 410 when a
    continue token has expired): the objects, and which continue tokens expire once."""

    def __init__(self, objects: list[dict[str, Any]], expire: set[str] | None = None) -> None:
        self.objects, self.expire = objects, set(expire or ())
        self.asked: list[dict[str, str | int]] = []

    async def request(self, method: str, path: str, body: Any = None, *,
                      query: dict[str, str | int] | None = None) -> dict[str, Any]:
        query = dict(query or {})
        self.asked.append(query)
        token = str(query.get("continue", ""))
        if token in self.expire:
            self.expire.discard(token)
            raise ApiException(status=410, reason="Expired")
        start, limit = int(token or 0), int(query["limit"])
        more = start + limit < len(self.objects)
        meta = {"resourceVersion": "99", **({"continue": str(start + limit)} if more else {})}
        return {"metadata": meta, "items": self.objects[start:start + limit]}


def test_a_relist_reads_pages_and_starts_again_when_a_continue_token_expires() -> None:
    informer, seen = _keyed("/apis/g/v1/things")
    asyncio.run(informer.replace([_job("gone", "1")]))
    seen.clear()
    pages = Pages([_job(f"j{i}", "1") for i in range(5)], expire={"4"})
    informer.rest, informer.page_size = cast(Rest, pages), 2
    assert asyncio.run(informer._relist()) == "99" and informer.synced.is_set()
    assert pages.asked == [{"limit": 2}, {"limit": 2, "continue": "2"},
                           {"limit": 2, "continue": "4"},  # expired: from scratch
                           {"limit": 2}, {"limit": 2, "continue": "2"},
                           {"limit": 2, "continue": "4"}]
    assert sorted(informer.store) == [("ns", f"j{i}") for i in range(5)]
    # Each object parsed once (the second pass finds it stored at its version); what the
    # whole list no longer holds is reported gone only once the list is complete.
    assert sorted(seen, key=str) == sorted([(("ns", "gone"), None),
                                            *((("ns", f"j{i}"), f"j{i}@1") for i in range(5))],
                                           key=str)
    assert seen[-1] == (("ns", "gone"), None)


def test_a_pod_relist_in_pages_replaces_the_store_once_whole() -> None:
    changed: list[str] = []

    async def note(before: PodView | None, after: PodView | None) -> None:
        pod = after or before
        assert pod is not None
        changed.append(pod.uid)

    pages = Pages([_pod(f"u{i}", "n1", "j") for i in range(3)])
    informer = PodInformer(cast(Rest, pages), note)
    informer.page_size = 1
    asyncio.run(informer._relist())
    assert len(pages.asked) == 3 and sorted(changed) == ["u0", "u1", "u2"]
    assert len(informer.store[("ns", "j")]) == 3


class Refusing:
    """A Rest whose lists are answered with these errors in turn, then the run is ended."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)

    async def request(self, method: str, path: str, body: Any = None, *,
                      query: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self.errors:
            raise asyncio.CancelledError
        raise self.errors.pop(0)


def test_a_failed_list_is_one_line_and_a_transient_answer_no_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A fresh start's first list meets the CRD's watch cache still filling (429): one INFO
    line that says what comes next, not kubernetes.aio's dump of headers and body."""
    monkeypatch.setattr(informer_module, "RETRY_SECONDS", 0.0)
    storage = json.dumps({"kind": "Status", "code": 429, "reason": "TooManyRequests",
                          "message": "storage is (re)initializing"})
    refused = ApiException(status=429, reason="Too Many Requests", body=storage)
    refused.headers = {"Retry-After": "1", "Audit-Id": "a1b2"}
    forbidden = ApiException(status=403, reason="Forbidden", body=json.dumps(
        {"reason": "Forbidden", "message": 'nodes is forbidden: User "op" cannot list'}))
    informer, _ = _keyed("/apis/g/v1/things")
    informer.rest = cast(Rest, Refusing(refused, forbidden))
    caplog.set_level(logging.INFO, logger=informer_module.__name__)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(informer.run())
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "list and watch of /apis/g/v1/things: the API server answered 429 "
                       "TooManyRequests: storage is (re)initializing; listing again in 0s"),
        (logging.WARNING, "list and watch of /apis/g/v1/things: the API server answered 403 "
                          'Forbidden: nodes is forbidden: User "op" cannot list; listing '
                          "again in 0s")]
