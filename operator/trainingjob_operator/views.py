"""Typed reads of the informers' stores: the shell's picture of jobs, pods and nodes."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from trainingjob_operator.models import TrainingJob, Unreadable
from trainingjob_operator.nodes import NodeView
from trainingjob_operator.pods import PodView
from trainingjob_operator.vocabulary import Key

V = TypeVar("V", covariant=True)


class Store(Protocol, Generic[V]):
    """key -> the values filed under it (informer.KeyedStore, informer.PodStore)."""

    def __getitem__(self, key: Any, /) -> Iterable[V]: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __iter__(self) -> Iterator[Any]: ...


def _values(store: Store[V], key: Hashable) -> list[V]:
    return list(store[key]) if key in store else []


def _first(store: Store[V], key: Hashable) -> V | None:
    return next(iter(_values(store, key)), None)


@dataclass(frozen=True)
class Jobs:
    store: Store[TrainingJob | Unreadable]  # (ns, name) -> [the job, parsed once]

    def get(self, key: Key) -> TrainingJob | Unreadable | None:
        return _first(self.store, key)

    def keys(self) -> list[Key]:
        return [k for k in self.store if isinstance(k, tuple)]

    def live(self) -> dict[Key, TrainingJob]:
        """Every readable job not being deleted."""
        return {k: j for k in self.keys() if isinstance(j := self.get(k), TrainingJob)
                and not j.metadata.deletion_timestamp}


@dataclass(frozen=True)
class Pods:
    # (ns, job) -> that job's worker pods; node name -> the pods bound there that are
    # workers or ask for GPUs: one store, keys of two shapes (informer.keys).
    store: Store[PodView]

    def of_job(self, key: Key) -> list[PodView]:
        return _values(self.store, key)

    def on_node(self, name: str) -> list[PodView]:
        return _values(self.store, name)

    def bound(self) -> list[PodView]:
        """Every pod bound to a node that is a worker or asks for GPUs."""
        return [p for k in self.store if isinstance(k, str) for p in self.store[k]]


@dataclass(frozen=True)
class Nodes:
    store: Store[NodeView]  # name -> [its view]

    def get(self, name: str) -> NodeView | None:
        return _first(self.store, name)

    def all(self) -> list[NodeView]:
        return [n for k in self.store if isinstance(k, str) and (n := self.get(k))]


@dataclass(frozen=True)
class Views:
    jobs: Jobs
    pods: Pods
    nodes: Nodes
