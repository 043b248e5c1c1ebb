"""Comparing two policies: what the rules say differently, and whom the change moves.

``compare`` lists the rules, definitions and parameter values that differ, in the policy's own words and
with their clauses. ``impact`` evaluates a file of households under both and counts the transitions of
primary category, eligibility gained or lost, and measures gained or lost, with example households.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from . import nodes as n
from .batch import CHUNK, Item, Worker, chunks, collecting_less
from .checker import CheckedPolicy
from .values import exact_text

NONE = "—"  # no category: not eligible
OPEN = "?"  # not yet decidable: the primary category depends on missing facts


@dataclass
class RuleChange:
    """A category, measure, status or precondition added, removed or changed."""

    kind: str
    id: str
    change: str  # added, removed, changed
    old_label: str = ""
    new_label: str = ""
    old_conditions: list[str] = field(default_factory=list)
    new_conditions: list[str] = field(default_factory=list)
    old_clause: str = ""
    new_clause: str = ""


@dataclass
class ValueChange:
    """A definition or parameter value that differs."""

    name: str
    label: str
    change: str  # added, removed, changed
    old: str = ""
    new: str = ""


@dataclass
class PolicyDiff:
    old: CheckedPolicy
    new: CheckedPolicy
    rules: list[RuleChange]
    definitions: list[ValueChange]
    parameters: list[ValueChange]
    header: list[ValueChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.rules or self.definitions or self.parameters or self.header)


def _conditions(policy: CheckedPolicy, rule: n.Rule) -> list[str]:
    if rule.mode != "conditions":
        return [rule.mode]
    return [f"requires {policy.policy.text_of(c.expr)}" for c in rule.conditions]


def _rules(policy: CheckedPolicy) -> dict[tuple[str, str], n.Rule]:
    return {(r.kind, r.id): r for r in policy.rules}


def compare(old: CheckedPolicy, new: CheckedPolicy) -> PolicyDiff:
    """The differences between two policies, rule by rule, in their own words."""
    rules: list[RuleChange] = []
    old_rules, new_rules = _rules(old), _rules(new)
    for key in [*old_rules, *(k for k in new_rules if k not in old_rules)]:
        a, b = old_rules.get(key), new_rules.get(key)
        change = RuleChange(key[0], key[1], "changed")
        if a is not None:
            change.old_label, change.old_conditions, change.old_clause = a.label or "", _conditions(old, a), \
                a.clause or ""
        if b is not None:
            change.new_label, change.new_conditions, change.new_clause = b.label or "", _conditions(new, b), \
                b.clause or ""
        if a is None:
            change.change = "added"
        elif b is None:
            change.change = "removed"
        elif (change.old_conditions, change.old_label, change.old_clause) == \
                (change.new_conditions, change.new_label, change.new_clause):
            continue
        rules.append(change)
    definitions: list[ValueChange] = []
    old_defs = {d.name: d for d in old.policy.definitions}
    new_defs = {d.name: d for d in new.policy.definitions}
    for name in [*old_defs, *(k for k in new_defs if k not in old_defs)]:
        a_text = old.policy.text_of(old_defs[name].expr) if name in old_defs else ""
        b_text = new.policy.text_of(new_defs[name].expr) if name in new_defs else ""
        if a_text != b_text:
            label = (new_defs.get(name) or old_defs[name]).label or name
            kind = "added" if not a_text else "removed" if not b_text else "changed"
            definitions.append(ValueChange(name, label, kind, a_text, b_text))
    parameters: list[ValueChange] = []
    old_params, new_params = old.parameters, new.parameters
    for name in [*old_params, *(k for k in new_params if k not in old_params)]:
        a_vals = {v.start: v for v in old_params[name].values} if name in old_params else {}
        b_vals = {v.start: v for v in new_params[name].values} if name in new_params else {}
        label = (new_params.get(name) or old_params[name]).label or name
        for start in sorted({*a_vals, *b_vals}):
            av, bv = a_vals.get(start), b_vals.get(start)
            a_text, b_text = _value_text(av), _value_text(bv)
            if a_text != b_text:
                kind = "added" if av is None else "removed" if bv is None else "changed"
                parameters.append(ValueChange(name, label, kind, a_text, b_text))
    header: list[ValueChange] = []
    oh, nh = old.policy.header, new.policy.header
    for name, label, a_v, b_v in (("title", "标题 title", oh.title, nh.title),
                                  ("in_force", "执行期 in force", _period(oh.in_force), _period(nh.in_force)),
                                  ("jurisdiction", "地区 jurisdiction", oh.jurisdiction, nh.jurisdiction),
                                  ("source", "来源 source", oh.source, nh.source)):
        if (a_v or "") != (b_v or ""):
            header.append(ValueChange(name, label, "changed", a_v or "", b_v or ""))
    return PolicyDiff(old, new, rules, definitions, parameters, header)


def _period(force: tuple[date, date] | None) -> str:
    return f"{force[0]} to {force[1]}" if force else ""


def _value_text(v: n.ParamValue | None) -> str:
    if v is None:
        return ""
    until = f" until {v.until}" if v.until else ""
    mark = {True: " (confirmed)", False: " (unconfirmed)", None: ""}[v.confirmed]
    return f"from {v.start}{until} = {exact_text(v.value)}{mark}"


# ---------------------------------------------------------------- impact on households


@dataclass
class Example:
    source: str
    id: Any
    old: str
    new: str
    why: str


@dataclass
class Impact:
    """Whom a change moves, counted over a file of households."""

    total: int = 0
    invalid: int = 0
    became_undecided: int = 0  # decided under the old policy, depending on missing facts under the new one
    became_decided: int = 0  # depending on missing facts under the old policy, decided under the new one
    gained_outside: int = 0  # of ``gained``: dated outside the new policy's period in force
    out_of_force: Counter[str] = field(default_factory=Counter)  # households dated outside old / new
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    gained: int = 0  # eligible under the new policy, not under the old
    lost: int = 0
    measures_gained: Counter[str] = field(default_factory=Counter)
    measures_lost: Counter[str] = field(default_factory=Counter)
    old_categories: Counter[str] = field(default_factory=Counter)
    new_categories: Counter[str] = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[Example]] = field(default_factory=dict)

    @property
    def moved(self) -> int:
        return sum(c for (a, b), c in self.transitions.items() if a != b)


def impact(old: CheckedPolicy, new: CheckedPolicy, items: Iterable[Item], as_of: date | None = None,
           examples: int = 3) -> Impact:
    """Evaluate every household under both policies and count what changes."""
    old_worker, new_worker = Worker(old, as_of), Worker(new, as_of)
    out = Impact()
    with collecting_less():
        for chunk in chunks(items, CHUNK):  # each chunk through both policies' compiled paths
            for item, a, b in zip(chunk, old_worker.rows(chunk), new_worker.rows(chunk), strict=True):
                _count(out, old, new, new_worker, item, a, b, examples)
    return out


def _count(out: Impact, old: CheckedPolicy, new: CheckedPolicy, new_worker: Worker, item: Item,
           a: dict[str, Any], b: dict[str, Any], examples: int) -> None:
    """One household's rows under both policies, added to the impact."""
    out.total += 1
    if "error" in a or "error" in b:
        out.invalid += 1
        return
    pa, pb = _primary(old, a), _primary(new, b)
    out.transitions[(pa, pb)] += 1
    out.out_of_force.update([k for k, row in (("old", a), ("new", b)) if not row["in_force"]])
    if a["eligible"] is not None and b["eligible"] is None:
        out.became_undecided += 1
    elif a["eligible"] is None and b["eligible"] is not None:
        out.became_decided += 1
    elif a["eligible"] is not None and b["eligible"] is not None:  # a definite change only
        out.gained += a["eligible"] is False and b["eligible"] is True
        out.gained_outside += a["eligible"] is False and b["eligible"] is True and not b["in_force"]
        out.lost += a["eligible"] is True and b["eligible"] is False
        out.measures_gained.update(set(b["measures"]) - set(a["measures"]))
        out.measures_lost.update(set(a["measures"]) - set(b["measures"]))
    out.old_categories.update(a["categories"])
    out.new_categories.update(b["categories"])
    if pa != pb and len(out.examples.setdefault((pa, pb), [])) < examples:
        out.examples[(pa, pb)].append(Example(item.source, a.get("id"), pa, pb, _why(new_worker, item, pa, pb)))


