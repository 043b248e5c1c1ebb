"""Rendering a Result (and its Trace) for people and programs: plain text and JSON.

Numbers are formatted here only, from the exact values of the evaluation.
"""

from __future__ import annotations

import json
from typing import Any

from . import nodes as n
from .checker import CheckedPolicy
from .evaluator import ComparisonEvent, NotEvaluated, Result, RuleTrace
from .values import Fraction, RecordValue, Unknown, format_amount, to_plain

_OUTCOME = {True: "✓", False: "✗"}


def _mark(v: Any) -> str:
    if isinstance(v, NotEvaluated):
        return "–"
    return "?" if isinstance(v, Unknown) else _OUTCOME[bool(v)]


def _yes_no(v: bool | None) -> str:
    return {True: "yes 是", False: "no 否", None: "undetermined 待定 (facts missing)"}[v]


def source_text(policy: CheckedPolicy, node: n.Node) -> str:
    """The policy text a node was parsed from, on one line."""
    return policy.policy.text_of(node)


def show(value: Any) -> str:
    """A runtime value for a person: amounts with two decimals, unknowns as 'missing (…)'."""
    if isinstance(value, Unknown):
        return "missing (" + ", ".join(sorted(value.paths)) + ")" if value.paths else "missing"
    if isinstance(value, NotEvaluated):
        return f"not evaluated: {value.reason}"
    if isinstance(value, RecordValue):
        return value.path
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Fraction)):
        whole_and_small = value.denominator == 1 and -100 < value < 100
        return str(value.numerator) if whole_and_small else format_amount(value)
    return json.dumps(to_plain(value), ensure_ascii=False)


def _label(policy: CheckedPolicy, rule_id: str) -> str:
    for r in policy.rules:
        if r.id == rule_id:
            return r.label or ""
    return ""


def _input_label(policy: CheckedPolicy, path: str) -> str:
    """The Chinese label of a JSON path, e.g. income_history.2019-05 → 家庭月收入 2019-05."""
    head, _, rest = path.partition(".")
    sym = policy.symbols.get(head)
    if sym is None or sym.label is None:
        return ""
    if rest and sym.type.kind == "record" and sym.type.of in policy.records:
        field, _, month = rest.partition(".")
        for f in policy.records[sym.type.of].fields:
            if f.name == field:
                return f"{sym.label}: {f.label or f.name}" + (f" {month}" if month else "")
    return f"{sym.label} {rest}".strip()


def render_text(result: Result, trace: bool = False) -> str:
    """A readable summary with the policy's Chinese labels; with ``trace``, why each rule held or not."""
    pol = result.policy
    h = pol.policy.header
    lines = [f"{h.title or h.id}  [{h.id}]"]
    force = "in force" if result.in_force else "NOT in force on this date"
    if h.in_force:
        force += f" ({h.in_force[0]} to {h.in_force[1]})"
    source = {"option": " (from --as-of)", "today": " (today: the household gives no as_of)"}.get(
        result.as_of_source, "")
    lines.append(f"Assessment date 评估日期: {result.as_of}{source}  — policy {force}")
    lines.append(f"Eligible 是否属于帮扶对象: {_yes_no(result.eligible)}")
    lines += _why_not(result)
    if result.categories:
        lines.append("Categories met 符合的帮扶对象类别:")
        for c in result.categories:
            primary = "  (primary 主类别)" if c == result.primary_category else ""
            lines.append(f"  ✓ {c}  {_label(pol, c)}{primary}")
    if result.measures:
        lines.append("Measures 帮扶措施:")
        lines += [f"  - {m}  {_label(pol, m)}" for m in result.measures]
    if pol.statuses:
        status_ids = {r.id for r in pol.statuses}
        if result.status:
            status = f"{result.status}  {_label(pol, result.status)}"
        elif status_ids & set(result.undetermined):
            status = "undetermined 待定 (facts missing)"
        else:
            gate = pol.status_precondition
            status = f"— (only for: {gate.label or gate.id})" if gate is not None else "—"
        lines.append(f"Status 状态: {status}")
    if result.undetermined:
        lines.append("Undetermined 待定 (depend on missing facts):")
        lines += [f"  ? {u}  {_label(pol, u)}" for u in result.undetermined]
    if result.missing:
        lines.append("Missing facts to ask for 需补充的信息:")
        lines += [f"  - {m}  {_input_label(pol, m)}" for m in result.missing]
    if result.values:
        lines.append("Values 数值:")
        for name, text in result.values.items():
            sym = pol.symbols[name]
            note = ""
            pv = result.parameters.get(name)
            if pv is not None:
                note = f"  (from {pv.start}"
                if pv.confirmed is False:
                    note += "; UNCONFIRMED 未确认" + (f": {pv.note}" if pv.note else "")
                note += ")"
            unit = " 元" if sym.type.kind == "money" else ""
            lines.append(f"  {sym.label or name} {name} = {text}{unit}{note}")
    for w in result.warnings:
        lines.append(f"warning: {w}")
    if trace and result.trace is not None:
        lines.append("")
        lines.append("Why 判定过程:")
        for rt in result.trace.rules:
            lines += _rule_lines(pol, rt)
    return "\n".join(lines)


