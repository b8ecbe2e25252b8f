"""No double-booking, ever: under a burst of jobs, and with the operator SIGKILLed at random
moments of admission and deploy. Commitments are sampled continuously (tests/capacity.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from typing import Any

import pytest

from tests.capacity import Sampler
from tests.conftest import Operator
from tests.kube import Kubectl, eventually, training_job, wait_cluster_idle

pytestmark = [pytest.mark.kwok]


def _apply_all(ns: Kubectl, jobs: list[dict[str, Any]]) -> None:
    ns.run("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List",
                                                      "items": jobs}))


def _all_completed(ns: Kubectl, names: list[str], timeout: float) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        items = ns.json("get", "trainingjobs")["items"]
        phases = {j["metadata"]["name"]: (j.get("status") or {}).get("phase") for j in items}
        if any(phases.get(n) != "Completed" for n in names):
            return None
        return list(items)
    return eventually(done, timeout=timeout, interval=1, what=f"{len(names)} jobs Completed")


@pytest.mark.usefixtures("running_operator")
def test_forty_jobs_on_thirty_two_gpus_never_exceed_capacity(ns: Kubectl,
                                                             kubectl: Kubectl) -> None:
    wait_cluster_idle(kubectl)
    rng = random.Random(40)
    shapes = [(1, 1), (1, 2), (2, 2), (1, 4), (2, 4), (1, 8), (2, 8), (4, 2)]
    jobs = []
    for i in range(40):
        workers, gpus = shapes[i % len(shapes)]
        jobs.append(training_job(f"burst-{i:02}", workers=workers, gpus=gpus,
                                 priority=rng.choice([0, 0, 0, 5]),
                                 annotations={"outcome": "succeed",
                                              "run-duration": f"{rng.choice([1, 2, 3])}s"}))
    with Sampler(kubectl) as sampler:
        _apply_all(ns, jobs)
        items = _all_completed(ns, [j["metadata"]["name"] for j in jobs], timeout=240)
    sampler.assert_never_overcommitted(min_samples=20)
    assert sampler.peak >= 24, f"the burst never filled the cluster (peak {sampler.peak})"
    assert all(j["status"]["attempt"] == 1 for j in items)


RUNS = int(os.environ.get("TRAININGJOB_KILL_RUNS", "20"))


def test_sigkill_at_random_moments_never_double_books_and_converges(
        ns: Kubectl, kubectl: Kubectl, operator: Operator) -> None:
    """The operator is killed (SIGKILL: no cleanup) at a random moment after a burst, and
    restarted after a random pause, RUNS times; the seed is printed for a rerun."""
    seed = int(os.environ.get("TRAININGJOB_KILL_SEED", str(int(time.time()))))
    print(f"TRAININGJOB_KILL_SEED={seed}")
    rng = random.Random(seed)
    wait_cluster_idle(kubectl)
    shapes = [(2, 8), (1, 8), (2, 4), (1, 4), (4, 2), (1, 2)]  # 46 GPUs asked of 32
    converge: list[float] = []
    with Sampler(kubectl) as sampler:
        for run in range(RUNS):
            if not operator.alive():
                operator.start()
            jobs = [training_job(f"r{run:02}-{i}", workers=w, gpus=g,
                                 annotations={"outcome": "succeed", "run-duration": "1s"})
                    for i, (w, g) in enumerate(shapes)]
            _apply_all(ns, jobs)
            time.sleep(rng.uniform(0.0, 3.0))  # somewhere in admission, deploy or running
            operator.stop(signal.SIGKILL)
            time.sleep(rng.uniform(0.0, 1.0))
            restarted = time.monotonic()
            operator.start()
            items = _all_completed(ns, [j["metadata"]["name"] for j in jobs], timeout=120)
            converge.append(time.monotonic() - restarted)
            assert all(j["status"]["attempt"] == 1 for j in items), "a kill caused a retry"
    sampler.assert_never_overcommitted(min_samples=RUNS * 5)
    print(f"converged after restart: median {sorted(converge)[len(converge) // 2]:.1f}s, "
          f"max {max(converge):.1f}s over {RUNS} kills")
    assert max(converge) < 60
