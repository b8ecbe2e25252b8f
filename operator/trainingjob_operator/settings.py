"""Operator settings: defaults a person can override with TRAININGJOB_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Settings:
    # How long a worker may wait in ErrImagePull/ImagePullBackOff before the job fails:
    # registries have transient errors, a wrong image name does not fix itself.
    image_pull_grace_seconds: float = 120.0
    # Same for CreateContainerConfigError/CreateContainerError (a Secret may arrive late).
    config_error_grace_seconds: float = 60.0
    # The one periodic sweep: time-based transitions and a fallback admission pass.
    sweep_seconds: float = 2.0
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
    history_limit: int = 20
    master_port: int = 29500

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, float | int] = {}
        for f in fields(cls):
            raw = env.get(f"TRAININGJOB_{f.name.upper()}")
            if raw is not None:
                values[f.name] = int(raw) if f.type in ("int", int) else float(raw)
        return cls(**values)  # type: ignore[arg-type]