def _primary(policy: CheckedPolicy, row: dict[str, Any]) -> str:
    """The primary category as far as it is decided: '?' when an earlier category depends on missing facts."""
    open_ids = set(row["undetermined"])
    for rule in policy.categories:
        if rule.id in open_ids:
            return OPEN
        if rule.id in row["categories"]:
            return rule.id
    return NONE


def _why(worker: Worker, item: Item, old: str, new: str) -> str:
    """One line on the category that made the difference, under the new policy, from its trace."""
    from .explain import Explainer
    from .household import load_json, read_household

    household = read_household(worker.policy, load_json(item.text, item.source), item.source)
    result = worker.evaluator.evaluate(household, worker.as_of, trace=True)
    model = Explainer(worker.policy).model(result, "zh")
    asked = "；".join(model["questions"][:3])
    why = model["outcome"]
    for view in model["categories_not_met"]:  # first, why the old category no longer holds
        if view["id"] == old and view.get("sentences"):
            why = f"不再符合「{view['label']}」：{view['sentences'][0]}"
            break
    else:
        open_old = next((v for v in model["categories_open"] if v["id"] == old), None)
        met_new = next((v for v in model["categories_met"] if v["id"] == new and v.get("sentences")), None)
        if open_old is not None:
            why = f"还不能确定是否仍符合「{open_old['label']}」，需要补充信息：{asked}"
        elif met_new is not None:  # else, why the new one holds
            why = f"符合「{met_new['label']}」：{met_new['sentences'][0]}"
        elif new == OPEN and asked:
            why = f"按新政策还不能确定是否符合帮扶条件，需要补充信息：{asked}"
    return " ".join(why.split())  # one line, however the sentences were written


