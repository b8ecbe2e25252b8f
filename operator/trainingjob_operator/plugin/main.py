"""`kubectl trainingjob`: the argparse wiring. Each command reads through `kubectl.py`,
decides and formats with the pure modules, prints, and returns its exit code."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from trainingjob_operator.models import TrainingJob, Unreadable, read_job
from trainingjob_operator.plugin import actions, table, view
from trainingjob_operator.plugin.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    PluginError,
    ambiguous,
    not_found,
)
from trainingjob_operator.plugin.kubectl import Kubectl, find_kubectl
from trainingjob_operator.plugin.summary import SUMMARY_KEYS, is_active, worker_pods
from trainingjob_operator.plugin.timefmt import parse_timeout
from trainingjob_operator.text import printable

PROG = "kubectl trainingjob"
SUMMARY_HELP = f"""\
-o json: list prints {{"items": [JOB...]}}; view prints one JOB with "history" and "pods".
JOB keys: {", ".join(SUMMARY_KEYS)}.
  workers = {{ready, total, succeeded, failed}};
  queue (Pending only, else null) = {{position, namespacePosition, gpusNeeded, gpusFree,
  largestNodeGpus, updated}}; times are RFC 3339 strings or null; phase is null until the
  operator has seen the job.
view adds: history = [{{time, phase, reason, message, attempt, seconds, ongoing}}] (seconds
  spent in that phase; null for the final phase; ongoing = the current phase of an active job,
  counted up to now), pods = [{{worker, pod, node, state, attempt, started}}]."""
WAIT_HELP = """\
exit codes: 0 Completed; 1 Failed, DeployFailed or Stopped; 2 timed out, not found or usage.
-o json prints {"name", "namespace", "phase", "reason", "message", "result", "exitCode"};
result is the final phase, Timeout (still active) or NotFound."""
EPILOG = """\
Global flags (-n, -A, --context, --kubeconfig) go after `kubectl trainingjob` and are passed
to kubectl. -A finds a job by name in any namespace; for list it lists every namespace.
kubectl is found on PATH, or set KUBECTL=/path/to/kubectl.
Exit codes: 0 success, 1 failure (job failed, or kubectl/the API refused), 2 usage error,
job not found, or wait timed out."""


def _global_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The kubectl flags; given again after the command they win (defaults suppressed
    there so a command's parser does not erase what was given before it)."""
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("-n", "--namespace", default=default(None),
                        help="namespace (default: the context's)")
    parser.add_argument("-A", "--all-namespaces", action="store_true", default=default(False),
                        help="every namespace (list), or find the job by name in any")
    parser.add_argument("--context", default=default(None), help="kubeconfig context")
    parser.add_argument("--kubeconfig", default=default(None), help="kubeconfig file")


def _output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text",
                        help="json for scripts (keys below)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return value


