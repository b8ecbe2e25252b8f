from __future__ import annotations

import json

from trainingjob_operator.models import Unreadable, read_job
from trainingjob_operator.plugin.summary import SUMMARY_KEYS
from trainingjob_operator.plugin.table import (
    empty_message,
    list_json,
    list_table,
    render,
    row,
    select,
)

from tests.unit.plugin.jobs import NOW, completed, job, pending, running


def test_list_shows_active_jobs_by_default_and_all_with_all() -> None:
    new = job("new")  # not seen by the operator yet: about to be queued, so active
    jobs = [running(), completed(), pending(), new]
    assert select(jobs, include_finished=False) == [jobs[0], jobs[2], new]
    assert select(jobs, include_finished=True) == jobs


def test_row_columns() -> None:
    assert row(running(), NOW) == ["llama-ft", "Running", "WorkersRunning", "2/2", "16", "",
                                   "5m"]
    assert row(pending(position=3), NOW)[1:6] == ["Pending", "QueuedBehindHigherPriority",
                                                  "0/2", "16", "3"]
    assert row(completed(), NOW)[1:6] == ["Completed", "Succeeded", "0/2", "16", ""]
    assert row(job("new", workers=4, gpusPerWorker=2), NOW)[1:6] == ["-", "", "0/4", "8", ""]


def test_queue_position_only_while_pending() -> None:
    stale = running().model_copy(update={"status": running().status.model_copy(
        update={"queue": pending().status.queue})})
    assert row(stale, NOW)[5] == ""


def test_table_fits_80_columns_for_typical_names() -> None:
    names = ["llama-ft", "llama-70b-lora-sweep-07", "bert-base-finetune-2026-01", "x"]
    jobs = []
    for n in names:
        for j in (running(), pending(position=12), completed()):
            jobs.append(j.model_copy(update={"metadata": j.metadata.model_copy(
                update={"name": n})}))
    jobs.append(job("setup-broke", status={"phase": "DeployFailed", "reason": "SetupFailed"}))
    out = list_table(jobs, NOW, 80)
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "REASON", "WORKERS", "GPUS", "QUEUE", "AGE"]
    assert max(len(line) for line in lines) <= 80, out
    # Names are never cut; a long reason is, with an ellipsis.
    for n in names:
        assert any(line.startswith(n + " ") for line in lines)
    assert "QueuedBeh" in out and "…" in out


def test_table_uses_kubectl_spacing_when_it_fits() -> None:
    out = list_table([running()], NOW, 80)
    assert out.splitlines() == [
        "NAME       PHASE     REASON           WORKERS   GPUS   QUEUE   AGE",
        "llama-ft   Running   WorkersRunning   2/2       16             5m"]


def test_all_namespaces_adds_a_column_and_still_fits() -> None:
    jobs = [running(), pending()]
    out = list_table(jobs, NOW, 80, all_namespaces=True)
    assert out.splitlines()[0].startswith("NAMESPACE")
    assert out.splitlines()[1].startswith("team-a")
    assert max(len(line) for line in out.splitlines()) <= 80, out


def test_render_prints_wider_rather_than_cut_names() -> None:
    long = "a-very-long-training-job-name-that-someone-really-chose-x"
    out = render(("NAME", "REASON"), [[long, "WorkersRunning"]], 40)
    assert long in out


def test_unreadable_job_gets_a_row_and_json() -> None:
    bad = read_job({"metadata": {"name": "old", "namespace": "team-a"},
                    "spec": {"workers": "many"}, "status": {"phase": "Running"}})
    assert isinstance(bad, Unreadable)
    assert row(bad, NOW)[:3] == ["old", "Running", "Unreadable"]
    item = list_json([bad], NOW)["items"][0]
    assert tuple(item) == SUMMARY_KEYS
    assert item["reason"] == "Unreadable" and item["active"] is True


def test_list_json_shape_is_stable() -> None:
    out = list_json([running(), pending()], NOW)
    assert json.loads(json.dumps(out)) == out
    first, second = out["items"]
    assert tuple(first) == SUMMARY_KEYS and tuple(second) == SUMMARY_KEYS
    assert first["phase"] == "Running" and first["workers"] == {
        "ready": 2, "total": 2, "succeeded": 0, "failed": 0}
    assert first["queue"] is None and first["ageSeconds"] == 300 and first["active"] is True
    assert second["queue"] == {"position": 3, "namespacePosition": 2, "gpusNeeded": 16,
                               "gpusFree": 8, "largestNodeGpus": 8,
                               "updated": "2026-01-01T11:59:58Z"}


def test_empty_messages_say_what_was_hidden() -> None:
    assert empty_message("team-a", False, 2) == (
        "No active trainingjobs in namespace 'team-a'; 2 finished jobs are hidden "
        "(--all shows them).")
    assert empty_message(None, False, 0) == (
        "No active trainingjobs in any namespace (--all shows finished ones too).")
    assert empty_message("x", True, 0) == "No trainingjobs found in namespace 'x'."