# ---------------------------------------------------------------- rendering


def render_text(diff: PolicyDiff, result: Impact | None = None) -> str:
    old, new = diff.old.policy.header, diff.new.policy.header
    lines = [f"policy diff: {old.id} → {new.id}", ""]
    if diff.empty:
        lines.append("The rules are the same.")
    if diff.header:
        lines.append("Header 基本信息")
        for h in diff.header:
            lines.append(f"  {h.label}: {h.old}  →  {h.new}")
        lines.append("")
    if diff.parameters:
        lines.append("Parameters 参数")
        for p in diff.parameters:
            lines.append(f"  {p.change:<8} {p.name} 「{p.label}」: " + (
                f"{p.old}  →  {p.new}" if p.change == "changed" else p.new or p.old))
        lines.append("")
    if diff.definitions:
        lines.append("Definitions 定义")
        for d in diff.definitions:
            lines.append(f"  {d.change:<8} {d.name} 「{d.label}」")
            if d.old:
                lines.append(f"      before: {d.old}")
            if d.new:
                lines.append(f"      after:  {d.new}")
        lines.append("")
    if diff.rules:
        lines.append("Rules 规则")
        for r in diff.rules:
            renamed = r.change == "changed" and r.old_label != r.new_label
            lines.append(f"  {r.change:<8} {r.kind} {r.id}" + ("" if renamed else f" 「{r.new_label or r.old_label}」"))
            for side, words, conds, clause in (("before", r.old_label, r.old_conditions, r.old_clause),
                                               ("after ", r.new_label, r.new_conditions, r.new_clause)):
                if not conds and not words:
                    continue
                pad = " " * len(side)
                body = [*([f"「{words}」"] if renamed and words else []), *conds,
                        *([f"clause: {clause}"] if clause else [])]
                lines.append(f"      {side}: " + f"\n      {pad}  ".join(body))
        lines.append("")
    if result is not None:
        lines += _impact_text(result)
    return "\n".join(lines).rstrip() + "\n"


def _impact_text(result: Impact) -> list[str]:
    outside = f" ({result.gained_outside:,} of them dated outside the new policy's period in force)" \
        if result.gained_outside else ""
    lines = [f"Impact on {result.total:,} households ({result.invalid:,} invalid, not counted): "
             f"{result.moved:,} change primary category; {result.gained:,} become eligible{outside}, "
             f"{result.lost:,} stop being eligible; {result.became_undecided:,} can no longer be decided without "
             f"more facts, {result.became_decided:,} can now be decided"]
    for which in ("old", "new"):
        if result.out_of_force[which]:
            lines.append(f"  note: {result.out_of_force[which]:,} households are dated outside the {which} "
                         "policy's period in force")
    lines += ["", f"  Primary category transitions (old → new; {NONE} none, {OPEN} depends on missing facts):"]
    for (a, b), count in sorted(result.transitions.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"    {a:>12} → {b:<12} {count:>8}" + ("" if a != b else "   (unchanged)"))
    cats = sorted({*result.old_categories, *result.new_categories})
    if cats:
        lines.append("")
        lines.append("  Households per category (all categories met, not only the primary):")
        for c in cats:
            delta = result.new_categories[c] - result.old_categories[c]
            lines.append(f"    {c:<12} {result.old_categories[c]:>8} → {result.new_categories[c]:<8} ({delta:+d})")
    if result.measures_gained or result.measures_lost:
        lines.append("")
        lines.append("  Measures gained / lost:")
        for m in sorted({*result.measures_gained, *result.measures_lost}):
            lines.append(f"    {m:<40} +{result.measures_gained[m]:<8} -{result.measures_lost[m]}")
    if result.examples:
        lines.append("")
        lines.append("  Examples:")
        for (a, b), examples in result.examples.items():
            for ex in examples:
                name = f"{ex.source}" + (f" ({ex.id})" if ex.id is not None else "")
                lines.append(f"    {a} → {b}: {name}: {ex.why}")
    return lines


