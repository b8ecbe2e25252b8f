"""Pure: when one job's own data makes a step of the operator raise (placing, rendering or
deciding it), which field is to blame and what its status says.

The schema and validation.py refuse what they know of at apply; this is the backstop for
what they let through, such as an object stored before a schema change. The step is tried
again without one part of the spec at a time, narrowing down to the smallest part whose
removal lets it pass. Only a failing job pays for this, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from trainingjob_operator.models import TrainingJob

MAX_DEPTH = 8  # spec.template.spec.affinity.nodeAffinity.required....terms[0].x is 7 deep
MAX_ERROR = 300  # characters of the exception's own text in the message

Segment = str | int


def _children(value: Any) -> list[tuple[Segment, str]]:
    """The parts of a value that can be left out, with their names as the API spells them."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return [(n, fields[n].alias or to_camel(n)) for n in sorted(value.model_fields_set)
                if n in fields and not fields[n].is_required()]
    if isinstance(value, dict):
        return [(k, str(k)) for k in value]
    if isinstance(value, list):
        return [(i, f"[{i}]") for i in range(len(value))]
    return []


def _without(value: Any, seg: Segment) -> Any:
    if isinstance(value, BaseModel):
        default = type(value).model_fields[str(seg)].get_default(call_default_factory=True)
        return value.model_copy(update={str(seg): default})
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != seg}
    assert isinstance(seg, int)
    return [*value[:seg], *value[seg + 1:]]


def _at(value: Any, seg: Segment) -> Any:
    return getattr(value, str(seg)) if isinstance(value, BaseModel) else value[seg]


def _put(value: Any, seg: Segment, new: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_copy(update={str(seg): new})
    if isinstance(value, dict):
        return {**value, seg: new}
    assert isinstance(seg, int)
    return [*value[:seg], new, *value[seg + 1:]]


def _passes(step: Callable[[TrainingJob], object], job: TrainingJob) -> bool:
    try:
        step(job)
    except Exception:  # any failure of the step is what is being looked for
        return False
    return True


def blame(job: TrainingJob, step: Callable[[TrainingJob], object]) -> str | None:
    """The smallest part of the spec (e.g. spec.template.spec.affinity) without which `step`
    no longer raises; None when no one part is to blame."""

    def narrow(value: Any, rebuild: Callable[[Any], TrainingJob], name: str,
               depth: int) -> str | None:
        for seg, label in _children(value):
            if not _passes(step, rebuild(_without(value, seg))):
                continue
            here = name + (label if label.startswith("[") else f".{label}")
            if depth < MAX_DEPTH:

                def inner(new: Any, seg: Segment = seg) -> TrainingJob:
                    return rebuild(_put(value, seg, new))

                deeper = narrow(_at(value, seg), inner, here, depth + 1)
                if deeper is not None:
                    return deeper
            return here
        return None

    return narrow(job.spec, lambda spec: job.model_copy(update={"spec": spec}), "spec", 0)


def message(step: str, field: str | None, error: BaseException) -> str:
    """What the job's status says: what could not be read, and the fix (the spec is
    immutable, so the fix is a new object)."""
    text = f"{type(error).__name__}: {error}"[:MAX_ERROR]
    if field is None:
        return (f"the operator could not {step} from this spec ({text}); fix the spec and "
                "create the TrainingJob again")
    return (f"the operator could not {step}: {field} cannot be read ({text}); fix {field} "
            "and create the TrainingJob again")
