"""spec.ttlSecondsAfterFinished on kwok, with many jobs: the sweep deletes each finished job
with its pods once its time is over, and leaves alone the jobs that set none."""

from __future__ import annotations

import json

import pytest

from tests.kube import Kubectl, eventually, training_job

pytestmark = [pytest.mark.kwok, pytest.mark.usefixtures("running_operator")]
JOBS = 60


def test_many_finished_jobs_go_with_their_pods_after_their_ttl(ns: Kubectl) -> None:
    quick = {"outcome": "succeed", "run-duration": "1s"}
    items = [training_job(f"ttl-{i}", gpus=0, annotations=quick, ttlSecondsAfterFinished=5)
             for i in range(JOBS)]
    items += [training_job("kept", gpus=0, annotations=quick),  # no TTL: kept
              training_job("failed-ttl", gpus=0, ttlSecondsAfterFinished=5,
                           annotations={"outcome": "fail", "run-duration": "1s"})]
    ns.run("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List",
                                                      "items": items}))

    def left() -> list[str]:
        return ns.run("get", "tj", "-o", "name").stdout.split()

    eventually(lambda: left() == ["trainingjob.training.dev/kept"], timeout=120,
               what="every job with a TTL deleted, the one without kept")
    eventually(lambda: [p["metadata"]["name"] for p in ns.json("get", "pods")["items"]]
               == ["kept-worker-0"], timeout=60, what="their pods garbage-collected")
    # Each went only after it finished: its Event of the final transition is there.
    ended = {e["involvedObject"]["name"]: e["reason"] for e in ns.json("get", "events")["items"]
             if e["reason"] in ("Succeeded", "Error")}
    assert {f"ttl-{i}" for i in range(JOBS)} <= {n for n, r in ended.items() if r == "Succeeded"}
    assert ended["failed-ttl"] == "Error"
    kept = ns.json("get", "tj", "kept")["status"]
    assert kept["phase"] == "Completed"
