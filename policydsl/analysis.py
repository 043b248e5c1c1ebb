"""Policy analysis: overlaps, unreachable rules, redundant conditions, stated properties and bounds.

The checked AST is translated, once per dated parameter value, into an SMT problem over exact rationals
(z3): one variable per fact of the household, windows unrolled into one variable per month, sets into one
yes/no per enum member. Amounts are whole 分 (cents) so that every model is a household a caseworker could
write down. Every finding that claims a household exists comes with that household (a witness), which is
then evaluated by the ordinary evaluator: a finding the evaluator does not confirm is not reported.
Findings that claim no household exists (never overlap, unreachable, redundant, property holds) are proofs
by the solver over every valid household that gives all its facts.

The translation is in ``smt.py``; the report in words, in ``analysis_report.py``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import nodes as n
from .checker import CheckedPolicy
from .diagnostics import Diagnostic, PolicyDslError, UsageError
from .evaluator import Compiler, Ctx, EvaluationError, Evaluator, Result
from .household import load_json, read_household
from .smt import (
    MAX_LIST,
    Translation,
    Unsupported,
    _mentions_list,
    z3,
)
from .values import Unknown, exact, exact_text

INSTALL_HINT = "pip install 'policydsl[analysis]'  (or: pip install z3-solver)"
TIMEOUT_MS = 20_000  # per question to the solver; an undecided question is reported as such


class AnalysisUnavailable(UsageError):
    """The SMT solver is not installed."""

    def __init__(self) -> None:
        super().__init__("policy analysis needs the z3 SMT solver, which is not installed; install it with: "
                         + INSTALL_HINT)


def available() -> bool:
    return z3 is not None


# ---------------------------------------------------------------- findings and the report


@dataclass
class Finding:
    """One result of the analysis; ``witness`` is a household the evaluator confirmed, when there is one."""

    id: str
    kind: str  # overlap, never_overlap, unreachable, redundant, property_holds, property_violated, undecided
    as_of: date
    message: str
    rules: list[str] = field(default_factory=list)
    span: n.Span | None = None
    witness: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "as_of": self.as_of.isoformat(),
                               "rules": self.rules, "message": self.message}
        if self.span is not None:
            out["line"] = self.span.line
        out.update(self.detail)
        if self.witness is not None:
            out["witness"] = {"file": f"{self.id}.json", "household": self.witness,
                              "evaluation": self.evaluation}
        return out


@dataclass
class Bound:
    """A numeric condition compared with a parameter expression, and the number it really uses per period."""

    rule: str
    line: int
    text: str
    op: str
    word: str | None
    values: list[tuple[date, Fraction]]

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "line": self.line, "condition": self.text, "op": self.op, "word": self.word,
                "values": [{"from": d.isoformat(), "value": exact_text(v)}
                           for d, v in self.values]}


@dataclass
class Report:
    policy: CheckedPolicy
    file: str
    periods: list[tuple[date, dict[str, Fraction]]]
    findings: list[Finding]
    bounds: list[Bound]
    notes: list[str]
    seconds: float

    def by_kind(self, *kinds: str) -> list[Finding]:
        return [f for f in self.findings if f.kind in kinds]

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": {"id": self.policy.id, "file": self.file, "sha256": self.policy.sha256},
            "solver": f"z3 {z3.get_version_string()}",
            "households": "every valid household that gives all its facts (missing facts are not considered)",
            "periods": [{"as_of": d.isoformat(), "parameters": {k: str(v) for k, v in ps.items()}}
                        for d, ps in self.periods],
            "findings": [f.to_json() for f in self.findings],
            "bounds": [b.to_json() for b in self.bounds],
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
        }

    def write_witnesses(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for f in self.findings:
            if f.witness is not None:
                path = out / f"{f.id}.json"
                path.write_text(json.dumps(f.witness, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
                written.append(path)
        return written

    def diagnostics(self) -> list[Diagnostic]:
        """Findings a policy officer should act on, as checker warnings (W301–W303) for `policy check --analyze`."""
        out: list[Diagnostic] = []
        codes = {"unreachable": "W301", "redundant": "W302", "property_violated": "W303", "undecided": "W304"}
        grouped: dict[tuple[str, str], list[Finding]] = {}
        for f in self.findings:
            if f.kind in codes and f.span is not None:
                grouped.setdefault((f.kind, f.id.rsplit("@", 1)[0]), []).append(f)
        every_period = {d for d, _ in self.periods}
        for (kind, _), fs in grouped.items():
            f = fs[0]
            days = sorted(x.as_of for x in fs)
            when = "" if set(days) == every_period else " — only for the period(s) from " + ", ".join(
                d.isoformat() for d in days)
            hint = f"witness household: policy analyze --out DIR writes {f.id}.json" if f.witness else None
            assert f.span is not None
            out.append(Diagnostic(codes[kind], "warning", f.message + when, f.span, hint))
        return out


def periods(policy: CheckedPolicy) -> list[tuple[date, dict[str, Fraction]]]:
    """One assessment date per dated parameter value, clipped into the policy's in-force period."""
    force = policy.policy.header.in_force
    starts = sorted({v.start for p in policy.policy.parameters for v in p.values})
    if force:
        days = sorted({max(s, force[0]) for s in starts if s <= force[1]} | {force[0]})
    else:
        days = starts or [date.today()]
    out = []
    for day in days:
        values: dict[str, Fraction] = {}
        for p in policy.policy.parameters:
            applicable = [v for v in p.values if v.start <= day]
            if applicable:
                values[p.name] = applicable[-1].value
        if len(values) == len(policy.policy.parameters):
            out.append((day, values))
    return out


