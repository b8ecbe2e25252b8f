from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trainingjob_operator.diagnosis import (
    OUTPUT_LIMIT,
    TABLE,
    diagnose,
    last_meaningful_line,
    tail,
)
from trainingjob_operator.text import printable
from trainingjob_operator.vocabulary import MAIN_CONTAINER, SETUP_CONTAINER, Reason

# Lines as the tools print them (torch 2.x, torchrun's elastic agent, NCCL, pip 24).
GPU_OOM = ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has "
           "a total capacity of 79.15 GiB of which 1.02 GiB is free.")
RENDEZVOUS = ("torch.distributed.DistNetworkError: The client socket has failed to connect to "
              "[job-worker-0.job-workers.ns.svc]:29500 (errno: 111 - Connection refused).")
PIP = ("ERROR: Could not find a version that satisfies the requirement torch==9.9 (from "
       "versions: none)\nERROR: No matching distribution found for torch==9.9")


@pytest.mark.parametrize(("container", "output", "reason"), [
    (MAIN_CONTAINER, f"step 3/10\nTraceback (most recent call last):\n{GPU_OOM}", "GPUOutOfMemory"),
    (MAIN_CONTAINER, "RuntimeError: CUDA error: out of memory", "GPUOutOfMemory"),
    (MAIN_CONTAINER, RENDEZVOUS, "RendezvousFailed"),
    (MAIN_CONTAINER, "torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError",
     "RendezvousFailed"),
    (MAIN_CONTAINER, "rendezvous failed: connection refused to w-0.w.ns.svc:29500 after 3s",
     "RendezvousFailed"),
    (MAIN_CONTAINER, "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp",
     "RendezvousFailed"),
    (SETUP_CONTAINER, PIP, "DependenciesFailed"),
    (SETUP_CONTAINER, "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io",
     "DependenciesFailed"),
])
def test_known_failures_are_recognised(container: str, output: str, reason: str) -> None:
    found = diagnose(container, output)
    assert found is not None and found.row.reason == reason


def test_a_row_reads_only_its_own_containers_output() -> None:
    assert diagnose(SETUP_CONTAINER, GPU_OOM) is None  # setup never fails with GPU OOM
    assert diagnose(MAIN_CONTAINER, PIP) is None


def test_pip_names_the_requirement_and_the_line_that_said_so() -> None:
    found = diagnose(SETUP_CONTAINER, PIP)
    assert found is not None and found.requirement == "torch==9.9"
    assert found.line.startswith("ERROR: Could not find a version")
    assert "(torch==9.9)" in found.advice


def test_the_cause_wins_over_its_echo_in_the_same_output() -> None:
    found = diagnose(MAIN_CONTAINER, f"{RENDEZVOUS}\n{GPU_OOM}")  # OOM broke NCCL
    assert found is not None and found.row.reason is Reason.GPU_OUT_OF_MEMORY


def test_unknown_output_has_no_diagnosis() -> None:
    assert diagnose(MAIN_CONTAINER, "ValueError: bad shard count 3 for 4 workers") is None
    assert diagnose(MAIN_CONTAINER, "") is None


KNOWN = {r.reason: line for r, line in zip(TABLE, (GPU_OOM, RENDEZVOUS, PIP), strict=True)}


@given(st.lists(st.one_of(st.text(max_size=80), st.sampled_from(list(KNOWN.values()))),
                max_size=12), st.sampled_from([MAIN_CONTAINER, SETUP_CONTAINER]))
def test_any_output_classifies_to_exactly_one_reason_in_table_order(lines: list[str],
                                                                    container: str) -> None:
    output = "\n".join(lines)
    found = diagnose(container, output)
    output = printable(output, multiline=True)  # what the table reads
    mine = [r for r in TABLE if r.container == container]
    matching = [r for r in mine if any(r.pattern.search(x) for x in output.splitlines())]
    # One answer: the first row that matches, or none (today's reasons) if no row does.
    assert (found.row if found else None) == (matching[0] if matching else None)
    assert found is None or found.line in [x.strip()[:240] for x in output.splitlines()] or \
        found.line.endswith("...")


@given(st.text(max_size=3000))
def test_tail_is_bounded_and_ends_at_a_line_boundary(output: str) -> None:
    kept = tail(output)
    assert len(kept.encode()) <= OUTPUT_LIMIT
    assert printable(kept, multiline=True) == kept
    lines = printable(output, multiline=True).rstrip("\n").splitlines()
    if lines and len(lines[-1].encode()) <= OUTPUT_LIMIT:
        assert kept.splitlines() == lines[len(lines) - len(kept.splitlines()):]


def test_the_last_meaningful_line_skips_blanks_separators_and_restated_exit_codes() -> None:
    out = "loading shards\nValueError: 3 shards for 4 workers\n=====\n\nexiting with code 1\n"
    assert last_meaningful_line(out) == "ValueError: 3 shards for 4 workers"
    assert last_meaningful_line("") == "" and last_meaningful_line("----\n") == ""


def test_an_output_tail_keeps_its_lines_but_no_escape_sequence_cr_or_bidi_override() -> None:
    """What the kubelet hands over is the container's own output: a progress bar's CR, a
    logger's colours, an OSC 8 link or a bidi override must not reach status.failure.output,
    the line status.message quotes, or a terminal showing them."""
    output = ("\x1b[32mepoch 1\x1b[0m\n 10%|#   |\r 50%|##  |\r\x1b[2K\n"
              "\x1b]8;;https://evil.example/\x1b\\see docs\x1b]8;;\x1b\\\n"
              f"{GPU_OOM}\u202e\x07\n")
    kept = tail(output)
    assert kept == f"epoch 1\n 10%|#   |\n 50%|##  |\nsee docs\n{GPU_OOM}"
    found = diagnose(MAIN_CONTAINER, output)
    assert found is not None and found.row.reason is Reason.GPU_OUT_OF_MEMORY
    assert found.line == GPU_OOM
    assert last_meaningful_line("done\nValueError: bad\x1b[31m shard\u2066\n") == \
        "ValueError: bad shard"
