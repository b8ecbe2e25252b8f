"""What this process knows of the cluster: one list, then one watch per resource, in stores
the controller reads.

kopf would run its whole per-object machinery (memories, loggers, handler state, a task per
object) for each event; profiles of `make bench` showed that as the operator's largest cost.
And kopf's indexes keep an object deleted while a watch was broken: after 410 Gone it lists
again, but never drops what that list no longer holds. Here a list replaces the store (what
vanished is reported as deleted), and a watch resumes from the last resourceVersion until the
server says it is too old. Objects are only read here, never patched by a handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

from kubernetes.aio.client.exceptions import ApiException

from trainingjob_operator.kube import Rest, said, transient_answer
from trainingjob_operator.pods import PodView, parse_pod

log = logging.getLogger(__name__)
PODS = "/api/v1/pods"
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0
# Objects per page of a list (limit and continue, as client-go's reflector pages them): a
# relist of many large jobs never holds the whole list response at once.
PAGE_SIZE = 500
# A pod as it was and as it is (None: not there), so a reader can tell what moved.
Changed = Callable[[PodView | None, PodView | None], Awaitable[None]]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


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


class ListWatch:
    """One resource path's list-then-watch loop; subclasses keep the store."""

    def __init__(self, rest: Rest, path: str) -> None:
        self.rest = rest
        self.path = path
        self.synced = asyncio.Event()
        self.watch_seconds = WATCH_SECONDS
        self.page_size = PAGE_SIZE

    async def run(self) -> None:
        while True:
            try:
                version: str | None = await self._relist()
                while version is not None:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the API is away: list again soon
                # One line: a transient answer (a watch cache still filling after the CRD is
                # created, on every fresh start) is news, not trouble.
                log.log(logging.INFO if transient_answer(err) else logging.WARNING,
                        "list and watch of %s: %s; listing again in %gs", self.path, said(err),
                        RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)

    async def _relist(self) -> str:
        """List in pages into the store; a continue token that expired (410, the server
        compacted past the list's snapshot) starts the list again from scratch, as
        client-go's pager does when it falls back to a full list."""
        while True:
            self.begin()
            token: str | None = None
            pages = count = 0
            try:
                while True:
                    query: dict[str, str | int] = {"limit": self.page_size}
                    if token:
                        query["continue"] = token
                    listed = await self.rest.request("GET", self.path, query=query)
                    items = listed.get("items") or []
                    pages, count = pages + 1, count + len(items)
                    meta = listed.get("metadata") or {}
                    await self.page(items)
                    del listed, items  # this page's bodies go before the next is read
                    token = meta.get("continue") or None
                    if token is None:
                        break
            except ApiException as err:
                if err.status != 410 or token is None:
                    raise
                log.info("list of %s: the continue token expired; listing again", self.path)
                continue
            await self.end()
            self.synced.set()
            if pages > 1:
                log.info("listed %d objects of %s in %d pages", count, self.path, pages)
            return str(meta["resourceVersion"])

    async def _watch(self, version: str) -> str | None:
        """Apply one watch's events; the version to go on from, None when a relist is due."""
        async for event in self.rest.watch(self.path, version, self.watch_seconds):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":  # 410 Gone and the like: the version is too old
                log.info("watch of %s ended: %s %s: %s; listing again", self.path,
                         obj.get("code"), obj.get("reason"), obj.get("message"))
                return None
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind != "BOOKMARK":
                await self.apply(kind == "DELETED", obj)
        return version

    async def replace(self, items: list[dict[str, Any]]) -> None:
        """Make the store hold exactly `items`, reporting whatever changed meanwhile."""
        self.begin()
        await self.page(items)
        await self.end()

    def begin(self) -> None:
        """A list starts: what its pages hold is collected until `end`."""
        raise NotImplementedError

    async def page(self, items: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def end(self) -> None:
        """The list is whole: what the store holds and the list did not is gone."""
        raise NotImplementedError

    async def apply(self, deleted: bool, obj: dict[str, Any]) -> None:
        raise NotImplementedError


class PodInformer(ListWatch):
    def __init__(self, rest: Rest, changed: Changed, path: str = PODS,
                 store: PodStore | None = None) -> None:
        super().__init__(rest, path)
        self.changed = changed
        self.store = PodStore() if store is None else store

    def begin(self) -> None:
        self.fresh: dict[str, PodView] = {}

    async def page(self, items: list[dict[str, Any]]) -> None:
        self.fresh.update((p.uid, p) for p in map(parse_pod, items))

    async def end(self) -> None:
        fresh, self.fresh = self.fresh, {}
        gone = [old for uid, old in self.store.pods.items()
                if uid not in fresh and _under(self.path, old.namespace)]
        moved = [(self.store.pods.get(uid), p) for uid, p in fresh.items()
                 if self.store.pods.get(uid) != p]
        for pod in gone:
            self.store.remove(pod.uid)
        for _, pod in moved:
            self.store.put(pod)
        for before, after in [*((p, None) for p in gone), *moved]:
            await self.changed(before, after)

    async def apply(self, deleted: bool, obj: dict[str, Any]) -> None:
        pod = parse_pod(obj)
        before = self.store.remove(pod.uid)
        if not deleted:
            self.store.put(pod)
        await self.changed(before, None if deleted else pod)


class KeyedStore(Generic[K, V]):
    """key -> [its one value], as the controller's `Store` reads it."""

    def __init__(self) -> None:
        self.values: dict[K, V] = {}
        self.versions: dict[K, str] = {}

    def __getitem__(self, key: K) -> list[V]:
        return [self.values[key]]

    def __contains__(self, key: object) -> bool:
        return key in self.values

    def __iter__(self) -> Iterator[K]:
        return iter(list(self.values))

    def drop(self, key: K) -> None:
        self.values.pop(key, None)
        self.versions.pop(key, None)


class KeyedInformer(ListWatch, Generic[K, V]):
    """One value per object (a TrainingJob, a node), parsed once per version; `changed`
    gets the key and the new value, or None when the object is gone."""

    def __init__(self, rest: Rest, path: str, key: Callable[[dict[str, Any]], K],
                 parse: Callable[[dict[str, Any]], V],
                 changed: Callable[[K, V | None], Awaitable[None]],
                 store: KeyedStore[K, V] | None = None) -> None:
        super().__init__(rest, path)
        self.key, self.parse, self.changed = key, parse, changed
        self.store: KeyedStore[K, V] = KeyedStore() if store is None else store

    def begin(self) -> None:
        self.seen: set[K] = set()

    async def page(self, items: list[dict[str, Any]]) -> None:
        """Each page's changed objects are parsed and stored at once, so a page's bodies are
        freed before the next one is read."""
        for obj in items:
            k = self.key(obj)
            self.seen.add(k)
            if self.store.versions.get(k) != _version(obj):
                await self.apply(False, obj)

    async def end(self) -> None:
        seen, self.seen = self.seen, set()
        for k in [k for k in self.store if k not in seen and _owned(self.path, k)]:
            self.store.drop(k)
            await self.changed(k, None)

    async def apply(self, deleted: bool, obj: dict[str, Any]) -> None:
        k = self.key(obj)
        if deleted:
            self.store.drop(k)
            await self.changed(k, None)
            return
        value = self.parse(obj)
        self.store.values[k] = value
        self.store.versions[k] = _version(obj)
        await self.changed(k, value)


def _version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _namespace_of(path: str) -> str | None:
    """The namespace a list path is limited to (.../namespaces/<ns>/<plural>), if any."""
    parts = path.strip("/").split("/")
    return parts[-2] if len(parts) >= 3 and parts[-3] == "namespaces" else None


def _under(path: str, namespace: str) -> bool:
    scope = _namespace_of(path)
    return scope is None or scope == namespace


def _owned(path: str, key: object) -> bool:
    """Whether a key is this path's to drop on a relist: (namespace, name) keys of a
    namespaced list belong to that namespace only (several lists share one store)."""
    return not (isinstance(key, tuple) and key) or _under(path, str(key[0]))
