"""Pure: what the soak does and when: its duration, the jobs (one outcome each, in a fixed
rotation), the node flaps, and by when each job must be finished.

Every job's fake pods are played by kwok from the annotations (devcluster/README.md), so its
outcome is known when it is created. Finished jobs are deleted by the operator after
TTL_SECONDS (spec.ttlSecondsAfterFinished), so the cluster holds a steady number of objects
and a growing memory means a leak, not more jobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from devcluster import kueue

ANNOTATION = kueue.ANNOTATION
TTL_SECONDS = 15
GRACE_SECONDS = 3  # terminationGracePeriodSeconds: kwok ends a deleted pod at once anyway
ACT_AFTER = 20.0  # a stop or delete comes this long after the create
# Besides its own run time, a job may wait in the queue and lose a node to a flap (the
# operator's 60 s grace, then the restart); beyond this margin it counts as stuck.
MARGIN_SECONDS = 240.0
IMAGE_PULL_GRACE = 120.0  # the operator's default image_pull_grace_seconds
GONE = "gone"  # the expected end of a job the soak deletes


@dataclass(frozen=True)
class Outcome:
    name: str
    expect: str  # terminal phase, or GONE
    workers: int
    gpus: int
    annotations: dict[str, str]
    seconds: float  # how long it should take from create to its end, before the margin
    act: str | None = None  # "stop" or "delete", ACT_AFTER seconds after the create


def _played(outcome: str, run: int, **more: str) -> dict[str, str]:
    out = {ANNOTATION + "outcome": outcome, ANNOTATION + "run-duration": f"{run}s"}
    out.update({ANNOTATION + k: v for k, v in more.items()})
    return out


# One rotation of ten jobs: four in ten complete, one gang; every end a user can meet.
ROTATION: tuple[Outcome, ...] = (
    Outcome("completed", "Completed", 1, 1, _played("succeed", 10), 10),
    Outcome("failed", "Failed", 1, 1, _played("fail", 15, **{"exit-code": "3"}), 15),
    Outcome("completed", "Completed", 1, 2, _played("succeed", 20), 20),
    Outcome("stopped", "Stopped", 1, 2, _played("run", 0), ACT_AFTER, "stop"),
    Outcome("gang", "Completed", 2, 4, _played("succeed", 20), 20),
    Outcome("deployfailed", "DeployFailed", 1, 1,
            _played("image-pull-error", 0, message="pull access denied for team/nope"),
            IMAGE_PULL_GRACE),
    Outcome("completed", "Completed", 1, 4, _played("succeed", 40), 40),
    Outcome("deleted", GONE, 1, 1, _played("run", 0), ACT_AFTER, "delete"),
    Outcome("oom", "Failed", 1, 2, _played("oom", 15), 15),
    Outcome("completed", "Completed", 1, 1, _played("succeed", 30), 30),
)
OUTCOMES = sorted({o.name for o in ROTATION})


@dataclass(frozen=True)
class JobPlan:
    name: str
    outcome: Outcome
    created: float  # seconds since the start of the soak

    @property
    def deadline(self) -> float:
        """By then (soak seconds) it must have ended as expected."""
        return self.created + self.outcome.seconds + MARGIN_SECONDS

    @property
    def act_at(self) -> float | None:
        return self.created + ACT_AFTER if self.outcome.act else None


def job_plan(index: int, at: float) -> JobPlan:
    outcome = ROTATION[index % len(ROTATION)]
    return JobPlan(f"soak-{index:05d}-{outcome.name}", outcome, at)


def manifest(plan: JobPlan) -> dict[str, Any]:
    o = plan.outcome
    return {"apiVersion": "training.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": plan.name, "labels": {"soak/outcome": o.name}},
            "spec": {"image": "team/train:1.4", "workers": o.workers, "gpusPerWorker": o.gpus,
                     "ttlSecondsAfterFinished": TTL_SECONDS,
                     "terminationGracePeriodSeconds": GRACE_SECONDS,
                     # The operator's own backstops: nothing waits or runs forever.
                     "timeouts": {"queueSeconds": 600, "deploySeconds": 300,
                                  "runSeconds": 600},
                     "template": {"metadata": {"annotations": dict(o.annotations)}}}}


@dataclass(frozen=True)
class Flap:
    """A node NotReady from `at` for `seconds` (soak seconds)."""

    at: float
    node: int
    seconds: float


FLAP_EVERY = 180.0
# Alternately shorter and longer than the operator's 60 s node-lost grace: a blip it rides
# out, and a loss that restarts the gangs there.
FLAP_SECONDS = (30.0, 90.0)


def flaps(duration: float, nodes: int, first: float = 60.0) -> list[Flap]:
    """Flaps from `first` on, every FLAP_EVERY seconds, round the nodes; each over before the
    end of the soak."""
    out: list[Flap] = []
    at = first
    while True:
        seconds = FLAP_SECONDS[len(out) % len(FLAP_SECONDS)]
        if at + seconds > duration:
            return out
        out.append(Flap(at, len(out) % nodes, seconds))
        at += FLAP_EVERY


_UNIT = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> float:
    """Seconds of "30m", "1h30m", "90s", "45" (seconds); ValueError on anything else."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"duration {text!r}: use e.g. 30m, 1h30m, 90s")
    seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} is not positive")
    return seconds


@dataclass
class Tracked:
    """What the soak saw of one job (soak seconds)."""

    plan: JobPlan
    acted: bool = False
    ended: float | None = None  # first seen in its expected end (for GONE: gone)
    gone: float | None = None  # first seen gone
    wrong: str | None = None  # the end it reached instead of the expected one
    last: str = "not seen"  # the phase it was last seen in
