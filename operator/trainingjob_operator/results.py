"""Pure: what a completed job produced, as its rank-0 worker reports it.

The contract for training code: the main container of rank 0 may end by writing one JSON
object to /dev/termination-log (the kubelet keeps at most 4 KiB of it), e.g.
`{"model": "s3://bucket/run-7/model", "metrics": {"loss": 0.12}}`. On Completed the operator
copies it into status.result: `model` a string of at most 1024 characters, `metrics` at most
32 names with finite numbers. Anything else is ignored with a Warning Event that says why;
a result never fails a job that succeeded. Control characters (JSON's \u001b and the like)
are removed from the model and the metric names, which people read in status, Events and
the plugin's output (text.printable), and the Event says so.
"""

from __future__ import annotations

import json
import math
from typing import Any

from trainingjob_operator.models import JobResult
from trainingjob_operator.text import printable

MODEL_LIMIT = 1024
METRICS_LIMIT = 32
NAME_LIMIT = 63


def parse_result(message: str | None) -> tuple[JobResult | None, str]:
    """(the result, "") or (None or a partial result, why part or all of it was ignored).
    An empty message is no result and no problem."""
    if not message or not message.strip():
        return None, ""
    try:
        data: Any = json.loads(message)
    except json.JSONDecodeError as err:
        return None, f"the termination message is not JSON ({err.msg} at line {err.lineno})"
    except ValueError as err:  # e.g. a number too long to convert
        return None, f"the termination message is not JSON ({err})"
    if not isinstance(data, dict):
        return None, f"the termination message is JSON but not an object ({type(data).__name__})"
    problems = [f"unknown key {k!r}" for k in sorted(data) if k not in ("model", "metrics")]
    model = data.get("model")
    if model is not None and (not isinstance(model, str) or len(model) > MODEL_LIMIT):
        problems.append(f"model must be a string of at most {MODEL_LIMIT} characters")
        model = None
    if model is not None and printable(model) != model:
        problems.append("control characters were removed from model")
        model = printable(model)
    metrics: dict[str, float] = {}
    raw = data.get("metrics")
    if raw is not None and not isinstance(raw, dict):
        problems.append("metrics must be an object of names and numbers")
        raw = None
    unprintable = False
    for name, value in (raw or {}).items():
        if len(metrics) == METRICS_LIMIT:
            problems.append(f"more than {METRICS_LIMIT} metrics: the rest are left out")
            break
        shown = printable(name)
        unprintable = unprintable or shown != name
        number = _number(value)
        if number is None or len(name) > NAME_LIMIT or (name and not shown):
            problems.append(f"metric {shown[:NAME_LIMIT]!r} is not a finite number with a name "
                            f"of at most {NAME_LIMIT} characters")
            continue
        metrics[shown] = number
    if unprintable:
        problems.append("control characters were removed from metric names")
    result = JobResult(model=model, metrics=metrics) if model is not None or metrics else None
    return result, "; ".join(problems)


def _number(value: Any) -> float | None:
    """A finite number (JSON's true and false are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