def _first_failure(pol: CheckedPolicy, rt: RuleTrace) -> str | None:
    """The first condition of a rule that is false, with the comparison that made it so."""
    for ct in rt.conditions:
        if ct.outcome is False:
            failing = next((ev for ev in ct.comparisons if ev.outcome is False), None)
            if failing is not None:
                return _event_text(pol, failing)
            values = ", ".join(f"{k} = {show(v)}" for k, v in ct.values.items())
            return f"✗ {source_text(pol, ct.condition.expr)}" + (f"  ({values})" if values else "")
    return None


def _why_not(result: Result) -> list[str]:
    """For a household that is not eligible: which part of the precondition failed, or why no category held."""
    if result.eligible is not False or result.trace is None:
        return []
    pol = result.policy
    rules = {id(rt.rule): rt for rt in result.trace.rules}
    pre = pol.precondition
    if pre is not None and rules.get(id(pre)) is not None and rules[id(pre)].result is False:
        reason = _first_failure(pol, rules[id(pre)])
        return [f"Why not 原因: the precondition \"{pre.label}\" does not hold", f"  {reason}"] if reason else []
    lines = ["Why not 原因: no category holds"]
    for rule in pol.categories:
        rt = rules.get(id(rule))
        reason = _first_failure(pol, rt) if rt is not None else None
        if reason:
            lines.append(f"  {rule.id}  {rule.label or ''}: {reason}")
    return lines


_LITERALS = (n.Number, n.Money, n.Text, n.Boolean, n.DateLiteral)


def _is_literal(pol: CheckedPolicy, e: n.Expr) -> bool:
    """A value written in the policy (a number, a text, an enum value): showing it twice adds nothing."""
    if isinstance(e, _LITERALS):
        return True
    return isinstance(e, n.Name) and e.name in pol.symbols and pol.symbols[e.name].kind == "member"


def _pair(a: Any, b: Any) -> tuple[str, str]:
    """Both sides of a comparison for display: with more decimals where two would make unequal values look equal."""
    sa, sb = show(a), show(b)
    numbers = all(isinstance(x, (int, Fraction)) and not isinstance(x, bool) for x in (a, b))
    if numbers and sa == sb and a != b:
        def precise(x: Any) -> str:
            text = format_amount(x, 6)
            return text if Fraction(text) == x else text + "…"
        return precise(a), precise(b)
    return sa, sb


