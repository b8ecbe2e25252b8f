"""Pure: the building blocks of the CRD schema that the TrainingJob's models (models.py) and
the pod parts its template takes (pod_parts.py) share: the frozen camelCase base model, CEL
rules with messages that name the field and the fix, label and quantity types."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel


def rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    """CEL validations in the CRD schema; each message names the field and the fix. A message
    that starts with a quote is a messageExpression (it can name what is wrong)."""
    return {"x-kubernetes-validations": [
        {"rule": rule, "messageExpression" if message[0] in "'\"[" else "message": message}
        for rule, message in pairs]}


def rule(rule: str, message: str) -> dict[str, Any]:
    return rules((rule, message))


# What a pod would refuse later, refused at apply time instead (the API server's own checks,
# through the CEL quantity and format libraries of Kubernetes 1.31 and later).
_LABEL_CHARS = ("at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
                "letter or digit")


def keys_rule(what: str, field: str) -> dict[str, Any]:
    """Every key of a map is a qualified name (label and annotation keys, nodeSelector)."""
    return rule("self.all(k, !format.qualifiedName().validate(k).hasValue())",
                 f"{field}: {what} keys must be qualified names: {_LABEL_CHARS}, optionally "
                 "after a DNS subdomain and /, e.g. team or example.com/team")


# A label value as pods take it; the path of the error names the key.
LabelValue = Annotated[str, WithJsonSchema({"type": "string", "maxLength": 63, **rule(
    "!format.labelValue().validate(self).hasValue()",
    f"a label value must be empty or {_LABEL_CHARS}")})]
LabelMap = dict[str, LabelValue]

# A resource quantity as pods take it: 500m, 2, 1.5, 64Gi; never negative.
Quantity = Annotated[int | str, WithJsonSchema({
    "x-kubernetes-int-or-string": True, "maxLength": 64, **rule(
        "type(self) == int ? self >= 0 : "
        "isQuantity(self) && !quantity(self).isLessThan(quantity('0'))",
        "must be a quantity of 0 or more, such as 500m, 2, 1.5 or 64Gi")})]


# A quantity inside a pod part: its shape only (the pod's own validation judges the value);
# the quantity rule, repeated in every item of nested lists, would exceed the CEL budget.
PartQuantity = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True,
                                                    "maxLength": 64})]


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python, immutable, unknown keys ignored."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, alias_generator=to_camel,
                              extra="ignore")
