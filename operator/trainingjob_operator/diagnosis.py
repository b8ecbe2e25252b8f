"""Pure: known training failures, recognised in a failed container's own output.

The kubelet hands the operator the tail of a container's log as its termination message
(terminationMessagePolicy FallbackToLogsOnError). Upstream v1.33, pkg/kubelet/kuberuntime/
kuberuntime_container.go: only for a non-zero exit and an empty /dev/termination-log,
readLastStringFromContainerLogs keeps the last 80 lines, then the last 2048 bytes of them
(a circular buffer: the first line may be cut), stdout and stderr in the order the CRI log
holds them; tests/e2e/test_real_node_outcomes.py checks this on the real node.

`TABLE` is the one place to add a pattern: the first row that matches, in table order, names
the reason, so an output that shows two failures (a CUDA out-of-memory that then breaks NCCL)
gets the one that caused the other.
Output no row matches keeps the reason the exit alone gives (Error, SetupFailed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trainingjob_operator.text import printable
from trainingjob_operator.vocabulary import MAIN_CONTAINER, SETUP_CONTAINER, Phase, Reason

OUTPUT_LIMIT = 1024  # bytes of output kept in status.failure
LINE_LIMIT = 240     # characters of the one line status.message quotes


@dataclass(frozen=True)
class Row:
    reason: Reason
    phase: Phase
    container: str  # which container's output the row reads
    pattern: re.Pattern[str]
    advice: str  # what to change; {requirement} is the package pip named, if any


def _any(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)


TABLE: tuple[Row, ...] = (
    Row(Reason.GPU_OUT_OF_MEMORY, Phase.FAILED, MAIN_CONTAINER, _any(
        r"CUDA out of memory", r"CUDA error: out of memory", r"OutOfMemoryError",
        r"HIP out of memory", r"CUBLAS_STATUS_ALLOC_FAILED", r"cudaErrorMemoryAllocation",
        r"Cuda failure 'out of memory'"),
        "the GPU ran out of memory (this is GPU memory, not the container's memory limit); "
        "lower the batch size, turn on gradient checkpointing or mixed precision, or give "
        "each worker more GPU memory (more or larger GPUs per worker)"),
    Row(Reason.RENDEZVOUS_FAILED, Phase.FAILED, MAIN_CONTAINER, _any(
        r"Rendezvous\w*Error", r"rendezvous failed", r"DistNetworkError", r"DistStoreError",
        r"DistBackendError", r"NCCL error", r"nccl(?:System|Internal|Remote|Unhandled\w*)Error",
        r"Watchdog caught collective operation timeout", r"Timed out initializing process group",
        r"failed to connect to \S*:\d+.*Connection refused"),
        "the workers could not meet or talk (rendezvous or NCCL): check that every worker "
        "started (kubectl trainingjob view), that MASTER_ADDR and MASTER_PORT are what the "
        "training code uses, and that no NetworkPolicy blocks traffic between the workers"),
    Row(Reason.DEPENDENCIES_FAILED, Phase.DEPLOY_FAILED, SETUP_CONTAINER, _any(
        r"No matching distribution found for (?P<missing>\S+)",
        r"Could not find a version that satisfies the requirement (?P<unsatisfied>\S+)",
        r"ResolutionImpossible",
        r"Cannot install (?P<conflict>.+?) because these package versions have conflicting"),
        "pip could not resolve the requirements{requirement}; pin a version that exists for "
        "this image's Python, fix the conflicting pins, or point pip at the index that has it"),
)


@dataclass(frozen=True)
class Diagnosis:
    row: Row
    line: str         # the output line that matched
    requirement: str  # what pip named, or ""

    @property
    def advice(self) -> str:
        named = f" ({self.requirement})" if self.requirement else ""
        return self.row.advice.format(requirement=named)


def diagnose(container: str, output: str) -> Diagnosis | None:
    """The first row of TABLE for this container that the output matches, if any."""
    output = printable(output, multiline=True)
    for row in TABLE:
        if row.container != container:
            continue
        for line in output.splitlines():
            found = row.pattern.search(line)
            if found is not None:
                named = next((v for v in found.groupdict().values() if v), "")
                return Diagnosis(row, _clip(line.strip()), named.strip())
    return None


_RESTATED_EXIT = re.compile(r"^exit(?:ing|ed)? (?:with )?(?:code|status) \d+\W*$", re.IGNORECASE)


def last_meaningful_line(output: str) -> str:
    """The last line that says something: it has a letter, and it does not merely restate
    the exit code the status gives anyway."""
    for line in reversed(printable(output, multiline=True).splitlines()):
        text = line.strip()
        if any(ch.isalpha() for ch in text) and not _RESTATED_EXIT.match(text):
            return _clip(text)
    return ""


def tail(output: str, limit: int = OUTPUT_LIMIT) -> str:
    """The last lines of the output that fit in `limit` bytes (UTF-8), cut at a line
    boundary; a single last line longer than that keeps its end. Lines and tabs stay, every
    other control character goes (text.printable): status.failure.output is shown as is."""
    lines = printable(output, multiline=True).rstrip("\n").splitlines()
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        cost = len(line.encode()) + (1 if kept else 0)
        if size + cost > limit:
            break
        kept.append(line)
        size += cost
    if not kept and lines:
        last = lines[-1].encode()[-limit:]
        return last.decode(errors="ignore")
    return "\n".join(reversed(kept))


def _clip(line: str) -> str:
    return line if len(line) <= LINE_LIMIT else line[:LINE_LIMIT - 3] + "..."