def _text(policy: CheckedPolicy, node: n.Node) -> str:
    return policy.policy.text_of(node)


class Analyzer:
    def __init__(self, policy: CheckedPolicy, file: str = "") -> None:
        if z3 is None:
            raise AnalysisUnavailable()
        self.policy = policy
        self.file = file
        self.evaluator = Evaluator(policy)
        self.compiler = Compiler(policy, traced=False)
        self.notes: list[str] = []
        self.exact: Any = None  # the solver of the current period without the 分 grid, for proofs
        self.plausible: list[Any] = []
        self.rule_by_id = {r.id: r for r in (*policy.categories, *policy.measures, *policy.statuses)}

    # -- solving
    def solver(self, tr: Translation, grid: bool = True) -> Any:
        s = z3.Solver()
        s.set("timeout", TIMEOUT_MS)
        s.add(*tr.domain, *tr.side, *(tr.grid if grid else []))
        return s

    def check(self, s: Any, *goals: Any) -> tuple[str, Any]:
        """sat (with a model in whole 分), unsat (proved over all rational amounts) or unknown."""
        s.push()
        s.add(*goals)
        s.push()
        s.add(*self.plausible)  # first look for an ordinary-looking household: small families, modest sums
        result = s.check()
        model = s.model() if result == z3.sat else None
        s.pop()
        if result != z3.sat:
            result = s.check()
            model = s.model() if result == z3.sat else None
        s.pop()
        if result == z3.unsat:  # no household in whole 分: prove it for every amount, or say it is undecided
            exact = self.exact
            exact.push()
            exact.add(*goals)
            again = exact.check()
            exact.pop()
            if again != z3.unsat:
                self.notes.append("a question was left undecided: only amounts finer than 0.01 元 could answer it")
                return "unknown", None
            if _mentions_list(goals):  # lists are only unrolled to MAX_LIST items: no proof beyond that
                self.notes.append(f"a question about a list was left undecided: lists are analysed with at most "
                                  f"{MAX_LIST} items")
                return "unknown", None
        return str(result), model

    # -- confirming with the evaluator
    def confirm(self, tr: Translation, model: Any) -> tuple[dict[str, Any], Result] | None:
        """The model's household, evaluated; None (and a note) if the evaluator disagrees with the translation."""
        doc = tr.household(model)
        try:
            text = json.dumps(doc, ensure_ascii=False)
            hh = read_household(self.policy, load_json(text, "witness"), "witness")
            result = self.evaluator.evaluate(hh, trace=True)
        except PolicyDslError as exc:
            self.notes.append(f"a candidate witness for {tr.as_of} was refused by the evaluator ({exc}); "
                              "its finding is not reported")
            return None
        held = {*result.categories, *result.measures, *([result.status] if result.status else [])}
        for rid, term in tr.held.items():
            if rid == "__eligible__":
                continue
            predicted = z3.is_true(model.eval(term, model_completion=True))
            if predicted != (rid in held):
                self.notes.append(f"the solver and the evaluator disagree on '{rid}' for a candidate witness "
                                  f"({tr.as_of}); its finding is not reported")
                return None
        return doc, result

    def property_value(self, prop_expr: n.Expr, hh_doc: dict[str, Any], result: Result) -> Any:
        """A property expression evaluated on a household by the evaluator, outcomes taken from its result."""
        held = {*result.categories, *result.measures, *([result.status] if result.status else [])}
        expr = _substitute_outcomes(prop_expr, held, bool(result.eligible))
        hh = read_household(self.policy, load_json(json.dumps(hh_doc, ensure_ascii=False)))
        params = {k: exact(v.value) for k, v in self.evaluator.parameter_values(result.as_of).items()}
        return self.compiler.compile(expr, frozenset())(Ctx(hh.values, params, result.as_of))

    @staticmethod
    def summary(result: Result) -> dict[str, Any]:
        return {"eligible": result.eligible, "categories": result.categories, "measures": result.measures,
                "status": result.status}

    # -- the analysis
    def run(self) -> Report:
        start = time.perf_counter()
        findings: list[Finding] = []
        pers = periods(self.policy)
        for day, params in pers:
            tr = Translation(self.policy, day, params)
            for rid, why in tr.unsupported.items():
                rule = next(r for r in self.policy.rules if id(r) == rid)
                self.notes.append(f"{rule.kind} '{rule.id}' was not analysed: {why} is not supported")
            s = self.solver(tr)
            self.exact = self.solver(tr, grid=False)
            self.plausible = tr.plausible
            findings += self.reachability(tr, s)
            findings += self.overlaps(tr, s)
            findings += self.redundancy(tr, s)
            findings += self.properties(tr, s)
        bounds = self.bounds(pers)
        notes = list(dict.fromkeys(self.notes))
        return Report(self.policy, self.file, pers, findings, bounds, notes, time.perf_counter() - start)

    def reachability(self, tr: Translation, s: Any) -> list[Finding]:
        out = []
        for rule in (*self.policy.categories, *self.policy.measures, *self.policy.statuses):
            if rule.id not in tr.held:
                continue
            verdict, model = self.check(s, tr.held[rule.id])
            if verdict == "sat":
                continue
            fid = f"unreachable.{rule.id}@{tr.as_of}"
            if verdict != "unsat":
                out.append(Finding(fid.replace("unreachable", "undecided"), "undecided", tr.as_of,
                                   f"could not decide whether {rule.kind} '{rule.id}' can "
                                   "be met", [rule.id], rule.id_span or rule.span))
                continue
            # which of its conditions (and its gate) conflict: an unsat core over one switch per condition
            conds = tr.rule_conds[id(rule)]
            switches = [z3.Bool(f"__cond_{i}") for i in range(len(conds))]
            gate = z3.Bool("__gate")
            s.push()
            s.add(*[z3.Implies(sw, c) for sw, c in zip(switches, conds, strict=True)],
                  z3.Implies(gate, tr.gate[rule.id]))
            core = s.check(gate, *switches) == z3.unsat and set(map(str, s.unsat_core()))
            s.pop()
            lines = [rule.conditions[i] for i in range(len(conds)) if core and f"__cond_{i}" in core]
            gated = bool(core) and "__gate" in core
            why = "; ".join(f"line {c.span.line}: {_text(self.policy, c.expr)}" for c in lines)
            if gated and not lines:
                why = "its gate can never be open (" + ("eligibility" if rule.kind == "measure" else
                                                        "the precondition or an earlier status") + ")"
            elif gated:
                why += " — together with its gate"
            finding = Finding(fid, "unreachable", tr.as_of,
                              f"{rule.kind} '{rule.id}' can never be met by a valid household: {why}",
                              [rule.id], rule.id_span or rule.span,
                              detail={"conflicting_lines": [c.span.line for c in lines], "gate": gated})
            # a near miss, as the evaluator sees it: every condition but the last conflicting one holds
            if lines:
                drop = rule.conditions.index(lines[-1])
                keep = [c for i, c in enumerate(conds) if i != drop]
                verdict, model = self.check(s, *keep, *( [tr.gate[rule.id]] if not gated else []))
                confirmed = self.confirm(tr, model) if model is not None else None
                if confirmed is not None and rule.id not in self._held(confirmed[1]):
                    finding.witness, res = confirmed[0], confirmed[1]
                    finding.evaluation = {**self.summary(res), "near_miss": f"every condition of '{rule.id}' "
                                          f"holds except line {lines[-1].span.line}"}
            out.append(finding)
        return out

    @staticmethod
    def _held(result: Result) -> set[str]:
        return {*result.categories, *result.measures, *([result.status] if result.status else [])}

    def overlaps(self, tr: Translation, s: Any) -> list[Finding]:
        out = []
        cats = [r for r in self.policy.categories if r.id in tr.held]
        for i, a in enumerate(cats):
            for b in cats[i + 1:]:
                verdict, model = self.check(s, tr.held[a.id], tr.held[b.id])
                fid = f"overlap.{a.id}.{b.id}@{tr.as_of}"
                if verdict == "unsat":
                    out.append(Finding(fid.replace("overlap.", "never_overlap."), "never_overlap", tr.as_of,
                                       f"'{a.id}' and '{b.id}' never hold together (proved)", [a.id, b.id]))
                elif verdict == "sat":
                    confirmed = self.confirm(tr, model)
                    if confirmed is None or not {a.id, b.id} <= set(confirmed[1].categories):
                        continue
                    out.append(Finding(fid, "overlap", tr.as_of, f"one household can meet both '{a.id}' and "
                                       f"'{b.id}'", [a.id, b.id], witness=confirmed[0],
                                       evaluation=self.summary(confirmed[1])))
                else:
                    out.append(Finding(fid.replace("overlap.", "undecided."), "undecided", tr.as_of,
                                       f"could not decide whether '{a.id}' and '{b.id}' can hold together",
                                       [a.id, b.id], a.id_span or a.span))
        return out

    def redundancy(self, tr: Translation, s: Any) -> list[Finding]:
        out = []
        for rule in (*self.policy.categories, *self.policy.measures, *self.policy.statuses):
            conds = tr.rule_conds.get(id(rule), [])
            if len(conds) < 2 or rule.id not in tr.held:
                continue
            for k, cond in enumerate(conds):
                others = conds[:k] + conds[k + 1:]
                verdict, _ = self.check(s, *others, z3.Not(cond))
                if verdict != "unsat":
                    continue
                verdict, model = self.check(s, *others)
                if verdict != "sat":
                    continue  # the other conditions conflict: the rule is unreachable, reported as such
                node = rule.conditions[k]
                finding = Finding(f"redundant.{rule.id}.line{node.span.line}@{tr.as_of}", "redundant", tr.as_of,
                                  f"in {rule.kind} '{rule.id}', the condition on line {node.span.line} "
                                  f"({_text(self.policy, node.expr)}) always holds when the others hold",
                                  [rule.id], node.span)
                confirmed = self.confirm(tr, model)
                if confirmed is not None and confirmed[1].trace is not None:
                    traced = next(t for t in confirmed[1].trace.rules if t.rule is rule)
                    if all(c.outcome is True for c in traced.conditions):
                        finding.witness = confirmed[0]
                        finding.evaluation = {**self.summary(confirmed[1]),
                                              "conditions": "every condition holds, the redundant one included"}
                out.append(finding)
        return out

    def properties(self, tr: Translation, s: Any) -> list[Finding]:
        out = []
        for prop in self.policy.properties:
            try:
                assume = tr.boolean(prop.assuming, {}) if prop.assuming is not None else z3.BoolVal(True)
                expect = tr.boolean(prop.expect, {})
            except Unsupported as exc:
                self.notes.append(f"property '{prop.name}' was not analysed: {exc} is not supported")
                continue
            s.push()
            s.add(*tr.side)  # the property may divide too
            self.exact.push()
            self.exact.add(*tr.side)
            verdict, model = self.check(s, assume, z3.Not(expect))
            vacuous = verdict == "unsat" and self.check(s, assume)[0] == "unsat"
            s.pop()
            self.exact.pop()
            fid = f"property.{prop.name}@{tr.as_of}"
            label = f"'{prop.name}'" + (f" ({prop.label})" if prop.label else "")
            if verdict == "unsat":
                msg = f"property {label} holds for every valid household (proved)"
                if vacuous:
                    msg = f"property {label} holds only because no valid household meets its 'assuming'"
                out.append(Finding(fid, "property_holds", tr.as_of, msg, span=prop.span,
                                   detail={"property": prop.name, "vacuous": vacuous}))
            elif verdict == "sat":
                confirmed = self.confirm(tr, model)
                if confirmed is None:
                    continue
                doc, result = confirmed
                try:
                    holds_a = self.property_value(prop.assuming, doc, result) if prop.assuming else True
                    holds_e = self.property_value(prop.expect, doc, result)
                except (PolicyDslError, EvaluationError) as exc:
                    self.notes.append(f"the counterexample to '{prop.name}' could not be evaluated ({exc})")
                    continue
                if holds_a is not True or holds_e is not False:
                    self.notes.append(f"the evaluator did not confirm the counterexample to '{prop.name}'")
                    continue
                out.append(Finding(fid, "property_violated", tr.as_of,
                                   f"property {label} does not hold: a valid household meets its 'assuming' but "
                                   "not its 'expect'", span=prop.span, witness=doc,
                                   evaluation=self.summary(result), detail={"property": prop.name}))
            else:
                out.append(Finding(fid.replace("property.", "undecided.property."), "undecided", tr.as_of,
                                   f"could not decide property {label}", span=prop.span))
        return out

    def bounds(self, pers: list[tuple[date, dict[str, Fraction]]]) -> list[Bound]:
        out = []
        pol = self.policy
        owners: list[tuple[str, n.Node]] = [(r.id if r.kind not in ("precondition", "status_precondition")
                                             else r.kind, c) for r in pol.rules for c in r.conditions]
        owners += [(f"define {d.name}", d) for d in pol.policy.definitions]
        for owner, node in owners:
            for e in node.walk():
                if not isinstance(e, n.Compare):
                    continue
                values = []
                for day, _ in pers:
                    v = self.constant(e.right, day)
                    if v is None or self.constant(e.left, day) is not None:
                        break
                    values.append((day, v))
                else:
                    if values and self.uses_amount(e.left):
                        out.append(Bound(owner, e.span.line, _text(pol, e), e.op, e.word, values))
        return out

    def constant(self, e: n.Expr, day: date) -> Fraction | None:
        """The value of ``e`` when it depends on parameters only (and not on the household)."""
        if not self.uses_parameter(e, set()):
            return None
        params = {k: exact(v.value) for k, v in self.evaluator.parameter_values(day).items()}
        try:
            v = self.compiler.compile(e, frozenset())(Ctx({}, params, day))
        except (KeyError, EvaluationError, TypeError):
            return None
        return None if isinstance(v, (Unknown, bool)) or not isinstance(v, (int, Fraction)) \
            else Fraction(v)

    def uses_parameter(self, e: n.Expr, seen: set[str]) -> bool:
        """Whether ``e`` reads a parameter, directly or through definitions."""
        for x in e.walk():
            if not isinstance(x, n.Name) or x.name in seen:
                continue
            sym = self.policy.symbols.get(x.name)
            if sym is not None and sym.kind == "parameter":
                return True
            if sym is not None and isinstance(sym.decl, n.Definition):
                seen.add(x.name)
                if self.uses_parameter(sym.decl.expr, seen):
                    return True
        return False

    def uses_amount(self, e: n.Expr) -> bool:
        ty = self.policy.types.get(id(e))
        return ty is not None and ty.numeric


def _substitute_outcomes(e: n.Expr, held: set[str], eligible: bool) -> n.Expr:
    """A property expression with each outcome replaced by the yes/no the evaluator gave it."""
    from dataclasses import fields, replace

    if isinstance(e, n.Outcome):
        return n.Boolean(e.span, eligible if e.kind == "eligible" else e.name in held)
    changes: dict[str, Any] = {}
    for f in fields(e):
        value = getattr(e, f.name)
        if isinstance(value, n.Expr):
            new = _substitute_outcomes(value, held, eligible)
            if new is not value:
                changes[f.name] = new
    return replace(e, **changes) if changes else e


def analyze(policy: CheckedPolicy, file: str = "") -> Report:
    """Analyse a checked policy; raises AnalysisUnavailable when the solver is not installed."""
    return Analyzer(policy, file).run()


def render_text(report: Report) -> str:
    """The report in words (``analysis_report.render_text``)."""
    from .analysis_report import render_text as words

    return words(report)