def _timeout(text: str) -> str:
    try:
        parse_timeout(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=raw, epilog=EPILOG,
        description="List, view, follow, stop and wait for TrainingJobs.")
    _global_flags(parser, suppress=False)
    flags = argparse.ArgumentParser(add_help=False)
    _global_flags(flags, suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("list", parents=[flags], formatter_class=raw, epilog=SUMMARY_HELP,
                            help="active jobs (--all: finished ones too)",
                            description="Active jobs (Pending, Created, Deploying, Running); "
                            "--all includes finished ones. QUEUE is the place in the GPU "
                            "queue while Pending (1 = next).")
    p.add_argument("--all", action="store_true", dest="include_finished",
                   help="include finished jobs (Completed, DeployFailed, Failed, Stopped)")
    _output_flag(p)

    p = commands.add_parser("view", parents=[flags], formatter_class=raw, epilog=SUMMARY_HELP,
                            help="one job: state, workers, queue, history",
                            description="Phase, reason and message, workers and their pods, "
                            "queue place while Pending, times, and the history with the time "
                            "spent in each phase.")
    p.add_argument("name")
    _output_flag(p)

    p = commands.add_parser("logs", parents=[flags], formatter_class=raw,
                            help="the workers' training logs",
                            description="The training container's logs of every worker, "
                            "each line prefixed [worker-i]; with --worker N, worker N's "
                            "alone, unprefixed. Runs kubectl logs.")
    p.add_argument("name")
    p.add_argument("--worker", type=_positive, metavar="N", help="only worker N (0-based)")
    p.add_argument("--tail", type=_positive, metavar="N", help="the last N lines per worker")
    p.add_argument("-f", "--follow", action="store_true", help="stream new lines as written")

    p = commands.add_parser("stop", parents=[flags], formatter_class=raw,
                            help="stop a job (spec.stop: true)",
                            description="Set spec.stop: true. Running workers get SIGTERM and "
                            "terminationGracePeriodSeconds to checkpoint; a queued job leaves "
                            "the queue. The job ends Stopped. A finished job is left as it is.")
    p.add_argument("name")

    p = commands.add_parser("wait", parents=[flags], formatter_class=raw, epilog=WAIT_HELP,
                            help="wait until a job finishes; exit code by outcome",
                            description="Wait until the job ends (one watch, no polling), "
                            "then print how it ended.")
    p.add_argument("name")
    p.add_argument("--timeout", type=_timeout, metavar="DURATION",
                   help="give up after this long: 90s, 10m, 1h30m, 2d (default: no limit)")
    _output_flag(p)
    return parser


class Session:
    """What every command needs: kubectl, the clock, the terminal width, the output."""

    def __init__(self, args: argparse.Namespace, kubectl: Kubectl, now: datetime,
                 width: int) -> None:
        self.args = args
        self.kubectl = kubectl
        self.now = now
        self.width = width

    def namespace_for_messages(self) -> str:
        return str(self.args.namespace) if self.args.namespace else \
            self.kubectl.current_namespace()

    def find(self, name: str) -> TrainingJob | Unreadable:
        """The job by name, in -n's namespace (or the context's), or in any with -A."""
        if self.args.all_namespaces:
            found = [b for b in self.kubectl.list_jobs(None, True)
                     if (b.get("metadata") or {}).get("name") == name]
            if not found:
                raise not_found(name, None, None)
            if len(found) > 1:
                raise ambiguous(name, sorted(b["metadata"].get("namespace", "") for b in found))
            return read_job(found[0])
        body = self.kubectl.get_job(name, self.args.namespace)
        if body is None:
            raise self.not_found(name)
        return read_job(body)

    def not_found(self, name: str) -> PluginError:
        namespace = self.namespace_for_messages()
        try:
            everywhere = self.kubectl.list_jobs(None, True)
        except PluginError:  # e.g. not allowed to list cluster-wide
            return not_found(name, namespace, None)
        return not_found(name, namespace, sorted(
            b["metadata"].get("namespace", "") for b in everywhere
            if b["metadata"].get("name") == name and b["metadata"].get("namespace") != namespace))

    def readable(self, name: str) -> TrainingJob:
        job = self.find(name)
        if isinstance(job, Unreadable):
            raise PluginError(f"trainingjob '{name}' cannot be read by this plugin: "
                              f"{job.problems} (kubectl get trainingjob {name} -o yaml "
                              "shows it)", EXIT_FAILED)
        return job


def _print_json(data: Any) -> None:
    """JSON escapes every control character (ensure_ascii) itself."""
    print(json.dumps(data, indent=2))


def _say(text: str, file: TextIO | None = None) -> None:
    """Print text: names, reasons, messages and results come from the cluster (and
    kubectl's errors quote the API server), so no control character reaches the terminal;
    the bodies read are printable already (kubectl.py), this keeps it so for all of it."""
    print(printable(text, multiline=True), file=file or sys.stdout)


def cmd_list(s: Session) -> int:
    args = s.args
    jobs = [read_job(b) for b in s.kubectl.list_jobs(args.namespace, args.all_namespaces)]
    shown = table.select(jobs, args.include_finished)
    if args.output == "json":
        _print_json(table.list_json(shown, s.now))
        return EXIT_OK
    if not shown:
        where = None if args.all_namespaces else s.namespace_for_messages()
        _say(table.empty_message(where, args.include_finished, len(jobs) - len(shown)),
             sys.stderr)
        return EXIT_OK
    _say(table.list_table(shown, s.now, s.width, all_namespaces=args.all_namespaces))
    return EXIT_OK


def cmd_view(s: Session) -> int:
    job = s.find(s.args.name)
    if isinstance(job, Unreadable):
        _say(view.unreadable_text(job, s.now, s.width))
        return EXIT_FAILED
    pods = worker_pods(s.kubectl.list_pods(job.metadata.name, job.metadata.namespace),
                       job.metadata.uid)
    if s.args.output == "json":
        _print_json(view.view_json(job, pods, s.now))
    else:
        _say(view.view_text(job, pods, s.now, s.width))
    return EXIT_OK


def cmd_logs(s: Session) -> int:
    args = s.args
    job = s.readable(args.name)
    pods = worker_pods(s.kubectl.list_pods(job.metadata.name, job.metadata.namespace),
                       job.metadata.uid)
    problem = actions.logs_problem(job, pods, args.worker)
    if problem is not None:
        raise problem
    argv = [*actions.logs_argv(job, pods, args.worker, args.tail, args.follow),
            f"--namespace={job.metadata.namespace}"]
    name = job.metadata.name
    code = s.kubectl.stream(argv, None if args.worker is not None
                            else lambda line: actions.relabel(line, name))
    return EXIT_OK if code == 0 else EXIT_FAILED


def cmd_stop(s: Session) -> int:
    job = s.readable(s.args.name)
    plan = actions.stop_plan(job)
    if not plan.patch:
        _say(plan.message)
        return EXIT_OK
    proc = s.kubectl.patch_stop(job.metadata.name, job.metadata.namespace, actions.STOP_PATCH)
    if proc.returncode != 0:
        body = s.kubectl.get_job(job.metadata.name, job.metadata.namespace)
        now = read_job(body) if body is not None else None
        current = now if isinstance(now, TrainingJob) else None
        message = actions.refused_message(current, proc.stderr)
        if current is not None and not is_active(current):
            _say(message)  # it finished meanwhile: nothing left to stop
            return EXIT_OK
        raise PluginError(message, EXIT_FAILED)
    _say(actions.stopped_message(job))
    return EXIT_OK


def _wait_report(s: Session, job: TrainingJob | None, name: str, namespace: str,
                 text: str, to_stderr: bool) -> int:
    result = actions.wait_result(job, name, namespace)
    if s.args.output == "json":
        _print_json(result)
        if to_stderr:
            _say(text, sys.stderr)
    else:
        _say(text, sys.stderr if to_stderr else sys.stdout)
    return int(result["exitCode"])


def cmd_wait(s: Session) -> int:
    args = s.args
    try:
        job = s.readable(args.name)
    except PluginError as err:
        if err.code != EXIT_USAGE or args.output != "json":
            raise
        namespace = args.namespace or s.kubectl.current_namespace()
        return _wait_report(s, None, args.name, namespace, f"error: {err.message}", True)
    name, namespace = job.metadata.name, job.metadata.namespace
    if job.status.phase is None or job.status.phase.active:
        limit = None if args.timeout is None else parse_timeout(args.timeout)
        outcome, body = s.kubectl.watch_job(name, namespace, limit, actions.has_finished)
        if outcome == "timeout" and body is None:  # no event within the limit: read it once
            body = s.kubectl.get_job(name, namespace)
        parsed = read_job(body) if body is not None else None
        if outcome == "gone" or not isinstance(parsed, TrainingJob):
            return _wait_report(s, None, name, namespace,
                                f"error: trainingjob '{name}' was deleted while waiting", True)
        job = parsed
        if outcome == "timeout":
            return _wait_report(s, job, name, namespace, "error: " + actions.timeout_message(
                job, args.timeout + ("s" if args.timeout.isdigit() else "")), True)
    return _wait_report(s, job, name, namespace, actions.wait_text(job), False)


COMMANDS: dict[str, Callable[[Session], int]] = {
    "list": cmd_list, "view": cmd_view, "logs": cmd_logs, "stop": cmd_stop, "wait": cmd_wait}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        kubectl = Kubectl(find_kubectl(), context=args.context, kubeconfig=args.kubeconfig)
        session = Session(args, kubectl, datetime.now(UTC), shutil.get_terminal_size().columns)
        return COMMANDS[args.command](session)
    except PluginError as err:
        _say(f"error: {err.message}", sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `kubectl trainingjob logs x | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
