"""Operator settings: defaults a person can override with TRAININGJOB_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from trainingjob_operator.vocabulary import COMPONENT


@dataclass(frozen=True)
class Settings:
    # How long a worker may wait in ErrImagePull/ImagePullBackOff before the job fails:
    # registries have transient errors, a wrong image name does not fix itself.
    image_pull_grace_seconds: float = 120.0
    # Same for CreateContainerConfigError/CreateContainerError (a Secret may arrive late).
    config_error_grace_seconds: float = 60.0
    # With leader election: how often the loop looks at the leader gauge (the lease is renewed
    # as often). Time-based transitions are each woken for at their own time.
    sweep_seconds: float = 2.0
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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read TRAININGJOB_<FIELD>; a value that does not parse names the variable."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f"TRAININGJOB_{f.name.upper()}"
            raw = env.get(name)
            if raw is not None:
                values[f.name] = _parse(name, raw, str(f.type))
        if "lease_namespace" not in values and env.get("POD_NAMESPACE"):
            values["lease_namespace"] = env["POD_NAMESPACE"]
        if values.get("log_format", "plain") not in ("plain", "json"):
            raise ValueError(f"TRAININGJOB_LOG_FORMAT={values['log_format']!r}: use plain or json")
        return cls(**values)  # type: ignore[arg-type]


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
        return raw
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {kind}") from None


# The chart's value for each endpoint setting, for error messages.
CHART_VALUES = {"TRAININGJOB_METRICS_PORT": "metrics.port",
                "TRAININGJOB_HEALTH_PORT": "health.port"}


def port_taken(setting: str, port: int, err: OSError) -> str:
    return (f"{setting}={port}: the port is taken ({err.strerror or err}). Stop the program "
            f"that holds it, or set {setting} to a free port (0 turns the endpoint off; in "
            f"the Helm chart: {CHART_VALUES[setting]})")
