"""The checked AST as an SMT problem (z3) over exact rationals, for ``analysis``.

One variable per fact of the household, windows unrolled into one variable per month, sets into one
yes/no per enum member, lists into at most MAX_LIST items; amounts are whole 分 (cents), so that every
model is a household a caseworker could write down. ``Translation.plain`` turns a model back into the
household's JSON (a witness).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any

from . import nodes as n
from .checker import CheckedPolicy
from .evaluator import months_before
from .household import LARGEST
from .values import format_amount

try:  # the solver is an optional extra
    import z3
except ImportError:  # pragma: no cover - exercised only without the extra
    z3 = None

MAX_LIST = 3  # list inputs (e.g. students) are considered with 0 to MAX_LIST items
OTHER_TEXT = "(其他)"


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


