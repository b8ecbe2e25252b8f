"""main's wiring with kubectl replaced by a stub: which calls, what is printed, exit codes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from trainingjob_operator.models import TrainingJob
from trainingjob_operator.plugin.errors import PluginError
from trainingjob_operator.plugin.kubectl import Body, Kubectl, WaitOutcome
from trainingjob_operator.plugin.main import COMMANDS, Session, build_parser

from tests.unit.plugin.jobs import NOW, completed, pending, pod, running


def body(job: TrainingJob) -> Body:
    return job.model_dump(by_alias=True, mode="json", exclude_none=True)


class Stub(Kubectl):
    def __init__(self, *jobs: TrainingJob, after_patch: TrainingJob | None = None,
                 patch_error: str = "", watch: tuple[WaitOutcome, Body | None] = ("met", None),
                 ) -> None:
        super().__init__("kubectl")
        self.jobs = {j.metadata.name: body(j) for j in jobs}
        self.after_patch, self.patch_error, self.watch = after_patch, patch_error, watch
        self.calls: list[Any] = []

    def current_namespace(self) -> str:
        return "team-a"

    def get_job(self, name: str, namespace: str | None) -> Body | None:
        return self.jobs.get(name)

    def list_jobs(self, namespace: str | None, all_namespaces: bool) -> list[Body]:
        return list(self.jobs.values())

    def list_pods(self, job: str, namespace: str) -> list[Body]:
        return []

    def patch_stop(self, name: str, namespace: str,
                   patch: str) -> subprocess.CompletedProcess[str]:
        self.calls.append(("patch", name, namespace, patch))
        if self.after_patch is not None:
            self.jobs[name] = body(self.after_patch)
        return subprocess.CompletedProcess([], 1 if self.patch_error else 0, "",
                                           self.patch_error)

    def watch_job(self, name: str, namespace: str, timeout: float | None,
                  done: Callable[[Body], bool]) -> tuple[WaitOutcome, Body | None]:
        self.calls.append(("watch", name, timeout))
        return self.watch

    def stream(self, args: list[str], transform: Callable[[str], str] | None = None) -> int:
        self.calls.append(("stream", args, transform))
        return 0


def run(stub: Stub, *argv: str) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](Session(args, stub, NOW, 80))


def test_stop_patches_an_active_job(capsys: pytest.CaptureFixture[str]) -> None:
    stub = Stub(running())
    assert run(stub, "stop", "llama-ft") == 0
    assert stub.calls == [("patch", "llama-ft", "team-a", '{"spec": {"stop": true}}')]
    assert "stop requested: its 2 workers get SIGTERM" in capsys.readouterr().out


def test_stop_refused_because_the_job_just_finished_says_how_it_ended(
        capsys: pytest.CaptureFixture[str]) -> None:
    refusal = ('The TrainingJob "llama-ft" is invalid: spec: Invalid value: "object": the job '
               'has finished; its spec can no longer change')
    stub = Stub(running(), after_patch=completed(), patch_error=refusal)
    assert run(stub, "stop", "llama-ft") == 0
    out = capsys.readouterr().out
    assert out.startswith("trainingjob 'llama-ft' already finished: Completed (Succeeded)")
    assert f"the API server said: {refusal}" in out


def test_stop_refused_for_another_reason_fails() -> None:
    stub = Stub(running(), patch_error="Error from server (Forbidden): nope")
    with pytest.raises(PluginError) as err:
        run(stub, "stop", "llama-ft")
    assert err.value.code == 1
    assert "the API server refused the stop: Error from server (Forbidden)" in err.value.message


def test_wait_returns_by_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(Stub(running(), watch=("met", body(completed()))), "wait", "llama-ft") == 0
    assert "Completed (Succeeded)" in capsys.readouterr().out
    assert run(Stub(running(), watch=("gone", None)), "wait", "llama-ft") == 2
    assert "was deleted while waiting" in capsys.readouterr().err
    stub = Stub(running(), watch=("timeout", None))
    assert run(stub, "wait", "llama-ft", "--timeout", "90") == 2
    assert stub.calls == [("watch", "llama-ft", 90.0)]
    assert "timed out after 90s waiting for trainingjob 'llama-ft'" in capsys.readouterr().err


def test_wait_on_a_finished_job_does_not_watch(capsys: pytest.CaptureFixture[str]) -> None:
    stub = Stub(completed())
    assert run(stub, "wait", "llama-ft") == 0 and stub.calls == []


def test_logs_stream_every_worker_relabelled() -> None:
    stub = Stub(running())
    stub.list_pods = lambda job, namespace: [  # type: ignore[method-assign]
        {"metadata": {"name": f"llama-ft-worker-{i}", "labels": {
            "training.dev/worker-index": str(i)}},
         "status": {"containerStatuses": [{"name": "trainer", "state": {"running": {}}}]}}
        for i in (0, 1)]
    assert run(stub, "logs", "llama-ft") == 0
    (_, argv, transform), = stub.calls
    assert argv[:3] == ["logs", "--selector=training.dev/job-name=llama-ft", "--prefix"]
    assert argv[-1] == "--namespace=team-a"
    assert transform is not None and transform("[pod/llama-ft-worker-1/trainer] hi\n") == \
        "[worker-1] hi\n"


def test_list_without_active_jobs_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(Stub(completed()), "list") == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("No active trainingjobs in namespace 'team-a'; 1 finished job is "
                            "hidden (--all shows them).\n")
    queued = pending().model_copy(update={"metadata": pending().metadata.model_copy(
        update={"name": "queued"})})
    assert run(Stub(completed(), queued), "list", "--all") == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


# What a hostile worker or tenant could leave in a job's status: ANSI colour and cursor
# moves, an OSC 8 link, a CR that overwrites, a bidi override, a line break that fakes a line.
HOSTILE = ("\x1b[2J\x1b[1;1H\x1b[32mok\x1b[0m\r\x1b]8;;https://evil.example/\x1b\\link"
           "\x1b]8;;\x1b\\\u202edone\nPhase:     Completed")


def _hostile() -> TrainingJob:
    done = body(completed())
    done["status"].update({
        "reason": f"Succeeded{HOSTILE}", "message": HOSTILE,
        "result": {"model": f"s3://b/{HOSTILE}", "metrics": {f"loss{HOSTILE}": 0.1}},
        "failure": {"worker": 0, "pod": "llama-ft-worker-0", "container": "trainer",
                    "output": f"line 1\n{HOSTILE}"}})
    return TrainingJob.model_validate(done)


def _printable(text: str) -> bool:
    return all(line.isprintable() for line in text.split("\n"))


@pytest.mark.parametrize("argv", [("view", "llama-ft"), ("list", "--all"), ("wait", "llama-ft"),
                                  ("stop", "llama-ft")])
def test_nothing_from_the_cluster_reaches_the_terminal_with_control_characters(
        argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    run(Stub(_hostile()), *argv)
    out = capsys.readouterr()
    assert _printable(out.out) and _printable(out.err), repr(out)
    assert "\x1b" not in out.out and "\r" not in out.out and "\u202e" not in out.out


def test_the_bodies_kubectl_reads_are_printable_and_the_output_tail_keeps_its_lines(
        tmp_path: Any) -> None:
    fake = tmp_path / "kubectl"
    fake.write_text("#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(json.loads("
                    f"{json.dumps(json.dumps(body(_hostile())))})))\n")
    fake.chmod(0o755)
    found = Kubectl(str(fake)).get_job("llama-ft", "team-a")
    assert found is not None
    status = found["status"]
    assert status["message"] == "ok linkdone Phase:     Completed"  # one line: no fake line
    assert status["result"]["model"] == "s3://b/ok linkdone Phase:     Completed"
    assert status["failure"]["output"] == "line 1\nok\nlinkdone\nPhase:     Completed"


def test_view_shows_only_the_pods_the_job_owns(capsys: pytest.CaptureFixture[str]) -> None:
    job = running().model_copy(update={"metadata": running().metadata.model_copy(
        update={"uid": "job-uid"})})
    mine = pod(0)
    mine["metadata"]["ownerReferences"] = [{"apiVersion": "training.dev/v1alpha1",
                                            "kind": "TrainingJob", "name": "llama-ft",
                                            "uid": "job-uid", "controller": True}]
    squatter = pod(1, phase="Succeeded", main={"terminated": {"exitCode": 0}})
    stub = Stub(job)
    stub.list_pods = lambda job, namespace: [mine, squatter]  # type: ignore[method-assign]
    assert run(stub, "view", "llama-ft") == 0
    out = capsys.readouterr().out
    assert "llama-ft-worker-0" in out
    assert "Completed (exit 0)" not in out and "(no pod yet)" in out
