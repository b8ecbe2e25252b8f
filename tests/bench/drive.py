"""The shell of the benchmark: creates a workload's objects, watches them finish, and reads
the numbers (API server metrics, /proc of the controllers).

Objects are created by an asyncio client with bounded concurrency, the same way for every
peer, so creation speed is not what is compared. Completion is seen through one watch.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainingjob_operator.kube import Rest

from tests.bench import apimetrics

CREATE_CONCURRENCY = 32
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    done: Callable[[dict[str, Any]], str | None]

    @property
    def resource(self) -> str:
        return self.plural

    def path(self, namespace: str, name: str = "") -> str:
        return (f"/apis/{self.group}/{self.version}/namespaces/{namespace}/{self.plural}"
                + (f"/{name}" if name else ""))


async def api(kubeconfig: Path) -> Rest:
    return await Rest.connect(str(kubeconfig))


async def create_all(rest: Rest, kind: Kind, namespace: str,
                     objects: Iterable[dict[str, Any]]) -> None:
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(obj: dict[str, Any]) -> None:
        async with gate:
            await rest.request("POST", kind.path(namespace), obj)

    await asyncio.gather(*(one(o) for o in objects))


async def _watch(rest: Rest, path: str, resource_version: str,
                 seconds: int) -> AsyncIterator[dict[str, Any]]:
    """The events of one watch request, as they arrive."""
    method, url, headers, _, _ = await rest.api.param_serialize(
        method="GET", resource_path=path, header_params={"Accept": "application/json"},
        query_params=[("watch", "1"), ("resourceVersion", resource_version),
                      ("timeoutSeconds", seconds)], auth_settings=["BearerToken"])
    response = await rest.api.call_api(method, url, headers, _request_timeout=seconds + 30)
    async for line in response.response.content:
        if line.strip():
            yield json.loads(line)


async def wait_done(rest: Rest, kind: Kind, namespace: str, count: int,
                    timeout: float) -> dict[str, str]:
    """Name -> terminal state of every object, once `count` of them are done: one list,
    then a watch from its resourceVersion (listed again if the watch ends)."""
    done: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        listed = await rest.request("GET", kind.path(namespace))
        for obj in listed["items"]:
            if (state := kind.done(obj)) is not None:
                done[obj["metadata"]["name"]] = state
        if len(done) >= count:
            return done
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{len(done)}/{count} {kind.plural} done after {timeout:.0f}s")
        async for event in _watch(rest, kind.path(namespace),
                                  listed["metadata"]["resourceVersion"], max(1, int(left))):
            if event["type"] == "ERROR":
                break  # 410 Gone and the like: list again
            obj = event["object"]
            if (state := kind.done(obj)) is not None:
                done[obj["metadata"]["name"]] = state
                if len(done) >= count:
                    return done


async def event_reasons(rest: Rest, namespace: str) -> dict[str, int]:
    """Events in the namespace by who posted them and why ("component/Reason")."""
    tally: dict[str, int] = {}
    for path in (f"/api/v1/namespaces/{namespace}/events",):
        for e in (await rest.request("GET", path))["items"]:
            who = e.get("reportingComponent") or (e.get("source") or {}).get("component", "")
            key = f"{who}/{e.get('reason')}"
            tally[key] = tally.get(key, 0) + int(e.get("count") or 1)
    return tally


async def metrics_text(rest: Rest) -> str:
    """The API server's /metrics."""
    method, url, headers, _, _ = await rest.api.param_serialize(
        method="GET", resource_path="/metrics", auth_settings=["BearerToken"])
    response = await rest.api.call_api(method, url, headers)
    return (await response.read()).decode()  # type: ignore[no-untyped-call,no-any-return]


async def api_writes(rest: Rest) -> apimetrics.Counts:
    return apimetrics.writes(await metrics_text(rest))


async def settled_writes(rest: Rest, quiet: float = 2.0,
                         limit: float = 20.0) -> apimetrics.Counts:
    """The write counters once they stop moving (late writes such as finalizer removal
    belong to the run), or after `limit` seconds."""
    deadline = time.monotonic() + limit
    last = await api_writes(rest)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = await api_writes(rest)
        if now == last:
            break
        last = now
    return last


@dataclass(frozen=True)
class ProcStat:
    cpu_seconds: float
    peak_rss_mib: float
    rss_mib: float


def proc_stat(pid: int) -> ProcStat:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    status = {k: v.split() for k, _, v in (line.partition(":") for line in
                                          Path(f"/proc/{pid}/status").read_text().splitlines())}
    return ProcStat(cpu, int(status["VmHWM"][0]) / 1024, int(status["VmRSS"][0]) / 1024)


def find_process(*words: str) -> int:
    """The pid of the one process whose command line holds every word."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if all(w in cmdline for w in words):
            return int(entry.name)
    raise LookupError(f"no process with {words} in its command line")