def _event_text(pol: CheckedPolicy, ev: ComparisonEvent) -> str:
    c = ev.node
    bound = ", ".join(f"{k}={show(v)}" for k, v in ev.bindings.items())
    where = f" [{bound}]" if bound else ""
    lv, rv = _pair(ev.left, ev.right)
    left = source_text(pol, c.left) + ("" if _is_literal(pol, c.left) else f" ({lv})")
    right = source_text(pol, c.right) + ("" if _is_literal(pol, c.right) else f" ({rv})")
    if c.word in ("以上", "以下", "以内", "以外"):
        body = f"{left} 在 {right} {c.word}"
    else:
        body = f"{left} {c.word or c.op} {right}"
    return f"{_mark(ev.outcome)} {body}{where}"


def _rule_lines(pol: CheckedPolicy, rt: RuleTrace) -> list[str]:
    r = rt.rule
    title = r.id if r.kind not in ("precondition", "status_precondition") else r.kind.replace("_", " ")
    out = [f"{_mark(rt.result)} {r.kind} {title}  {r.label or ''}   ({r.span})"]
    if rt.outcome is True and rt.result is not True:
        out.append("    its own conditions hold, but its gate (precondition / eligibility / an earlier status) "
                   f"is {'false' if rt.result is False else 'undetermined'}")
    if r.mode != "conditions":
        out.append(f"    {r.mode}")
    for ct in rt.conditions:
        out.append(f"    {_mark(ct.outcome)} requires {source_text(pol, ct.condition.expr)}")
        if isinstance(ct.outcome, NotEvaluated):
            out.append(f"        (not needed for the result, and not computable: {ct.outcome.reason})")
            continue
        limit = 12
        out.extend(f"        {_event_text(pol, ev)}" for ev in ct.comparisons[:limit])
        if len(ct.comparisons) > limit:
            out.append(f"        … {len(ct.comparisons) - limit} more comparisons")
        if not ct.comparisons:
            vals = ", ".join(f"{k} = {show(v)}" for k, v in ct.values.items())
            if vals:
                out.append(f"        ({vals})")
    return out


def trace_json(result: Result) -> dict[str, Any]:
    """The trace as data: each rule's outcome, conditions, comparisons and source spans."""
    assert result.trace is not None
    pol = result.policy

    def tri(v: Any) -> Any:
        if isinstance(v, NotEvaluated):
            return {"not_evaluated": v.reason}
        return None if isinstance(v, Unknown) else bool(v)

    def span(node: n.Node) -> dict[str, Any]:
        s = node.span
        return {"file": s.file, "line": s.line, "column": s.column, "end_line": s.end_line,
                "end_column": s.end_column}

    def event(ev: ComparisonEvent) -> dict[str, Any]:
        return {"text": source_text(pol, ev.node), "op": ev.node.op, "word": ev.node.word,
                "left": to_plain(ev.left), "right": to_plain(ev.right), "outcome": tri(ev.outcome),
                "bindings": {k: to_plain(v) for k, v in ev.bindings.items()}, "span": span(ev.node)}

    rules = []
    for rt in result.trace.rules:
        r = rt.rule
        rules.append({
            "kind": r.kind, "id": r.id, "label": r.label, "clause": r.clause, "span": span(r),
            "own": tri(rt.outcome), "result": tri(rt.result),
            "missing": sorted(rt.result.paths) if isinstance(rt.result, Unknown) else [],
            "conditions": [{"text": source_text(pol, ct.condition.expr), "outcome": tri(ct.outcome),
                            "span": span(ct.condition), "values": {k: to_plain(v) for k, v in ct.values.items()},
                            "comparisons": [event(e) for e in ct.comparisons]} for ct in rt.conditions],
        })
    declared = pol.parameters
    params = {name: {"value": format_amount(pv.value), "from": pv.start.isoformat(), "confirmed": pv.confirmed,
                     "note": pv.note, "unit": declared[name].unit, "source": declared[name].source}
              for name, pv in result.trace.parameters.items()}
    return {"rules": rules, "definitions": {k: to_plain(v) for k, v in result.trace.definitions.items()},
            "parameters": params}
