"""Pure: API writes by resource, from the API server's `apiserver_request_total` counters.

A write is any request whose verb changes state. The resources counted are the ones a job
controller's work shows in: Events, the job objects and their status, Workloads (Kueue),
pods (create, binding, status, delete), Services, Endpoints and EndpointSlices. Nodes and
Leases are left out: kwok's heartbeats are the same whoever runs the jobs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})
COUNTED = frozenset({"events", "pods", "services", "endpoints", "endpointslices", "jobs",
                     "trainingjobs", "workloads"})
Counts = dict[str, float]  # "resource" or "resource/subresource" -> requests


def _labels(text: str) -> dict[str, str]:
    out = {}
    for part in text.split('",'):
        key, _, value = part.partition('="')
        out[key.strip()] = value.rstrip('"')
    return out


def requests(metrics_text: str) -> Iterator[tuple[dict[str, str], float]]:
    """The labels and value of every `apiserver_request_total` series."""
    for line in metrics_text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels_text, _, value = line[len("apiserver_request_total{"):].rpartition("} ")
            yield _labels(labels_text), float(value)


def resource(labels: Mapping[str, str]) -> str:
    """resource or resource/subresource"""
    return labels.get("resource", "") + (f"/{labels['subresource']}"
                                         if labels.get("subresource") else "")


def writes(metrics_text: str) -> Counts:
    """Write requests served so far (every response code), by resource[/subresource]."""
    counts: Counts = {}
    for labels, value in requests(metrics_text):
        if labels.get("verb") not in WRITE_VERBS or labels.get("resource") not in COUNTED:
            continue
        key = resource(labels)
        counts[key] = counts.get(key, 0.0) + value
    return counts


def delta(after: Mapping[str, float], before: Mapping[str, float]) -> Counts:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def per_job(counts: Mapping[str, float], jobs: int, created_by_user: str) -> Counts:
    """Writes per job, without the user's own create of each job (`created_by_user`, the
    same for every peer)."""
    out = {k: v / jobs for k, v in counts.items()}
    out[created_by_user] = out.get(created_by_user, 0.0) - 1.0
    return {k: v for k, v in out.items() if abs(v) > 1e-9}


GROUPS = {"events": "events", "pods": "pods", "services": "services",
          "endpoints": "endpoints", "endpointslices": "endpoints"}


def grouped(counts: Mapping[str, float]) -> dict[str, float]:
    """Writes folded into the table's columns: events, status (the controller's own objects,
    Workloads included), pods (every subresource), services, endpoints (both kinds)."""
    out: dict[str, float] = {}
    for key, value in counts.items():
        column = GROUPS.get(key.split("/", 1)[0], "status")
        out[column] = out.get(column, 0.0) + value
    return out


# What the operator's own work shows in. Endpoints are left out: without real nodes the API
# server's reconciler of the `kubernetes` Service fails a POST every 10 s (loopback address),
# whoever runs the jobs.
OPERATOR_DRIVEN = frozenset({"events", "pods", "services", "trainingjobs"})


def operator_driven(counts: Counts) -> float:
    return sum(v for k, v in counts.items() if k.split("/", 1)[0] in OPERATOR_DRIVEN)
