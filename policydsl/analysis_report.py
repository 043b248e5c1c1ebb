"""The analysis report in words (``policy analyze``): overlaps, unreachable rules, redundant conditions,
properties and bounds, each with its witness household or its proof."""

from __future__ import annotations

from fractions import Fraction

from .analysis import Finding, Report
from .values import exact_text

_KIND_WORDS = {"category": "类别", "measure": "措施", "status": "状态"}


def render_text(report: Report) -> str:
    pol = report.policy
    rules = {r.id: r for r in pol.rules}

    def rule_name(rid: str) -> str:
        r = rules.get(rid)
        return f"{rid} 「{r.label}」" if r is not None and r.label else rid

    def when(fs: list[Finding]) -> str:
        return ", ".join(f.as_of.isoformat() for f in fs)

    out = [f"policy analyze: {pol.id} ({report.file})",
           "分析范围 Scope: every valid household that gives all its facts; one analysis per parameter period:"]
    for day, ps in report.periods:
        out.append(f"  from {day}: " + ", ".join(f"{k} = {_num(v)}" for k, v in ps.items()))
    out.append("")

    def grouped(kind: str) -> dict[str, list[Finding]]:
        groups: dict[str, list[Finding]] = {}
        for f in report.by_kind(kind):
            groups.setdefault(f.id.rsplit("@", 1)[0], []).append(f)
        return groups

    out.append("重叠 Overlaps — categories one household can meet together")
    overlaps, never = grouped("overlap"), grouped("never_overlap")
    for fs in overlaps.values():
        a, b = fs[0].rules
        out.append(f"  {rule_name(a)} + {rule_name(b)}: possible ({when(fs)})")
        for f in fs:
            out.append(f"      witness {f.id}.json → categories {', '.join(f.evaluation['categories'])}"
                       if f.evaluation else f"      witness {f.id}.json")
    for fs in never.values():
        a, b = fs[0].rules
        out.append(f"  {a} + {b}: never (proved, {when(fs)})")
    if not overlaps and not never:
        out.append("  (fewer than two categories)" if len(report.policy.categories) < 2
                   else "  none decided (see the notes)")
    out.append("")
    out.append("不可达规则 Unreachable rules — no valid household can meet them")
    dead = grouped("unreachable")
    for fs in dead.values():
        f = fs[0]
        out.append(f"  {rule_name(f.rules[0])} ({when(fs)}): {f.message.split(': ', 1)[-1]}")
        if f.witness is not None:
            out.append(f"      near miss {f.id}.json: {f.evaluation['near_miss']}")  # type: ignore[index]
    if not dead:
        out.append("  none: every category, measure and status can be met by some household")
    out.append("")
    out.append("冗余条件 Redundant conditions — implied by the other conditions of the same rule")
    red = grouped("redundant")
    for fs in red.values():
        f = fs[0]
        out.append(f"  {rule_name(f.rules[0])}, line {f.span.line if f.span else '?'} ({when(fs)}): "
                   f"{f.message.split('(', 1)[-1].rsplit(')', 1)[0]}")
        if f.witness is not None:
            out.append(f"      example {f.id}.json: the other conditions hold, and so does this one")
    if not red:
        out.append("  none")
    out.append("")
    out.append("声明的性质 Stated properties (and the gaps they reveal)")
    props: dict[str, list[Finding]] = {}
    for f in report.by_kind("property_holds", "property_violated"):
        props.setdefault(f.detail["property"], []).append(f)
    for name, fs in props.items():
        prop = next(p for p in pol.properties if p.name == name)
        out.append(f"  {name}" + (f" 「{prop.label}」" if prop.label else ""))
        for f in fs:
            if f.kind == "property_holds":
                word = "holds only vacuously (no household meets 'assuming')" if f.detail.get("vacuous") \
                    else "holds for every valid household (proved)"
                out.append(f"      {f.as_of}: {word}")
            else:
                ev = f.evaluation or {}
                out.append(f"      {f.as_of}: VIOLATED — counterexample {f.id}.json (eligible: {ev.get('eligible')}, "
                           f"categories: {', '.join(ev.get('categories') or []) or 'none'})")
    if not props:
        out.append("  none stated (write 'property NAME \"…\" assuming … expect …' in the policy)")
    out.append("")
    out.append("阈值 Bounds — the number each condition really compares with, per parameter period")
    for bound in report.bounds:
        vals = ", ".join(f"{_num(v)} (from {d})" for d, v in bound.values)
        out.append(f"  {bound.rule}, line {bound.line}: {bound.text}")
        out.append(f"      {bound.word or bound.op} {vals}")
    if not report.bounds:
        out.append("  none")
    undecided = report.by_kind("undecided")
    if undecided or report.notes:
        out.append("")
        out.append("注意 Notes")
        out.extend(f"  {f.message} ({f.as_of})" for f in undecided)
        out.extend(f"  {note}" for note in report.notes)
    out.append("")
    witnesses = sum(f.witness is not None for f in report.findings)
    out.append(f"{len(report.findings)} findings, {witnesses} with a witness household confirmed by the "
               f"evaluator; {report.seconds:.1f} s")
    return "\n".join(out)


def _num(v: Fraction) -> str:
    return exact_text(v)
