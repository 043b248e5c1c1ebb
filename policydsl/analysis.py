"""Policy analysis: overlaps, unreachable rules, redundant conditions, stated properties and bounds.

The checked AST is translated, once per dated parameter value, into an SMT problem over exact rationals
(z3): one variable per fact of the household, windows unrolled into one variable per month, sets into one
yes/no per enum member. Amounts are whole 分 (cents) so that every model is a household a caseworker could
write down. Every finding that claims a household exists comes with that household (a witness), which is
then evaluated by the ordinary evaluator: a finding the evaluator does not confirm is not reported.
Findings that claim no household exists (never overlap, unreachable, redundant, property holds) are proofs
by the solver over every valid household that gives all its facts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import nodes as n
from .checker import CheckedPolicy
from .diagnostics import Diagnostic, PolicyDslError, UsageError
from .evaluator import Compiler, Ctx, EvaluationError, Evaluator, Result, months_before
from .household import LARGEST, load_json, read_household
from .values import Unknown, exact, exact_text, format_amount

try:  # the solver is an optional extra
    import z3
except ImportError:  # pragma: no cover - exercised only without the extra
    z3 = None

INSTALL_HINT = "pip install 'policydsl[analysis]'  (or: pip install z3-solver)"
MAX_LIST = 3  # list inputs (e.g. students) are considered with 0 to MAX_LIST items
TIMEOUT_MS = 20_000  # per question to the solver; an undecided question is reported as such
OTHER_TEXT = "(其他)"


class AnalysisUnavailable(UsageError):
    """The SMT solver is not installed."""

    def __init__(self) -> None:
        super().__init__("policy analysis needs the z3 SMT solver, which is not installed; install it with: "
                         + INSTALL_HINT)


def _mentions_list(goals: tuple[Any, ...]) -> bool:
    """Whether a question involves a list input, whose length the translation bounds by MAX_LIST."""
    seen: set[int] = set()
    stack = list(goals)
    while stack:
        e = stack.pop()
        if e.get_id() in seen:
            continue
        seen.add(e.get_id())
        if z3.is_const(e) and ("#count" in str(e) or ("[" in str(e) and "]." in str(e))):
            return True
        stack.extend(e.children())
    return False


class Unsupported(Exception):
    """A construct the translation does not cover; the rule or property using it is skipped (and said so)."""


def available() -> bool:
    return z3 is not None


# ---------------------------------------------------------------- symbolic values


@dataclass
class EnumV:
    enum: str
    idx: Any  # z3 Int: index of the member


@dataclass
class TextV:
    idx: Any  # z3 Int: index into the policy's text literals; len(texts) stands for any other text


@dataclass
class SetV:
    enum: str
    members: dict[str, Any]  # member → z3 Bool


@dataclass
class SeriesV:
    path: str
    minimum: Fraction | None
    months: dict[str, Any] = field(default_factory=dict)  # month → z3 Int (cents), created when read


@dataclass
class ListV:
    record: str
    length: Any
    items: list[RecV]


@dataclass
class RecV:
    record: str
    fields: dict[str, Any]


@dataclass
class DateV:
    ordinal: Any


@dataclass
class Leaf:
    kind: str  # money, number, count, boolean, text, date, enum
    var: Any
    of: str | None = None


def _q(value: Fraction | int) -> Any:
    f = Fraction(value)
    return z3.RealVal(f"{f.numerator}/{f.denominator}")


# ---------------------------------------------------------------- translation


class Translation:
    """The policy as z3 terms for one assessment date (so one value of every parameter)."""

    def __init__(self, policy: CheckedPolicy, as_of: date, params: dict[str, Fraction]) -> None:
        self.policy = policy
        self.as_of = as_of
        self.params = params
        self.domain: list[Any] = []  # what makes a household valid (declared minimums, sizes)
        self.side: list[Any] = []  # what the evaluator needs to get a result (no division by zero)
        self.grid: list[Any] = []  # amounts in whole 分, for witnesses; proofs are made without it
        self.plausible: list[Any] = []  # tried first, so that witnesses look like real households
        self.texts = sorted({e.value for e in policy.policy.walk() if isinstance(e, n.Text)})
        self.defs: dict[str, Any] = {}
        self.inputs: dict[str, Any] = {}
        for inp in policy.policy.inputs:
            self.inputs[inp.name] = self.make(inp.type, inp.name)
        self.rule_conds: dict[int, list[Any]] = {}
        self.unsupported: dict[int, str] = {}
        for rule in policy.rules:
            try:
                self.rule_conds[id(rule)] = [self.boolean(c.expr, {}) for c in rule.conditions]
            except Unsupported as exc:
                self.unsupported[id(rule)] = str(exc)
        self.own: dict[int, Any] = {k: z3.And(*v) if v else z3.BoolVal(True) for k, v in self.rule_conds.items()}
        self.held: dict[str, Any] = {}
        self.gate: dict[str, Any] = {}
        self.build_outcomes()

    # -- the household's facts
    def make(self, te: n.TypeExpr, path: str) -> Any:
        kind, minimum = te.kind, te.minimum
        if kind == "count":
            var = z3.Int(path)
            self.domain += [var >= int(-(-Fraction(minimum if minimum is not None else -LARGEST + 1) // 1)),
                            var < LARGEST]
            self.plausible += [var <= 6]
            return Leaf(kind, var)
        if kind in ("money", "number"):
            return Leaf(kind, self.amount(path, minimum))
        if kind == "boolean":
            return Leaf(kind, z3.Bool(path))
        if kind == "text":
            var = z3.Int(path)
            self.domain += [var >= 0, var <= len(self.texts)]
            return Leaf(kind, var)
        if kind == "date":
            var = z3.Int(path)
            self.domain += [var >= date(1900, 1, 1).toordinal(), var <= date(2100, 12, 31).toordinal()]
            return Leaf(kind, var)
        if kind == "monthly":
            return SeriesV(path, minimum)
        if kind == "set":
            enum = self.policy.enums[te.of or ""]
            return SetV(enum.name, {m.name: z3.Bool(f"{path}[{m.name}]") for m in enum.members})
        if kind == "named" and te.of in self.policy.enums:
            var = z3.Int(path)
            self.domain += [var >= 0, var < len(self.policy.enums[te.of].members)]
            return Leaf("enum", var, te.of)
        if kind == "named":
            rec = self.policy.records[te.of or ""]
            return RecV(rec.name, {f.name: self.make(f.type, f"{path}.{f.name}") for f in rec.fields})
        if kind == "list":
            length = z3.Int(f"{path}#count")
            self.domain += [length >= 0, length <= MAX_LIST]
            rec = self.policy.records[te.of or ""]
            items = [RecV(rec.name, {f.name: self.make(f.type, f"{path}[{i}].{f.name}") for f in rec.fields})
                     for i in range(MAX_LIST)]
            return ListV(rec.name, length, items)
        raise Unsupported(f"inputs of type {kind}")

    def amount(self, path: str, minimum: Fraction | None) -> Any:
        """A rational variable; ``grid`` keeps it to whole 分 (0.01) so that witnesses are written exactly."""
        var = z3.Real(path)
        self.domain += [var >= _q(minimum if minimum is not None else -LARGEST + 1), var < LARGEST]
        self.grid.append(z3.ToReal(z3.Int(f"{path}#分")) == var * 100)
        self.plausible += [var <= 100_000]
        return var

    def month(self, s: SeriesV, month: str) -> Any:
        var = s.months.get(month)
        if var is None:
            var = s.months[month] = self.amount(f"{s.path}.{month}", s.minimum)
        return var

    # -- expressions
    def value(self, v: Any) -> Any:
        """A leaf as the value expressions see: amounts in 元 (Real), enums and texts as indices."""
        if isinstance(v, Leaf):
            if v.kind in ("money", "number"):
                return v.var
            if v.kind == "count":
                return z3.ToReal(v.var)
            if v.kind == "enum":
                return EnumV(v.of or "", v.var)
            if v.kind == "text":
                return TextV(v.var)
            if v.kind == "date":
                return DateV(v.var)
            return v.var
        return v

    def boolean(self, e: n.Expr, env: dict[str, Any]) -> Any:
        v = self.tr(e, env)
        if not z3.is_bool(v):
            raise Unsupported("a condition that is not a yes/no test")
        return v

    def tr(self, e: n.Expr, env: dict[str, Any]) -> Any:  # noqa: C901 - one case per node kind
        if isinstance(e, (n.Number, n.Money)):
            return _q(e.value)
        if isinstance(e, n.Text):
            return TextV(z3.IntVal(self.texts.index(e.value)))
        if isinstance(e, n.DateLiteral):
            return DateV(z3.IntVal(e.value.toordinal()))
        if isinstance(e, n.Boolean):
            return z3.BoolVal(e.value)
        if isinstance(e, n.Outcome):
            return self.held.get(e.name) if e.kind == "rule" else self.held["__eligible__"]
        if isinstance(e, n.Name):
            return self.name(e, env)
        if isinstance(e, n.Call):
            arg = self.tr(e.argument, env)
            return arg * 12 if e.function == "annual" else arg / 12
        if isinstance(e, n.SetLiteral):
            names = [i.name for i in e.items if isinstance(i, n.Name)]
            enum = self.policy.symbols[names[0]].type.of if names else ""
            members = [m.name for m in self.policy.enums[enum].members] if enum else []
            return SetV(enum or "", {m: z3.BoolVal(m in names) for m in members})
        if isinstance(e, n.Index):
            target, month = self.tr(e.target, env), self.tr(e.index, env)
            if not isinstance(target, SeriesV) or not isinstance(month, str):
                raise Unsupported("an index other than a series at a month of a window")
            return self.month(target, month)
        if isinstance(e, n.FieldAccess):
            target = self.tr(e.target, env)
            if not isinstance(target, RecV):
                raise Unsupported("a field of something that is not a record")
            return self.value(target.fields[e.name])
        if isinstance(e, n.Negate):
            return -self.tr(e.operand, env)
        if isinstance(e, n.BinOp):
            a, b = self.tr(e.left, env), self.tr(e.right, env)
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            if not z3.is_rational_value(z3.simplify(b)):
                self.side.append(b != 0)
            return a / b
        if isinstance(e, n.Compare):
            return self.compare(e, env)
        if isinstance(e, n.Member):
            el, coll = self.tr(e.element, env), self.tr(e.collection, env)
            if not isinstance(el, EnumV) or not isinstance(coll, SetV):
                raise Unsupported("'in' other than an enum value in a set")
            members = list(coll.members)
            inside = z3.Or(*[z3.And(el.idx == i, coll.members[m]) for i, m in enumerate(members)])
            return z3.Not(inside) if e.negated else inside
        if isinstance(e, n.HasAny):
            a, b = self.tr(e.left, env), self.tr(e.right, env)
            if not isinstance(a, SetV) or not isinstance(b, SetV):
                raise Unsupported("'has any of' other than between sets")
            if e.all:
                return z3.And(*[z3.Implies(b.members[m], a.members[m]) for m in b.members])
            return z3.Or(*[z3.And(a.members[m], b.members[m]) for m in a.members])
        if isinstance(e, n.IsEmpty):
            v = self.tr(e.operand, env)
            if isinstance(v, SetV):
                empty = z3.Not(z3.Or(*v.members.values())) if v.members else z3.BoolVal(True)
            elif isinstance(v, ListV):
                empty = v.length == 0
            elif isinstance(v, tuple):
                empty = z3.BoolVal(not v)
            else:
                raise Unsupported("'is empty' of something that is not a set or a list")
            return z3.Not(empty) if e.negated else empty
        if isinstance(e, n.Not):
            return z3.Not(self.tr(e.operand, env))
        if isinstance(e, n.And):
            return z3.And(self.tr(e.left, env), self.tr(e.right, env))
        if isinstance(e, n.Or):
            return z3.Or(self.tr(e.left, env), self.tr(e.right, env))
        if isinstance(e, n.Quantified):
            parts = [(guard, self.tr(e.body, {**env, e.var: item})) for guard, item in self.items(e.iterable, env)]
            if e.every:
                return z3.And(*[z3.Implies(g, b) for g, b in parts]) if parts else z3.BoolVal(True)
            return z3.Or(*[z3.And(g, b) for g, b in parts]) if parts else z3.BoolVal(False)
        if isinstance(e, n.Window):
            anchor = self.tr(e.anchor, env)
            if not isinstance(anchor, date):
                raise Unsupported("a window that does not end at as_of or at a fixed date")
            return months_before(anchor, e.months)
        if isinstance(e, n.Aggregate):
            items = self.items(e.iterable, env)
            if e.function == "count":
                return z3.Sum(*[z3.If(z3.And(g, self.tr(e.body, {**env, e.var: it})), _q(1), _q(0))
                                for g, it in items]) if items else _q(0)
            terms = [z3.If(g, self.tr(e.body, {**env, e.var: it}), _q(0)) for g, it in items]
            total = z3.Sum(*terms) if terms else _q(0)
            if e.function == "sum":
                return total
            size = self.size(e.iterable, env)
            if not z3.is_rational_value(z3.simplify(size)):
                self.side.append(size != 0)
            return total / size
        if isinstance(e, n.Count):
            return self.size(e.operand, env)
        raise Unsupported(type(e).__name__)

    def name(self, e: n.Name, env: dict[str, Any]) -> Any:
        if e.name in env:
            return env[e.name]
        if e.name == "as_of":
            return self.as_of
        sym = self.policy.symbols[e.name]
        if sym.kind == "input":
            return self.value(self.inputs[e.name])
        if sym.kind == "parameter":
            return _q(self.params[e.name])
        if sym.kind == "member":
            enum = self.policy.enums[sym.type.of or ""]
            return EnumV(enum.name, z3.IntVal([m.name for m in enum.members].index(e.name)))
        if e.name not in self.defs:
            decl = sym.decl
            assert isinstance(decl, n.Definition)
            self.defs[e.name] = self.tr(decl.expr, {})
        return self.defs[e.name]

    def items(self, e: n.Expr, env: dict[str, Any]) -> list[tuple[Any, Any]]:
        """(guard, item) for each item a loop can see: months of a window, items of a list, members of a set."""
        v = self.tr(e, env)
        if isinstance(v, tuple):
            return [(z3.BoolVal(True), m) for m in v]
        if isinstance(v, ListV):
            return [(v.length > i, item) for i, item in enumerate(v.items)]
        if isinstance(v, SetV):
            members = list(self.policy.enums[v.enum].members)
            return [(v.members[m.name], EnumV(v.enum, z3.IntVal(i))) for i, m in enumerate(members)]
        raise Unsupported("a loop over something that is not a window, a list or a set")

    def size(self, e: n.Expr, env: dict[str, Any]) -> Any:
        v = self.tr(e, env)
        if isinstance(v, tuple):
            return _q(len(v))
        if isinstance(v, ListV):
            return z3.ToReal(v.length)
        if isinstance(v, SetV):
            return z3.Sum(*[z3.If(b, _q(1), _q(0)) for b in v.members.values()])
        raise Unsupported("'count of' something that is not a window, a list or a set")

    def compare(self, e: n.Compare, env: dict[str, Any]) -> Any:
        a, b = self.tr(e.left, env), self.tr(e.right, env)
        if isinstance(a, (EnumV, TextV, DateV)):
            a = a.ordinal if isinstance(a, DateV) else a.idx
            b = b.ordinal if isinstance(b, DateV) else b.idx
        elif isinstance(a, date) or isinstance(b, date):
            a = z3.IntVal(a.toordinal()) if isinstance(a, date) else a.ordinal
            b = z3.IntVal(b.toordinal()) if isinstance(b, date) else b.ordinal
        elif isinstance(a, (SetV, ListV, tuple, str)):
            raise Unsupported("comparing sets, lists or months")
        ops: dict[str, Callable[[Any, Any], Any]] = {
            "<": lambda x, y: x < y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y,
            ">=": lambda x, y: x >= y, "=": lambda x, y: x == y, "!=": lambda x, y: x != y}
        return ops[e.op](a, b)

    # -- the outcomes, with the gates of the evaluator
    def build_outcomes(self) -> None:
        pol = self.policy
        true = z3.BoolVal(True)

        def own(rule: n.Rule | None) -> Any:
            return true if rule is None else self.own.get(id(rule), None)

        pre = own(pol.precondition)
        eligible = []
        for rule in pol.categories:
            if pre is not None and own(rule) is not None:
                self.gate[rule.id] = pre
                self.held[rule.id] = z3.And(pre, own(rule))
                eligible.append(self.held[rule.id])
        self.held["__eligible__"] = z3.Or(*eligible) if eligible else z3.BoolVal(False)
        for rule in pol.measures:
            if own(rule) is not None:
                self.gate[rule.id] = self.held["__eligible__"]
                self.held[rule.id] = z3.And(self.held["__eligible__"], own(rule))
        spre = own(pol.status_precondition)
        before = true
        for rule in pol.statuses:
            if spre is None or own(rule) is None or before is None:
                before = None
                continue
            self.gate[rule.id] = z3.And(spre, before)
            self.held[rule.id] = z3.And(spre, before, own(rule))
            before = z3.And(before, z3.Not(own(rule)))

    # -- witnesses
    def household(self, model: Any) -> dict[str, Any]:
        """The household a model describes, as the JSON document `policy eval` reads."""
        doc: dict[str, Any] = {"as_of": self.as_of.isoformat()}
        for name, v in self.inputs.items():
            doc[name] = self.plain(v, model)
        return doc

    def plain(self, v: Any, model: Any) -> Any:
        def ev(x: Any) -> Any:
            return model.eval(x, model_completion=True)

        if isinstance(v, Leaf):
            if v.kind == "boolean":
                return z3.is_true(ev(v.var))
            if v.kind in ("money", "number"):
                return _amount(ev(v.var).as_fraction(), v.kind)
            k = ev(v.var).as_long()
            if v.kind == "count":
                return k
            if v.kind == "text":
                return self.texts[k] if k < len(self.texts) else _other(self.texts)
            if v.kind == "date":
                return date.fromordinal(k).isoformat()
            return self.policy.enums[v.of or ""].members[k].name
        if isinstance(v, SeriesV):
            return {m: _amount(ev(var).as_fraction(), "money") for m, var in sorted(v.months.items())}
        if isinstance(v, SetV):
            return [m for m, b in v.members.items() if z3.is_true(ev(b))]
        if isinstance(v, RecV):
            return {k: self.plain(f, model) for k, f in v.fields.items()}
        if isinstance(v, ListV):
            return [self.plain(item, model) for item in v.items[:ev(v.length).as_long()]]
        raise AssertionError(v)


def _amount(value: Fraction, kind: str) -> Any:
    if value.denominator == 1:
        return value.numerator
    return format_amount(value) if kind == "money" else float(format_amount(value))


def _other(texts: list[str]) -> str:
    other = OTHER_TEXT
    while other in texts:
        other += "_"
    return other


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


# ---------------------------------------------------------------- the text report


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
