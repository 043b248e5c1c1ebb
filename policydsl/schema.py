"""The JSON Schema (draft 2020-12) of a policy's household input, derived from its declarations."""

from __future__ import annotations

from typing import Any

from . import nodes as n
from .checker import CheckedPolicy

_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


def _type(policy: CheckedPolicy, te: n.TypeExpr, title: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if title:
        out["title"] = title
    minimum = {"minimum": int(te.minimum) if te.minimum.denominator == 1 else float(te.minimum)} \
        if te.minimum is not None else {}
    if te.kind == "money":
        period = {"month": "元 per month", "year": "元 over the 12 months before as_of", None: "元"}[te.period]
        sign = "" if te.minimum is not None and te.minimum >= 0 else "-?"
        out.update({"description": f"an amount in {period}; a number, or a decimal text such as \"2520.03\"",
                    "anyOf": [{"type": "number", **minimum}, {"type": "string", "pattern": rf"^{sign}\d+(\.\d+)?$"}]})
    elif te.kind == "count":
        out.update({"type": "integer", **minimum})
    elif te.kind == "number":
        out.update({"type": "number", **minimum})
    elif te.kind == "boolean":
        out["type"] = "boolean"
    elif te.kind == "text":
        out["type"] = "string"
    elif te.kind == "date":
        out.update({"type": "string", "format": "date"})
    elif te.kind == "monthly":
        out.update({"type": "object", "description": "amount per calendar month, keys YYYY-MM",
                    "propertyNames": {"pattern": _MONTH},
                    "additionalProperties": {"anyOf": [{"type": "number", **minimum},
                                                       {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
                                                       {"type": "null"}]}})
    elif te.kind == "set":
        out.update({"type": "array", "description": "a set: order and repeats do not matter",
                    "items": {"$ref": f"#/$defs/{te.of}"}})
    elif te.kind == "list":
        out.update({"type": "array", "items": {"$ref": f"#/$defs/{te.of}"}})
    elif te.kind == "named":
        out["$ref"] = f"#/$defs/{te.of}"
    return out


def household_schema(policy: CheckedPolicy) -> dict[str, Any]:
    """A schema a form builder or an upstream system can validate against; null means 'not known'."""
    defs: dict[str, Any] = {}
    for e in policy.enums.values():
        defs[e.name] = {"title": e.label or e.name, "enum": [m.name for m in e.members],
                        "description": "; ".join(f"{m.name}: {m.label}" for m in e.members)}
    for r in policy.records.values():
        defs[r.name] = {"title": r.label or r.name, "type": "object",
                        "properties": {f.name: _nullable(_type(policy, f.type, f.label)) for f in r.fields}}
    props: dict[str, Any] = {"as_of": _nullable({"title": "评估日期 assessment date", "type": "string",
                                                 "format": "date"})}
    for i in policy.policy.inputs:
        props[i.name] = _nullable(_type(policy, i.type, i.label))
    h = policy.policy.header
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"policydsl:{h.id}:household",
        "title": f"Household for {h.title or h.id}",
        "description": "Every field may be absent or null: it is then a missing fact, reported by the evaluation.",
        "type": "object",
        "properties": props,
        "$defs": defs,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], **{k: v for k, v in schema.items() if k == "title"}}
