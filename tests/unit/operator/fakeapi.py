"""A fake API server for the shell's unit tests: the stores the informers would fill, and
the writes the shell makes, with the API's rules that matter to it (the resourceVersion
precondition on a status write; a create answered as the test says)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trainingjob_operator.controller import Controller
from trainingjob_operator.informer import KeyedStore, PodStore
from trainingjob_operator.kube import Created, StatusRefusedError
from trainingjob_operator.models import ObjectMeta, TrainingJob, Unreadable
from trainingjob_operator.nodes import NodeView
from trainingjob_operator.pods import PodView, parse_pod
from trainingjob_operator.settings import Settings
from trainingjob_operator.views import Jobs, Nodes, Pods, Views
from trainingjob_operator.vocabulary import Key

from tests.unit.operator.factories import NOW


@dataclass
class FakeClock:
    at: datetime = NOW
    ticks: float = 1000.0

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.ticks

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        self.ticks += seconds


@dataclass
class FakeApi:
    """Writes land in the stores at once, as if their watch events came back before the
    next read (`echo=False`: they do not, and the informer still shows the old object)."""

    jobs: KeyedStore[Key, TrainingJob | Unreadable] = field(default_factory=KeyedStore)
    pods: PodStore = field(default_factory=PodStore)
    nodes: KeyedStore[str, NodeView] = field(default_factory=KeyedStore)
    echo: bool = True
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    # Pod or Service name -> how its create is answered (default: created).
    answers: dict[str, Created] = field(default_factory=dict)
    refuse_status: str | None = None  # every status write answered 422 with this
    version: int = 100

    def views(self) -> Views:
        return Views(Jobs(self.jobs), Pods(self.pods), Nodes(self.nodes))

    def put_job(self, job: TrainingJob | Unreadable) -> None:
        key = (job.metadata.namespace, job.metadata.name)
        self.jobs.values[key] = job
        self.jobs.versions[key] = job.metadata.resource_version

    def job(self, key: Key) -> TrainingJob:
        found = self.jobs.values[key]
        assert isinstance(found, TrainingJob)
        return found

    def put_node(self, node: NodeView) -> None:
        self.nodes.values[node.name] = node

    def writes(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]

    async def patch_status(self, meta: ObjectMeta, status: dict[str, Any]) -> str | None:
        key = (meta.namespace, meta.name)
        self.calls.append(("status", key, status))
        if self.refuse_status is not None:
            raise StatusRefusedError(self.refuse_status)
        current = self.jobs.values.get(key)
        if current is None or current.metadata.resource_version != meta.resource_version:
            return None  # 409 (or 404): the precondition failed
        self.version += 1
        written = str(self.version)
        if self.echo and isinstance(current, TrainingJob):
            merged = {**current.status.model_dump(by_alias=True, mode="json"), **status}
            self.put_job(TrainingJob.model_validate({
                **current.model_dump(by_alias=True, mode="json"),
                "metadata": {**current.metadata.model_dump(by_alias=True, mode="json"),
                             "resourceVersion": written},
                "status": {k: v for k, v in merged.items() if v is not None}}))
        return written

    async def create(self, manifest: dict[str, Any]) -> Created:
        name = manifest["metadata"]["name"]
        self.calls.append(("create", manifest["kind"], name))
        answer = self.answers.get(name, Created(True))
        if answer.ok and manifest["kind"] == "Pod" and self.echo:
            body = {**manifest, "metadata": {**manifest["metadata"], "uid": f"uid-{name}"}}
            self.pods.put(parse_pod(body))
        return answer

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int) -> None:
        self.calls.append(("delete_pod", name, grace_seconds))

    async def stop_pod(self, namespace: str, name: str, uid: str,
                       deadline_seconds: int) -> None:
        self.calls.append(("stop_pod", name, uid))

    async def delete_trainingjob(self, meta: ObjectMeta, resource_version: str) -> None:
        self.calls.append(("delete_job", meta.name, resource_version))

    async def event(self, meta: ObjectMeta, type_: str, reason: str, message: str) -> None:
        self.calls.append(("event", meta.name, type_, reason, message))


def controller(api: FakeApi, clock: FakeClock | None = None, **settings: Any) -> Controller:
    """A controller on the fake API, ready (its informers' first lists are in)."""
    c = Controller(api, Settings(**settings), api.views(), clock=clock or FakeClock())
    c.ready.set()
    return c


def gpu_node(name: str, gpus: int = 8, ready: bool = True) -> NodeView:
    return NodeView(name=name, allocatable={"nvidia.com/gpu": gpus}, schedulable=ready,
                    ready=ready)


def bound(pod: PodView, node: str) -> PodView:
    return pod.model_copy(update={"node_name": node})