def to_json(diff: PolicyDiff, result: Impact | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "old": {"id": diff.old.id, "sha256": diff.old.sha256},
        "new": {"id": diff.new.id, "sha256": diff.new.sha256},
        "rules": [vars(r) for r in diff.rules],
        "definitions": [vars(d) for d in diff.definitions],
        "parameters": [vars(p) for p in diff.parameters],
        "header": [vars(h) for h in diff.header],
    }
    if result is not None:
        out["impact"] = {
            "households": result.total, "invalid": result.invalid, "moved": result.moved,
            "became_eligible": result.gained, "stopped_being_eligible": result.lost,
            "became_undecided": result.became_undecided, "became_decided": result.became_decided,
            "became_eligible_outside_force": result.gained_outside, "outside_force": dict(result.out_of_force),
            "transitions": [{"old": a, "new": b, "households": c} for (a, b), c in result.transitions.items()],
            "categories": {c: {"old": result.old_categories[c], "new": result.new_categories[c]}
                           for c in sorted({*result.old_categories, *result.new_categories})},
            "measures_gained": dict(result.measures_gained), "measures_lost": dict(result.measures_lost),
            "examples": [vars(e) for exs in result.examples.values() for e in exs],
        }
    return out


_HTML = """<!DOCTYPE html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>policy diff: {{ old }} → {{ new }}</title>
<style>
 body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; max-width: 60em;
        margin: 2em auto; padding: 0 1em; line-height: 1.6; color: #1a1a1a; }
 h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
 table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #ccc; padding: .3em .6em;
        vertical-align: top; text-align: left; } th { background: #f3f3f3; }
 code { font-size: .9em; } .before { background: #fff0f0; } .after { background: #f0fff0; }
 .clause { color: #555; font-size: .9em; } figure { margin: 1em 0; }
 @media print { body { margin: 0; } tr { page-break-inside: avoid; } }
</style></head>
<body><main>
<h1>Policy change 政策变更: {{ old }} → {{ new }}</h1>
{% if not rules and not parameters and not definitions and not header %}<p>The rules are the same.</p>{% endif %}
{% if header %}<h2>Header 基本信息</h2><table><tr><th></th><th>before</th><th>after</th></tr>
{% for h in header %}<tr><td>{{ h.label }}</td><td>{{ h.old }}</td><td>{{ h.new }}</td></tr>{% endfor %}
</table>{% endif %}
{% if parameters %}<h2>Parameters 参数</h2>
<table><tr><th>parameter</th><th>change</th><th>before</th><th>after</th></tr>
{% for p in parameters %}<tr><td>{{ p.label }} <code>{{ p.name }}</code></td><td>{{ p.change }}</td>
<td>{{ p.old }}</td><td>{{ p.new }}</td></tr>{% endfor %}</table>{% endif %}
{% if definitions %}<h2>Definitions 定义</h2>
<table><tr><th>definition</th><th>before</th><th>after</th></tr>
{% for d in definitions %}<tr><td>{{ d.label }} <code>{{ d.name }}</code> ({{ d.change }})</td>
<td class="before"><code>{{ d.old }}</code></td><td class="after"><code>{{ d.new }}</code></td></tr>{% endfor %}
</table>{% endif %}
{% if rules %}<h2>Rules 规则</h2>
<table><tr><th>rule</th><th>before</th><th>after</th></tr>
{% for r in rules %}<tr>
<td>{{ r.kind }} <code>{{ r.id }}</code> ({{ r.change }}){% if r.old_label == r.new_label or not r.old_label
or not r.new_label %}<br>{{ r.new_label or r.old_label }}{% endif %}</td>
<td class="before">{% if r.old_label and r.new_label and r.old_label != r.new_label %}
<p>「{{ r.old_label }}」</p>{% endif %}
{% for c in r.old_conditions %}<code>{{ c }}</code><br>{% endfor %}
{% if r.old_clause %}<p class="clause">{{ r.old_clause }}</p>{% endif %}</td>
<td class="after">{% if r.old_label and r.new_label and r.old_label != r.new_label %}
<p>「{{ r.new_label }}」</p>{% endif %}
{% for c in r.new_conditions %}<code>{{ c }}</code><br>{% endfor %}
{% if r.new_clause %}<p class="clause">{{ r.new_clause }}</p>{% endif %}</td></tr>{% endfor %}
</table>{% endif %}
{% if impact %}<h2>Impact 影响: {{ "{:,}".format(impact.households) }} households</h2>
<p>{{ impact.moved }} change primary category; {{ impact.became_eligible }} become eligible{% if
impact.became_eligible_outside_force %} ({{ impact.became_eligible_outside_force }} of them dated outside the new
policy's period in force){% endif %}; {{ impact.stopped_being_eligible }} stop being eligible;
{{ impact.became_undecided }} can no longer be decided without more facts, {{ impact.became_decided }} can now be
decided; {{ impact.invalid }} invalid (not counted).
{% for which, count in impact.outside_force.items() %} {{ count }} households are dated outside the {{ which }}
policy's period in force.{% endfor %}</p>
<figure>
<svg role="img" aria-labelledby="chart-title" width="720" height="{{ 30 + 28 * bars|length }}"
     viewBox="0 0 720 {{ 30 + 28 * bars|length }}" xmlns="http://www.w3.org/2000/svg">
<title id="chart-title">Households by primary category transition (old → new)</title>
{% for bar in bars %}
<text x="190" y="{{ 24 + 28 * loop.index0 }}" text-anchor="end" font-size="13">{{ bar.label }}</text>
<rect x="200" y="{{ 10 + 28 * loop.index0 }}" width="{{ bar.width }}" height="20"
      fill="{{ '#999' if bar.same else '#2f6fb0' }}"></rect>
<text x="{{ 206 + bar.width }}" y="{{ 24 + 28 * loop.index0 }}" font-size="13">{{ bar.count }}</text>
{% endfor %}
</svg>
<figcaption>Households by primary category, old → new (grey: unchanged).</figcaption>
</figure>
<h2>Households per category 各类别户数</h2>
<p>Every category a household meets is counted, not only its primary one.</p>
<table><tr><th>category</th><th>before</th><th>after</th><th>change</th></tr>
{% for c, v in impact.categories.items() %}<tr><td>{{ labels.get(c, "") }} <code>{{ c }}</code></td>
<td>{{ v.old }}</td><td>{{ v.new }}</td><td>{{ "%+d"|format(v.new - v.old) }}</td></tr>
{% endfor %}</table>
{% if impact.measures_gained or impact.measures_lost %}<h2>Measures gained / lost 帮扶措施变化</h2>
<table><tr><th>measure</th><th>gained</th><th>lost</th></tr>
{% for m in measure_ids %}<tr><td>{{ labels.get(m, "") }} <code>{{ m }}</code></td>
<td>{{ impact.measures_gained.get(m, 0) }}</td><td>{{ impact.measures_lost.get(m, 0) }}</td></tr>{% endfor %}
</table>{% endif %}
{% if impact.examples %}<h2>Examples 示例</h2><ul>
{% for e in impact.examples %}<li><strong>{{ e.old }} → {{ e.new }}</strong> {{ e.source }}{% if e.id is not none %}
({{ e.id }}){% endif %}: {{ e.why }}</li>{% endfor %}</ul>{% endif %}
{% endif %}
</main></body></html>
"""


