"""Checking: one pass over the AST that resolves names, infers types and reports every problem.

The result, a ``CheckedPolicy``, is the only thing the evaluator accepts.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from functools import cached_property
from typing import Any

from . import nodes as n
from . import types as t
from .diagnostics import Diagnostic, PolicyError
from .types import Type

MAX_WINDOW = 1200  # months: a century, far beyond any rule, and quick to evaluate
BOUNDARY_WORDS = ("低于", "不满", "超过", "达到", "届满", "以上", "以下", "以内", "以外")
FUNCTIONS = {"annual": "a monthly amount ×12, as a 12-month amount",
             "monthly": "a 12-month amount ÷12, as a monthly amount"}


@dataclass(frozen=True, slots=True)
class Symbol:
    """A name usable in expressions: kind is input, parameter, definition, member or builtin."""

    name: str
    kind: str
    type: Type
    decl: n.Node | None
    label: str | None = None


@dataclass
class CheckedPolicy:
    """A policy that passed the checker: symbols resolved, rules grouped, warnings kept."""

    policy: n.Policy
    symbols: dict[str, Symbol]
    enums: dict[str, n.Enum]
    records: dict[str, n.Record]
    types: dict[int, Type]  # id(expr node) -> type
    precondition: n.Rule | None
    categories: list[n.Rule]
    measures: list[n.Rule]
    status_precondition: n.Rule | None
    statuses: list[n.Rule]
    report: list[str]
    warnings: list[Diagnostic] = field(default_factory=list)
    properties: list[n.Property] = field(default_factory=list)  # outcome names resolved (n.Outcome)

    @property
    def id(self) -> str:
        return self.policy.header.id

    @cached_property
    def sha256(self) -> str:
        """Fingerprint of the policy text, so a result names exactly the rules that produced it."""
        texts = [self.policy.sources[f] for f in sorted(self.policy.sources)] or [self.policy.source]
        return hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()

    @property
    def parameters(self) -> dict[str, n.Parameter]:
        return {p.name: p for p in self.policy.parameters}

    @property
    def rules(self) -> list[n.Rule]:
        return list(self.policy.rules)


def _suggest(name: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


class Checker:
    """Collects diagnostics over the whole policy; never stops at the first one."""

    def __init__(self, policy: n.Policy) -> None:
        self.policy = policy
        self.diags: list[Diagnostic] = []
        self.symbols: dict[str, Symbol] = {}
        self.enums: dict[str, n.Enum] = {}
        self.records: dict[str, n.Record] = {}
        self.types: dict[int, Type] = {}
        self.used: set[str] = set()
        self.def_types: dict[str, Type] = {}
        self.def_stack: list[str] = []
        self.defs = {d.name: d for d in policy.definitions}
        self.reported_cycles: set[frozenset[str]] = set()

    # -- reporting
    def error(self, code: str, message: str, span: n.Span, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(code, "error", message, span, hint))

    def warn(self, code: str, message: str, span: n.Span, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(code, "warning", message, span, hint))

    # -- the pass
    def run(self) -> CheckedPolicy:
        p = self.policy
        self.check_header(p.header)
        self.check_amendments()
        self.declare_types()
        self.declare_values()
        for param in p.parameters:
            self.check_parameter(param)
        for d in p.definitions:
            self.definition_type(d)
        rules = self.check_rules()
        properties = self.check_properties()
        report = self.check_reports()
        self.check_unused()
        errors = [d for d in self.diags if d.severity == "error"]
        self.diags.sort(key=lambda d: (d.span.line, d.span.column))
        if errors:
            raise PolicyError(self.diags, p.sources or p.source)
        return CheckedPolicy(p, self.symbols, self.enums, self.records, self.types, *rules, report,
                             [d for d in self.diags if d.severity == "warning"], properties)

    def check_amendments(self) -> None:
        for a in self.policy.amendments:  # left only when the policy names no policy to amend
            self.error("E130", f"'{a.action} {a.kind} {a.id}' amends a policy, but this one does not extend any",
                       a.span, "name the policy it changes in the header: extends \"anju_2019.policy\"")

    def check_header(self, h: n.Header) -> None:
        if h.in_force and h.in_force[0] > h.in_force[1]:
            self.error("E110", f"the policy ends ({h.in_force[1]}) before it starts ({h.in_force[0]})", h.span,
                       "swap the two dates of 'in force from … to …'")

    def declare_types(self) -> None:
        seen: dict[str, n.Enum | n.Record] = {}
        decls: list[n.Enum | n.Record] = sorted([*self.policy.enums, *self.policy.records], key=lambda d: d.span.start)
        for decl in decls:
            if decl.name in seen:
                self.error("E103", f"'{decl.name}' is declared twice as a type", decl.span,
                           f"the first declaration is at line {seen[decl.name].span.line}; rename one of them")
                continue
            seen[decl.name] = decl
            if isinstance(decl, n.Enum):
                self.enums[decl.name] = decl
                names: set[str] = set()
                for m in decl.members:
                    if m.name in names:
                        self.error("E103", f"'{m.name}' is listed twice in enum '{decl.name}'", m.span)
                    names.add(m.name)
            else:
                self.records[decl.name] = decl
                names = set()
                for f in decl.fields:
                    if f.name in names:
                        self.error("E103", f"field '{f.name}' is declared twice in record '{decl.name}'", f.span)
                    names.add(f.name)
        for rec in self.policy.records:
            for f in rec.fields:
                self.resolve_type(f.type)

    def resolve_type(self, te: n.TypeExpr) -> Type:
        """The Type a declaration names; reports unknown or misused type names."""
        if te.kind in ("set", "list", "named"):
            assert te.of is not None
            pool = self.enums if te.kind == "set" else self.records if te.kind == "list" else \
                {**self.enums, **self.records}
            if te.of not in pool:
                what = {"set": "an enum", "list": "a record", "named": "a type"}[te.kind]
                sugg = _suggest(te.of, list(pool))
                self.error("E100", f"'{te.of}' is not {what} declared in this policy", te.span,
                           f"did you mean '{sugg}'?" if sugg else
                           f"declare it with '{'enum' if te.kind == 'set' else 'record'} {te.of} …' first")
                return t.ERROR
            if te.kind == "set":
                result = Type("set", of=te.of)
            elif te.kind == "list":
                result = Type("list", of=te.of)
            else:
                result = Type("enum" if te.of in self.enums else "record", of=te.of)
        else:
            result = {
                "money": Type("money", te.period), "monthly": Type("series", "month"), "count": t.COUNT,
                "number": t.NUMBER, "boolean": t.BOOLEAN, "date": t.DATE, "text": t.TEXT,
            }[te.kind]
        if te.minimum is not None and te.kind not in ("money", "monthly", "count", "number"):
            self.error("E101", f"a lower bound only applies to amounts and counts, not to {result.describe()}",
                       te.span, "remove the '>= …' part")
        return result

    def add_symbol(self, sym: Symbol, span: n.Span) -> None:
        if sym.name == "as_of" or sym.name in FUNCTIONS:
            self.error("E103", f"'{sym.name}' is a built-in name and cannot be declared again", span)
            return
        if sym.name in self.symbols:
            first = self.symbols[sym.name]
            where = ""
            if first.decl:
                where = f" (line {first.decl.span.line})" if first.decl.span.file == span.file \
                    else f" ({first.decl.span})"
            inherited = first.decl is not None and first.decl.span.file != span.file
            self.error("E103", f"'{sym.name}' is already declared as {first.kind} {first.name}{where}", span,
                       f"to change the inherited one, write 'replace define {sym.name} = …'"
                       if inherited and sym.kind == "definition" else
                       "each name may be declared once; rename one of them")
            return
        self.symbols[sym.name] = sym

    def declare_values(self) -> None:
        self.symbols["as_of"] = Symbol("as_of", "builtin", t.DATE, None, "评估日期")
        for e in self.policy.enums:
            if self.enums.get(e.name) is not e:
                continue  # a second type of the same name: already reported
            declared: set[str] = set()
            for m in e.members:
                if m.name not in declared:  # a member listed twice was reported by declare_types
                    declared.add(m.name)
                    self.add_symbol(Symbol(m.name, "member", Type("enum", of=e.name), m, m.label), m.span)
        for i in self.policy.inputs:
            self.add_symbol(Symbol(i.name, "input", self.resolve_type(i.type), i, i.label), i.span)
        for param in self.policy.parameters:
            ty = self.resolve_type(param.type) if param.type is not None else t.ERROR
            self.add_symbol(Symbol(param.name, "parameter", ty, param, param.label),
                            param.span)
        for d in self.policy.definitions:
            # the type is filled in once inferred
            self.add_symbol(Symbol(d.name, "definition", t.ERROR, d, d.label), d.span)

    def check_parameter(self, param: n.Parameter) -> None:
        if param.type is None:
            self.error("E101", f"parameter '{param.name}' has no type", param.span,
                       "write its type, e.g. ': money per month'; without one, a parameter only adds values to "
                       "the parameter of that name in the policy this one 'extends'")
            return
        ty = self.resolve_type(param.type)
        if ty.kind not in ("money", "count", "number", "error"):
            self.error("E101", f"parameter '{param.name}' must be an amount, a count or a number, "
                               f"not {ty.describe()}", param.type.span)
        if not param.values:
            self.error("E105", f"parameter '{param.name}' has no value", param.span,
                       "add a dated value, e.g. 'from 2019-01-01 = 560'")
            return
        starts = [v.start for v in param.values]
        for a, b in zip(param.values, param.values[1:], strict=False):
            if b.start == a.start:
                self.error("E106", f"'{param.name}' has two values from {b.start}", b.span,
                           "keep one value per date")
            elif b.start < a.start:
                self.error("E106", f"the values of '{param.name}' must be in date order, but the value from "
                                   f"{b.start} is listed after the one from {a.start}", b.span,
                           "list the dated values from the oldest to the newest")
        for a, b in zip(param.values, param.values[1:], strict=False):
            if a.until is not None and a.until + timedelta(days=1) < b.start:
                self.warn("W208", f"'{param.name}' has no value from {a.until + timedelta(days=1)} to "
                                  f"{b.start - timedelta(days=1)}: the value from {a.start} ends on {a.until}",
                          b.span, "extend the earlier value, or start the next one earlier")
        for v in param.values:
            if v.until is not None and v.until < v.start:
                self.error("E106", f"the value of '{param.name}' from {v.start} is meant to end on {v.until}, "
                                   "before it starts", v.span)
            if param.type.minimum is not None and v.value < param.type.minimum:
                self.error("E101", f"the value {v.text} of '{param.name}' is below its lower bound "
                                   f"{param.type.minimum}", v.span)
            if v.confirmed is None:
                self.warn("W204", f"the value {v.text} of '{param.name}' from {v.start} does not say whether it "
                                  "is confirmed", v.span, "add 'confirmed \"source\"' or 'unconfirmed \"why\"'")
        force = self.policy.header.in_force
        if force and min(starts) > force[0]:
            gap_end = min(starts) - timedelta(days=1)
            self.error("E105", f"parameter '{param.name}' has no value from {force[0]} to {gap_end}, while the "
                               "policy is in force", param.span,
                       f"add a value 'from {force[0]} = …' or start the policy on {min(starts)}")

    # -- expressions
    def definition_type(self, d: n.Definition) -> Type:
        if d.name in self.def_types:
            return self.def_types[d.name]
        if d.name in self.def_stack:
            cycle = [*self.def_stack[self.def_stack.index(d.name):], d.name]
            key = frozenset(cycle)
            if key not in self.reported_cycles:
                self.reported_cycles.add(key)
                self.error("E104", "these definitions depend on each other in a circle: " + " → ".join(cycle),
                           d.span, "a definition cannot use itself, directly or through others")
            return t.ERROR
        self.def_stack.append(d.name)
        ty = self.expr(d.expr, {})
        self.def_stack.pop()
        self.def_types[d.name] = ty
        sym = self.symbols.get(d.name)
        if sym is not None and sym.decl is d:
            self.symbols[d.name] = Symbol(d.name, "definition", ty, d, d.label)
        return ty

    def expr(self, e: n.Expr, scope: dict[str, Type]) -> Type:
        ty = self._expr(e, scope)
        self.types[id(e)] = ty
        return ty

    def numeric(self, e: n.Expr, scope: dict[str, Type], what: str) -> Type:
        ty = self.expr(e, scope)
        if ty.kind != "error" and not ty.numeric:
            self.error("E101", f"{what} needs an amount or a number, but this is {ty.describe()}", e.span)
            return t.ERROR
        return ty

    def boolean(self, e: n.Expr, scope: dict[str, Type], what: str = "a condition") -> Type:
        ty = self.expr(e, scope)
        if ty.kind not in ("boolean", "error"):
            hint = None
            if ty.numeric:
                hint = "compare it with something, e.g. '… >= 1' or '… 低于 dibao_standard'"
            elif ty.kind in ("set", "list"):
                hint = "test it, e.g. '… is not empty' or 'x in …'"
            self.error("E101", f"{what} must be a yes/no test, but this is {ty.describe()}", e.span, hint)
            return t.ERROR
        return t.BOOLEAN

    def _expr(self, e: n.Expr, scope: dict[str, Type]) -> Type:  # noqa: C901 - one case per node kind
        if isinstance(e, n.Number):
            return t.LITERAL
        if isinstance(e, n.Money):
            return t.MONEY
        if isinstance(e, n.Text):
            return t.TEXT
        if isinstance(e, n.DateLiteral):
            return t.DATE
        if isinstance(e, (n.Boolean, n.Outcome)):
            return t.BOOLEAN
        if isinstance(e, n.Name):
            return self.name(e, scope)
        if isinstance(e, n.Call):
            arg = self.expr(e.argument, scope)
            if e.function not in FUNCTIONS:
                sugg = _suggest(e.function, list(FUNCTIONS))
                self.error("E100", f"there is no function '{e.function}'", e.span,
                           f"did you mean '{sugg}'?" if sugg else "the functions are: " + ", ".join(
                               f"{k} ({v})" for k, v in FUNCTIONS.items()))
                return t.ERROR
            want, out = ("month", "year") if e.function == "annual" else ("year", "month")
            if arg.kind == "error":
                return Type("money", out)
            if arg.kind != "money" or arg.period != want:
                self.error("E101", f"{e.function}(…) converts {Type('money', want).describe()}, "
                                   f"but this is {arg.describe()}", e.argument.span)
            return Type("money", out)
        if isinstance(e, n.SetLiteral):
            enum_name: str | None = None
            for item in e.items:
                ty = self.expr(item, scope)
                if ty.kind == "error":
                    continue
                if ty.kind != "enum":
                    self.error("E101", f"a set lists enum values, but this is {ty.describe()}", item.span)
                elif enum_name is None:
                    enum_name = ty.of
                elif ty.of != enum_name:
                    self.error("E101", f"a set mixes {enum_name} values with {ty.of} values", item.span)
            if not e.items:
                self.error("E101", "an empty set {} has no values to test", e.span,
                           "to test that a set has no values, write '… is empty'")
            return Type("set", of=enum_name) if enum_name else t.ERROR
        if isinstance(e, n.Index):
            target = self.expr(e.target, scope)
            index = self.expr(e.index, scope)
            if target.kind not in ("series", "error"):
                self.error("E101", f"only a monthly series can be indexed by month, but this is "
                                   f"{target.describe()}", e.target.span)
                return t.ERROR
            if index.kind not in ("month", "error"):
                self.error("E101", f"a monthly series is indexed by a month, but this is {index.describe()}",
                           e.index.span, "loop over a window: 'every m in window: series[m] …'")
            return Type("money", "month")
        if isinstance(e, n.FieldAccess):
            target = self.expr(e.target, scope)
            if target.kind == "error":
                return t.ERROR
            if target.kind != "record":
                self.error("E101", f"'.{e.name}' needs a record, but this is {target.describe()}", e.span)
                return t.ERROR
            assert target.of is not None
            rec = self.records[target.of]
            for f in rec.fields:
                if f.name == e.name:
                    return self.resolve_type(f.type)
            sugg = _suggest(e.name, [f.name for f in rec.fields])
            fields = ", ".join(f.name for f in rec.fields)
            self.error("E100", f"record '{rec.name}' has no field '{e.name}'", e.span,
                       f"did you mean '{sugg}'?" if sugg else f"its fields are: {fields}")
            return t.ERROR
        if isinstance(e, n.Negate):
            return self.numeric(e.operand, scope, "'-'")
        if isinstance(e, n.BinOp):
            return self.binop(e, scope)
        if isinstance(e, n.Compare):
            self.compare(e, scope)
            return t.BOOLEAN
        if isinstance(e, n.Member):
            el = self.expr(e.element, scope)
            coll = self.expr(e.collection, scope)
            if coll.kind not in ("set", "error"):
                self.error("E101", f"'in' needs a set on its right, but this is {coll.describe()}", e.collection.span)
            elif el.kind not in ("enum", "error"):
                self.error("E101", f"'in' tests one enum value, but this is {el.describe()}", e.element.span)
            elif coll.kind == "set" and el.kind == "enum" and el.of != coll.of:
                self.error("E101", f"'{el.of}' values are never in a set of {coll.of} values", e.span)
            return t.BOOLEAN
        if isinstance(e, n.HasAny):
            left = self.expr(e.left, scope)
            right = self.expr(e.right, scope)
            for side, ty in ((e.left, left), (e.right, right)):
                if ty.kind not in ("set", "error"):
                    self.error("E101", f"'has {'all' if e.all else 'any'} of' compares two sets, but this is "
                                       f"{ty.describe()}", side.span)
            if left.kind == right.kind == "set" and left.of != right.of:
                self.error("E101", f"a set of {left.of} values never shares values with a set of {right.of} values",
                           e.span)
            return t.BOOLEAN
        if isinstance(e, n.IsEmpty):
            ty = self.expr(e.operand, scope)
            if ty.kind not in ("set", "list", "error"):
                self.error("E101", f"'is empty' needs a set or a list, but this is {ty.describe()}", e.operand.span)
            return t.BOOLEAN
        if isinstance(e, n.Not):
            self.boolean(e.operand, scope, "the operand of 'not'")
            return t.BOOLEAN
        if isinstance(e, (n.And, n.Or)):
            word = "and" if isinstance(e, n.And) else "or"
            self.boolean(e.left, scope, f"each side of '{word}'")
            self.boolean(e.right, scope, f"each side of '{word}'")
            return t.BOOLEAN
        if isinstance(e, n.Quantified):
            var_type = self.iteration(e.iterable, scope)
            self.boolean(e.body, {**scope, e.var: var_type}, f"the test after '{'every' if e.every else 'any'} …:'")
            return t.BOOLEAN
        if isinstance(e, n.Window):
            anchor = self.expr(e.anchor, scope)
            if anchor.kind not in ("date", "error"):
                self.error("E101", f"a window counts back from a date, but this is {anchor.describe()}",
                           e.anchor.span, "write e.g. 'last 6 months before as_of'")
            if not 1 <= e.months <= MAX_WINDOW:
                self.error("E101", f"a window has from 1 to {MAX_WINDOW} months, not {e.months}", e.span)
                return Type("window")  # no length: no knock-on period errors
            return Type("window", of=str(e.months))
        if isinstance(e, n.Aggregate) and e.function == "count":
            var_type = self.iteration(e.iterable, scope)
            self.boolean(e.body, {**scope, e.var: var_type}, "the test after 'where'")
            return t.COUNT
        if isinstance(e, n.Aggregate):
            var_type = self.iteration(e.iterable, scope)
            body = self.numeric(e.body, {**scope, e.var: var_type}, f"'{e.function} of'")
            if body.kind == "count":
                return t.COUNT if e.function == "sum" else t.NUMBER
            if body.kind == "error":
                return t.ERROR
            window = self.types.get(id(e.iterable))
            if e.function == "sum" and body.period == "month" and window and window.kind == "window" and window.of:
                months = int(window.of)  # a sum of monthly amounts over N months is an N-month total
                return Type("money", "month" if months == 1 else "year" if months == 12 else f"{months} months")
            return Type(body.kind, body.period)
        if isinstance(e, n.Count):
            ty = self.expr(e.operand, scope)
            if ty.kind not in ("set", "list", "window", "error"):
                self.error("E101", f"'count of' needs a list or a set, but this is {ty.describe()}", e.operand.span)
            return t.COUNT
        raise AssertionError(f"unhandled node {type(e).__name__}")

    def iteration(self, e: n.Expr, scope: dict[str, Type]) -> Type:
        """The type of the loop variable when iterating over ``e``."""
        ty = self.expr(e, scope)
        if ty.kind == "window":
            return t.MONTH
        if ty.kind == "list":
            return Type("record", of=ty.of)
        if ty.kind == "set":
            return Type("enum", of=ty.of)
        if ty.kind != "error":
            self.error("E101", f"can only go over a window of months, a list or a set, but this is {ty.describe()}",
                       e.span, "write e.g. 'last 6 months before as_of'")
        return t.ERROR

    def name(self, e: n.Name, scope: dict[str, Type]) -> Type:
        if e.name in scope:
            return scope[e.name]
        sym = self.symbols.get(e.name)
        if sym is not None:
            self.used.add(e.name)
            if sym.kind == "definition":
                assert isinstance(sym.decl, n.Definition)
                return self.definition_type(sym.decl)
            return sym.type
        if e.name in self.records or e.name in self.enums:
            self.error("E100", f"'{e.name}' is a type, not a value", e.span,
                       "use an input declared with this type instead")
            return t.ERROR
        self.error("E100", f"'{e.name}' is not defined", e.span, self.name_hint(e.name, scope))
        return t.ERROR

    def name_hint(self, name: str, scope: dict[str, Type]) -> str | None:
        if name in self.policy.removed:
            return (f"'{name}' was removed by the amendment at {self.policy.removed[name]}, but is still used "
                    "here: replace or remove this too")
        rule = next((r for r in self.policy.rules if r.id == name), None)
        if rule is not None:
            return (f"'{name}' is a {rule.kind}, and a rule cannot use another rule's outcome; put the shared "
                    "conditions in a 'define' and use that name in both rules")
        for sym in self.symbols.values():
            if sym.label and sym.label == name:
                return f"'{name}' is the label of '{sym.name}'; write the name '{sym.name}'"
        for word in BOUNDARY_WORDS:
            if word in name:
                left, _, right = name.partition(word)
                return f"put spaces around the boundary word: '{left} {word} {right}'"
        candidates = list(scope) + list(self.symbols)
        sugg = _suggest(name, candidates)
        if sugg:
            return f"did you mean '{sugg}'?"
        return "declare it with 'input', 'parameter' or 'define' first"

    def binop(self, e: n.BinOp, scope: dict[str, Type]) -> Type:
        word = {"+": "'+'", "-": "'-'", "*": "'*'", "/": "'/'"}[e.op]
        left = self.numeric(e.left, scope, f"{word}")
        right = self.numeric(e.right, scope, f"{word}")
        if "error" in (left.kind, right.kind):
            return t.ERROR
        if e.op in "+-":
            if left.kind == "money" or right.kind == "money":
                return self.unify_money(e, left, right, "add" if e.op == "+" else "subtract")
            if left.literal and right.literal:
                return t.LITERAL
            return t.COUNT if {left.kind, right.kind} == {"count"} else t.NUMBER
        if e.op == "*":
            if left.kind == "money" and right.kind == "money":
                self.error("E101", "two amounts of money cannot be multiplied", e.span)
                return t.ERROR
            money = left if left.kind == "money" else right if right.kind == "money" else None
            if money:
                return money
            if left.literal and right.literal:
                return t.LITERAL
            return t.COUNT if left.kind == right.kind == "count" else t.NUMBER
        # division
        if isinstance(e.right, n.Number) and e.right.value == 0:
            self.error("E101", "this divides by 0", e.right.span)
            return t.ERROR
        if self.may_be_zero(e.right):
            divisor = self.policy.text_of(e.right)
            self.warn("W207", f"this divides by '{divisor}', which can be 0 for some households", e.right.span,
                      "declare it '>= 1' if it can never be 0, or test it first in an earlier 'requires'")
        if right.kind == "money":
            if left.kind != "money":
                self.error("E101", f"{left.describe()} cannot be divided by an amount of money", e.span)
                return t.ERROR
            self.unify_money(e, left, right, "divide")
            return t.NUMBER
        if left.kind == "money":
            return left
        return t.LITERAL if left.literal and right.literal else t.NUMBER

    def unify_money(self, e: n.Expr, left: Type, right: Type, verb: str) -> Type:
        """Money with money (periods must agree) or with a literal number; anything else is an error."""
        for ty in (left, right):
            if ty.kind != "money" and not ty.literal:
                other = right if ty is left else left
                self.error("E101", f"cannot {verb} {left.describe()} and {right.describe()}", e.span,
                           f"{ty.describe()} and {other.describe()} are different kinds of quantity")
                return t.ERROR
        periods = {ty.period for ty in (left, right) if ty.kind == "money" and ty.period}
        if len(periods) > 1:
            hint = ("convert one side explicitly: annual(x) turns a monthly amount into a 12-month one, "
                    "monthly(x) the other way")
            times_12 = next(filter(None, (self.scaled_by_12(side, set()) for side in
                                          (getattr(e, "left", None), getattr(e, "right", None)))), None)
            if times_12 is not None:
                hint = (f"line {times_12.span.line} multiplies a monthly amount by 12, which keeps it a monthly "
                        "amount; write annual(…) there to make it a 12-month amount")
            self.error("E102", f"cannot {verb} {left.describe()} and {right.describe()}", e.span, hint)
            return t.ERROR
        return Type("money", periods.pop() if periods else None)

    def scaled_by_12(self, e: n.Expr | None, seen: set[str]) -> n.BinOp | None:
        """Where ``e`` (or a definition it uses) multiplies a monthly amount by 12: the usual slip for annual()."""
        if e is None:
            return None
        for node in e.walk():
            if isinstance(node, n.BinOp) and node.op == "*":
                for a, b in ((node.left, node.right), (node.right, node.left)):
                    if isinstance(b, n.Number) and b.value == 12 and self.types.get(id(a)) == t.MONEY_MONTH:
                        return node
            if isinstance(node, n.Name) and node.name in self.defs and node.name not in seen:
                seen.add(node.name)
                found = self.scaled_by_12(self.defs[node.name].expr, seen)
                if found is not None:
                    return found
        return None

    def may_be_zero(self, e: n.Expr) -> bool:
        """Whether a divisor can be 0 according to its declaration (a count without '>= 1', a list's count)."""
        if isinstance(e, n.Number):
            return e.value == 0
        if isinstance(e, n.Count):
            return True
        decl_type: n.TypeExpr | None = None
        if isinstance(e, n.Name) and e.name in self.symbols and self.symbols[e.name].kind == "input":
            decl = self.symbols[e.name].decl
            decl_type = decl.type if isinstance(decl, n.Input) else None
        elif isinstance(e, n.FieldAccess):
            record_type = self.types.get(id(e.target))
            if record_type is not None and record_type.of in self.records:
                decl_type = next((f.type for f in self.records[record_type.of].fields if f.name == e.name), None)
        if decl_type is None or decl_type.kind not in ("count", "number", "money"):
            return False
        return decl_type.minimum is None or decl_type.minimum <= 0

    def compare(self, e: n.Compare, scope: dict[str, Type]) -> None:
        left = self.expr(e.left, scope)
        right = self.expr(e.right, scope)
        if "error" in (left.kind, right.kind):
            return
        word = f"'{e.word or e.op}'"
        if left.numeric and right.numeric:
            if left.kind == "money" or right.kind == "money":
                self.unify_money(e, left, right, f"compare ({word})")
            return
        if left.kind != right.kind or left.of != right.of:
            hint = "both sides must be the same kind of value"
            for ty, other in ((left, e.right), (right, e.left)):
                if ty.kind == "enum" and isinstance(other, n.Text) and ty.of in self.enums \
                        and other.value in {m.name for m in self.enums[ty.of].members}:
                    hint = f"values of {ty.of} are written without quotes: {other.value}"
            self.error("E101", f"{word} compares {left.describe()} with {right.describe()}", e.span, hint)
            return
        if e.op not in ("=", "!=") and left.kind not in ("date",):
            self.error("E101", f"{word} cannot order values of this kind ({left.describe()}); only '=' and '!=' "
                               "apply to them", e.span)

    # -- rules
    def check_rules(self) -> tuple[n.Rule | None, list[n.Rule], list[n.Rule], n.Rule | None, list[n.Rule]]:
        seen: dict[str, n.Rule] = {}
        pre: n.Rule | None = None
        spre: n.Rule | None = None
        cats: list[n.Rule] = []
        measures: list[n.Rule] = []
        statuses: list[n.Rule] = []
        for rule in self.policy.rules:
            if rule.kind in ("precondition", "status_precondition"):
                current = pre if rule.kind == "precondition" else spre
                if current is not None:
                    self.error("E103", f"a second {rule.kind.replace('_', ' ')}; the first is at line "
                                       f"{current.span.line}", rule.span,
                               "put all its conditions under one precondition, one 'requires' each")
                if rule.kind == "precondition":
                    pre = rule
                else:
                    spre = rule
            else:
                if rule.id in seen:
                    first = seen[rule.id].span
                    where = f"line {first.line}" if first.file == rule.span.file else str(first)
                    hint = "every category, measure and status needs its own id"
                    if first.file != rule.span.file:
                        hint = f"to change the inherited one, write 'replace {rule.kind} {rule.id} …'"
                    self.error("E103", f"the id '{rule.id}' is used twice (first at {where})",
                               rule.id_span or rule.span, hint)
                seen[rule.id] = rule
                {"category": cats, "measure": measures, "status": statuses}[rule.kind].append(rule)
            if rule.clause is None and rule.kind in ("category", "measure", "status"):
                self.warn("W206", f"{rule.kind} '{rule.id}' does not cite the clause it encodes",
                          rule.id_span or rule.span, "add a line 'clause \"…\"' quoting the text of the notice")
            if rule.mode == "otherwise" and rule.kind != "status":
                self.error("E107", f"'otherwise' is only for the last status, not for a {rule.kind}", rule.span,
                           "write its conditions with 'requires', or 'always'")
            for cond in rule.conditions:
                self.boolean(cond.expr, {})
        for i, rule in enumerate(statuses):
            if rule.mode == "otherwise" and i != len(statuses) - 1:
                self.error("E107", f"status '{rule.id}' says 'otherwise' but is not the last status", rule.span,
                           "the statuses after it could never be chosen; move it to the end")
        if statuses and spre is None:
            pass  # statuses apply to every household
        return pre, cats, measures, spre, statuses

    def check_properties(self) -> list[n.Property]:
        """Stated properties: yes/no tests where rule ids and 'eligible' name outcomes (only here)."""
        ids = {r.id for r in self.policy.rules if r.kind in ("category", "measure", "status")}
        out: list[n.Property] = []
        seen: dict[str, n.Property] = {}
        for prop in self.policy.properties:
            if prop.name in seen:
                self.error("E103", f"the property '{prop.name}' is stated twice (first at line "
                                   f"{seen[prop.name].span.line})", prop.span, "give each property its own name")
            seen[prop.name] = prop
            assuming = _with_outcomes(prop.assuming, ids, self.symbols, frozenset()) if prop.assuming else None
            expect = _with_outcomes(prop.expect, ids, self.symbols, frozenset())
            if assuming is not None:
                self.boolean(assuming, {}, "the test after 'assuming'")
            self.boolean(expect, {}, "the test after 'expect'")
            out.append(n.Property(prop.span, prop.name, prop.label, assuming, expect))
        return out

    def check_reports(self) -> list[str]:
        names: list[str] = []
        for rep in self.policy.reports:
            for rn in rep.names:
                sym = self.symbols.get(rn.name)
                if sym is None or sym.kind not in ("parameter", "definition"):
                    sugg = _suggest(rn.name, [s.name for s in self.symbols.values()
                                              if s.kind in ("parameter", "definition")])
                    self.error("E100", f"'{rn.name}' is not a parameter or definition that can be reported", rn.span,
                               f"did you mean '{sugg}'?" if sugg else None)
                    continue
                self.used.add(rn.name)
                if not sym.type.numeric and sym.type.kind != "error":
                    self.error("E101", f"only amounts and numbers can be reported, '{rn.name}' is "
                                       f"{sym.type.describe()}", rn.span)
                if rn.name in names:
                    self.warn("W205", f"'{rn.name}' is reported twice", rn.span)
                else:
                    names.append(rn.name)
        return names

    def check_unused(self) -> None:
        for sym in self.symbols.values():
            if sym.name in self.used or sym.decl is None:
                continue
            if sym.kind == "input":
                self.warn("W201", f"input '{sym.name}' is declared but no rule uses it", sym.decl.span,
                          "remove it, or use it in a rule")
            elif sym.kind == "definition":
                self.warn("W202", f"definition '{sym.name}' is never used", sym.decl.span,
                          "remove it, use it in a rule, or list it under 'report'")
            elif sym.kind == "parameter":
                self.warn("W203", f"parameter '{sym.name}' is never used", sym.decl.span)


def _with_outcomes(e: n.Expr, ids: set[str], symbols: dict[str, Symbol], local: frozenset[str]) -> n.Expr:
    """``e`` with each category/measure/status id (dotted ids too) and ``eligible`` turned into n.Outcome.

    A declared name (input, definition, …) or a loop variable wins over a rule id of the same spelling.
    """
    if isinstance(e, n.Name):
        if e.name in local or e.name in symbols:
            return e
        if e.name in ids:
            return n.Outcome(e.span, e.name)
        return n.Outcome(e.span, e.name, "eligible") if e.name == "eligible" else e
    if isinstance(e, n.FieldAccess):
        parts, root = [e.name], e.target
        while isinstance(root, n.FieldAccess):
            parts.append(root.name)
            root = root.target
        if isinstance(root, n.Name) and root.name not in local and root.name not in symbols:
            dotted = ".".join([root.name, *reversed(parts)])
            if dotted in ids:
                return n.Outcome(e.span, dotted)
    if isinstance(e, (n.Quantified, n.Aggregate)):
        local = local | {e.var}
    changes: dict[str, object] = {}
    for f in fields(e):
        value = getattr(e, f.name)
        new: Any
        if isinstance(value, n.Expr):
            new = _with_outcomes(value, ids, symbols, local)
        elif isinstance(value, tuple) and any(isinstance(v, n.Expr) for v in value):
            new = tuple(_with_outcomes(v, ids, symbols, local) if isinstance(v, n.Expr) else v for v in value)
        else:
            continue
        if new is not value:
            changes[f.name] = new
    return replace(e, **changes) if changes else e  # type: ignore[arg-type]


def check(policy: n.Policy) -> CheckedPolicy:
    """Check a parsed policy; raises PolicyError listing every error (warnings ride along)."""
    return Checker(policy).run()
