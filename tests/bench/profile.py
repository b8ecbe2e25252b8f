"""py-spy profiles of the operator during a run, and their summary (pure)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"


@contextmanager
def recording(pid: int, to: Path | None, rate: int = 67) -> Iterator[None]:
    """Sample `pid` (every thread, idle ones left out) into `to` as collapsed stacks."""
    if to is None:
        yield
        return
    spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--rate", str(rate),
                            "--format", "raw", "--output", str(to), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes the file when interrupted
        spy.wait(timeout=60)


def _function(frame: str) -> str:
    """`name (path/to/module.py:12)` -> `module.py:name`."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{module}:{name}" if module else name


def inclusive(collapsed: str) -> tuple[dict[str, int], int]:
    """Samples in which each function is on the stack, and the total samples."""
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        total += int(n)
        for fn in {_function(f) for f in stack.split(";")}:
            counts[fn] = counts.get(fn, 0) + int(n)
    return counts, total


def summary(collapsed: str, top: int = 25) -> str:
    counts, total = inclusive(collapsed)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join([f"  profile: {total} samples; functions by share of samples on stack:",
                      *(f"    {n / total:6.1%}  {fn}" for fn, n in ranked)]) if total else \
        "  profile: no samples"
