"""One job's faults stay that job's: a step that raises on a job's own data ends that job
InvalidSpec, naming the field to blame, and the traceback is logged once per version of the
job, never on every pass."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from trainingjob_operator import faults, refusals
from trainingjob_operator.decision import Decision
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.pods import PodView
from trainingjob_operator.settings import Settings
from trainingjob_operator.vocabulary import Key

log = logging.getLogger(__name__)
T = TypeVar("T")
# The jobs whose own step raised in one queue pass: (job, the decision that ends it).
Broken = dict[Key, tuple[TrainingJob, Decision]]


def key_of(job: TrainingJob) -> Key:
    return (job.metadata.namespace, job.metadata.name)


@dataclass
class Faults:
    settings: Settings
    pods: Callable[[Key], list[PodView]]
    # The resourceVersion of each job whose fault was last logged.
    logged: dict[Key, str] = field(default_factory=dict)

    def first(self, key: Key, version: str) -> bool:
        """Whether this version of the job is heard of for the first time (and now is not)."""
        if self.logged.get(key) == version:
            return False
        self.logged[key] = version
        return True

    def forget(self, key: Key) -> None:
        self.logged.pop(key, None)

    def end(self, job: TrainingJob, step: str, err: Exception,
            again: Callable[[TrainingJob], object], now: datetime) -> Decision:
        """The decision that ends a job whose own data made `step` raise (`again` runs that
        step on a variant of the job, to find the field to blame)."""
        key = key_of(job)
        if self.first(key, job.metadata.resource_version):
            log.error("%s/%s: could not %s; the job ends InvalidSpec", *key, step,
                      exc_info=err)
        try:
            problem = faults.message(step, faults.blame(job, again), err)
            return refusals.unusable(job, self.pods(key), problem, now, self.settings)
        except Exception:  # not even its end can be decided: leave it, logged once above
            return Decision()

    def guard(self, job: TrainingJob, step: str, run: Callable[[TrainingJob], T],
              broken: Broken, now: datetime) -> T | None:
        """`run(job)`, one job's step of a queue pass; None when the job's own data made it
        raise: the job is then in `broken` with the decision that ends it, and the pass goes
        on with the others."""
        try:
            return run(job)
        except Exception as err:
            broken[key_of(job)] = (job, self.end(job, step, err, run, now))
            return None