def render_html(diff: PolicyDiff, result: Impact | None = None) -> str:
    """One standalone page, with the transitions drawn as an SVG bar chart."""
    data = to_json(diff, result)
    bars = []
    if result is not None and result.transitions:
        top = max(result.transitions.values())
        for (a, b), count in sorted(result.transitions.items(), key=lambda kv: (-kv[1], kv[0])):
            bars.append({"label": f"{a} → {b}", "count": count, "width": max(1, round(440 * count / top)),
                         "same": a == b})
    env = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                                        lstrip_blocks=True)
    old_labels = {r.id: r.label or "" for r in diff.old.rules}
    labels = {**old_labels, **{r.id: r.label or "" for r in diff.new.rules}}
    for rid, old_label in old_labels.items():  # a rule the amendment renamed: both names, the new one first
        if labels[rid] != old_label and labels[rid] and old_label:
            labels[rid] = f"{labels[rid]}（原：{old_label}）"
    impact_data = data.get("impact")
    measure_ids = sorted({*impact_data["measures_gained"], *impact_data["measures_lost"]}) if impact_data else []
    return env.from_string(_HTML).render(old=diff.old.id, new=diff.new.id, rules=data["rules"],
                                         parameters=data["parameters"], definitions=data["definitions"],
                                         header=data["header"], impact=impact_data, bars=bars, labels=labels,
                                         measure_ids=measure_ids)
