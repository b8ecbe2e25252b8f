"""Operator settings: defaults a person can override with TRAININGJOB_* environment variables."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from trainingjob_operator.vocabulary import COMPONENT, DEFAULT_ACCELERATORS


@dataclass(frozen=True)
class Settings:
    # How long a worker may wait in ErrImagePull/ImagePullBackOff before the job fails:
    # registries have transient errors, a wrong image name does not fix itself.
    image_pull_grace_seconds: float = 120.0
    # Same for CreateContainerConfigError/CreateContainerError (a Secret may arrive late).
    config_error_grace_seconds: float = 60.0
    # With leader election: how often the loop looks at the leader gauge (the lease is renewed
    # as often). Time-based transitions are each woken for at their own time.
    leader_check_seconds: float = 2.0
    # The queue runs at most this often: events that arrive meanwhile are decided together.
    admission_interval_seconds: float = 0.1
    # A Pending job's free-GPU count is refreshed at most this often (one write each).
    queue_refresh_seconds: float = 15.0
    # A younger job may backfill around an older one of the same priority that does not fit
    # yet, until the older one has waited this long (docs/queue.md).
    backfill_window_seconds: float = 600.0
    # A node NotReady this long counts as lost: its workers are retried elsewhere.
    node_lost_grace_seconds: float = 60.0
    # Queue-position/free-GPU status refreshes, all Pending jobs together (reason changes first).
    queue_writes_per_second: float = 20.0
    # Prometheus text on http://<host>:<port>/metrics; 0 turns it off.
    metrics_port: int = 8080
    # /healthz (liveness) and /readyz (readiness) for the kubelet's probes; 0 turns it off.
    health_port: int = 8081
    history_limit: int = 20
    # Delete a finished TrainingJob this long after it finished, unless its own
    # spec.ttlSecondsAfterFinished says otherwise; -1 keeps it (the chart's
    # ttlSecondsAfterFinished sets this).
    ttl_seconds_after_finished: int = -1
    master_port: int = 29500
    # Leader election over a coordination.k8s.io Lease, for more than one replica: only the
    # holder writes. A killed leader's lease is taken over after lease_duration_seconds
    # without renewal; the holder renews, and a standby looks, every lease_retry_seconds.
    leader_elect: bool = False
    lease_name: str = COMPONENT
    lease_namespace: str = "default"  # when unset: $POD_NAMESPACE (the chart's), else this
    lease_duration_seconds: float = 10.0
    lease_retry_seconds: float = 2.0
    log_format: str = "plain"  # or "json": one JSON object per line
    # How long one watch request lasts before it is renewed from its last resourceVersion.
    watch_seconds: int = 300
    # Objects per page when a watch lists again (limit/continue): a relist of many large
    # TrainingJobs never holds the whole list in memory at once.
    list_page_size: int = 500
    # Extended resources that are accelerators: a job gets one only through spec.gpusPerWorker
    # and spec.gpuResource, which the queue counts, never through spec.resources. A trailing *
    # matches any suffix (nvidia.com/mig-* for every MIG profile).
    accelerators: tuple[str, ...] = DEFAULT_ACCELERATORS
    # A CPU-only job (gpusPerWorker 0) skips the GPU queue, so its gang has this bound.
    cpu_only_max_workers: int = 16
    # The configured node set: merged into every worker's nodeSelector, and the queue places
    # workers only on nodes with these labels.
    worker_node_selector: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read TRAININGJOB_<FIELD>, or a renamed field's old variable; a value that does not
        parse names the variable."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for f in fields(cls):
            names = [variable(f.name), *(variable(o) for o, n in RENAMED.items() if n == f.name)]
            name = next((n for n in names if n in env), None)
            if name is not None:
                values[f.name] = _parse(name, env[name], str(f.type))
        if "lease_namespace" not in values and env.get("POD_NAMESPACE"):
            values["lease_namespace"] = env["POD_NAMESPACE"]
        if values.get("log_format", "plain") not in ("plain", "json"):
            raise ValueError(f"TRAININGJOB_LOG_FORMAT={values['log_format']!r}: use plain or json")
        if int(str(values.get("list_page_size", 1))) < 1:
            raise ValueError(f"TRAININGJOB_LIST_PAGE_SIZE={values['list_page_size']}: use 1 "
                             "or more")
        if int(str(values.get("cpu_only_max_workers", 0))) < 0:
            raise ValueError(f"TRAININGJOB_CPU_ONLY_MAX_WORKERS={values['cpu_only_max_workers']}: "
                             "use 0 (no CPU-only jobs) or more")
        return cls(**values)  # type: ignore[arg-type]


# Settings renamed: old field -> new field. The old variable (and the chart's `settings` key
# that renders it) still works, with one warning at startup (`deprecated`), so an upgrade
# keeps a deployment's values.
RENAMED = {"sweep_seconds": "leader_check_seconds"}


def variable(name: str) -> str:
    return f"TRAININGJOB_{name.upper()}"


def chart_key(name: str) -> str:
    """The chart's `settings` key of a field (the template renders it back with snakecase)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def deprecated(env: Mapping[str, str] | None = None) -> list[str]:
    """One warning for each old variable set, naming the new one."""
    env = os.environ if env is None else env
    out = []
    for old, new in RENAMED.items():
        if variable(old) in env:
            what = (f"deprecated and ignored: {variable(new)} is set" if variable(new) in env
                    else f"deprecated: it is read as {variable(new)}; set that instead")
            out.append(f"{variable(old)} is {what} (in the Helm chart: "
                       f"settings.{chart_key(new)} instead of settings.{chart_key(old)})")
    return out


