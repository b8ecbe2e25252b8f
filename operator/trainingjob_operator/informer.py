"""The pods as this process knows them: one list, then one watch, kept in two lookups.

kopf would run its whole per-object machinery (memories, loggers, handler state, a task per
pod) for each of the several updates every pod gets; profiles of `make bench` showed that as
the operator's largest cost. Pods are only read here, never patched by a handler, so a plain
list-and-watch (relisted after 410 Gone, resumed from the last resourceVersion otherwise)
does the same job for a parse and two dict updates per event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterator

from trainingjob_operator.kube import Rest
from trainingjob_operator.pods import PodView, parse_pod

log = logging.getLogger(__name__)
PODS = "/api/v1/pods"
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0
Changed = Callable[[PodView], Awaitable[None]]


def keys(pod: PodView) -> list[Hashable]:
    """(namespace, job) for a worker; the node name for a bound pod that is a worker or asks
    for GPUs (capacity is counted per node, and a lost node loses its workers)."""
    out: list[Hashable] = []
    if pod.job:
        out.append((pod.namespace, pod.job))
    if pod.node_name and (pod.requests or pod.job):
        out.append(pod.node_name)
    return out


class PodStore:
    """key -> the pods under it, as the controller's `Store` reads it."""

    def __init__(self) -> None:
        self.by_key: dict[Hashable, dict[str, PodView]] = {}
        self.pods: dict[str, PodView] = {}  # uid -> pod

    def __getitem__(self, key: Hashable) -> list[PodView]:
        return list(self.by_key.get(key, {}).values())

    def __contains__(self, key: object) -> bool:
        return key in self.by_key

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self.by_key))

    def put(self, pod: PodView) -> None:
        self.remove(pod.uid)
        self.pods[pod.uid] = pod
        for key in keys(pod):
            self.by_key.setdefault(key, {})[pod.uid] = pod

    def remove(self, uid: str) -> PodView | None:
        old = self.pods.pop(uid, None)
        if old is not None:
            for key in keys(old):
                under = self.by_key.get(key)
                if under is not None:
                    under.pop(uid, None)
                    if not under:
                        del self.by_key[key]
        return old


class PodInformer:
    def __init__(self, rest: Rest, changed: Changed) -> None:
        self.rest = rest
        self.changed = changed
        self.store = PodStore()
        self.synced = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                version: str | None = await self._relist()
                while version is not None:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the API is away: list again soon
                log.warning("pod watch: %s; listing again in %ss", err, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)

    async def _relist(self) -> str:
        """Replace the store with a fresh list; whatever changed meanwhile is reported."""
        listed = await self.rest.request("GET", PODS)
        fresh = {p.uid: p for p in map(parse_pod, listed.get("items") or [])}
        gone = [old for uid, old in self.store.pods.items() if uid not in fresh]
        moved = [p for uid, p in fresh.items() if self.store.pods.get(uid) != p]
        for pod in gone:
            self.store.remove(pod.uid)
        for pod in moved:
            self.store.put(pod)
        self.synced.set()
        for pod in [*gone, *moved]:
            await self.changed(pod)
        return str(listed["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str | None:
        """Apply one watch's events; the version to go on from, None when a relist is due."""
        async for event in self.rest.watch(PODS, version, WATCH_SECONDS):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                log.info("pod watch ended: %s", obj.get("message"))
                return None  # 410 Gone and the like: the version is too old
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            pod = parse_pod(obj)
            if kind == "DELETED":
                self.store.remove(pod.uid)
            else:
                self.store.put(pod)
            await self.changed(pod)
        return version
