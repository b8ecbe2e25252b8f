"""The operator's Prometheus endpoint, scraped the way Prometheus does: plain HTTP GET."""

from __future__ import annotations

import urllib.request

import pytest

from tests.conftest import Operator
from tests.kube import Kubectl, eventually, training_job

pytestmark = [pytest.mark.kwok]


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_count_admissions_phases_waits_and_timeouts(
        ns: Kubectl, running_operator: Operator) -> None:
    def up() -> dict[str, float] | None:
        try:
            return _scrape(running_operator.metrics_url)
        except OSError:  # the operator is still starting
            return None
    before = eventually(up, timeout=30, what="the metrics endpoint")
    ns.apply(training_job("counted", annotations={"outcome": "succeed", "run-duration": "1s"}))
    ns.apply(training_job("late", gpus=16, timeouts={"queueSeconds": 1}))
    ns.wait("tj/counted", "condition=Complete", timeout=60)
    ns.wait("tj/late", "condition=Failed", timeout=60)

    # The counters move once the writes that kubectl wait saw have returned. Wait for the
    # two this test's jobs must move (the census of Completed jobs may count earlier tests'
    # jobs, so it says nothing of these).
    ended = ('trainingjob_transitions_total{phase="Completed",reason="Succeeded"}',
             'trainingjob_timeouts_total{timeout="queue"}')

    def grew() -> dict[str, float] | None:
        now = _scrape(running_operator.metrics_url)
        return now if all(now.get(n, 0.0) > before.get(n, 0.0) for n in ended) else None
    after = eventually(grew, timeout=10, what="the counters to count both jobs' ends")

    def delta(name: str) -> float:
        return after[name] - before.get(name, 0.0)
    assert delta("trainingjob_admissions_total") >= 1
    assert delta("trainingjob_queue_wait_seconds_count") >= 1
    assert delta("trainingjob_deploy_seconds_count") >= 1
    assert after['trainingjob_jobs{phase="DeployFailed"}'] >= 1
    assert 'trainingjob_retries_total' in after
    assert 'trainingjob_queue_gpus_requested' in after