def _parse(name: str, raw: str, kind: str) -> object:
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "tuple[str, ...]":
            return _resource_names(name, raw)
        if kind == "Mapping[str, str]":
            return _labels(name, raw)
        return raw
    except _BadSettingError:
        raise
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {kind}") from None


def _resource_names(name: str, raw: str) -> tuple[str, ...]:
    """A JSON list or a comma-separated list of extended resource names (with a /)."""
    if raw.strip().startswith("["):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _bad(name, raw, f"not a JSON list ({e.msg})") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise _bad(name, raw, "a JSON list must hold strings only")
    else:
        items = raw.split(",")
    names = tuple(i.strip() for i in items if i.strip())
    for n in names:
        if "/" not in n or "*" in n[:-1]:
            raise _bad(name, raw, f"{n!r} is not an extended resource name such as "
                       "amd.com/gpu (a * may only end it, as in nvidia.com/mig-*)")
    return names


def _labels(name: str, raw: str) -> dict[str, str]:
    """A JSON object of label keys to label values; empty means none."""
    if not raw.strip():
        return {}
    try:
        labels = json.loads(raw)
    except json.JSONDecodeError as e:
        raise _bad(name, raw, f"not a JSON object ({e.msg})") from None
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise _bad(name, raw, 'use a JSON object of label keys to string values, such as '
                   '{"pool": "training"}')
    for k, v in labels.items():
        if not _LABEL_KEY.fullmatch(k) or len(k.rpartition("/")[2]) > 63:
            raise _bad(name, raw, f"{k!r} is not a label key (such as pool or "
                       "example.com/pool)")
        if not _LABEL_VALUE.fullmatch(v) or len(v) > 63:
            raise _bad(name, raw, f"the value of {k!r} is not a label value: at most 63 "
                       "letters, digits, '-', '_' and '.', starting and ending with one of the "
                       "first two")
    return labels


_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?{_NAME}")
_LABEL_VALUE = re.compile(rf"({_NAME})?")


class _BadSettingError(ValueError):
    """Already names the variable and what is wrong: `_parse` passes it on as it is."""


def _bad(name: str, raw: str, why: str) -> _BadSettingError:
    return _BadSettingError(f"{name}={raw!r}: {why}")


# The chart's value for each endpoint setting, for error messages.
CHART_VALUES = {"TRAININGJOB_METRICS_PORT": "metrics.port",
                "TRAININGJOB_HEALTH_PORT": "health.port"}


def port_taken(setting: str, port: int, err: OSError) -> str:
    return (f"{setting}={port}: the port is taken ({err.strerror or err}). Stop the program "
            f"that holds it, or set {setting} to a free port (0 turns the endpoint off; in "
            f"the Helm chart: {CHART_VALUES[setting]})")
