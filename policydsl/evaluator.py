"""Evaluation: a checked policy and a validated household → a result with an optional trace.

Expressions are compiled once per policy into Python closures (no ``eval``); the same closures serve
every household. Arithmetic is exact (Fraction); a missing fact is an ``Unknown`` value and the logic is
three-valued (false ∧ unknown = false, true ∨ unknown = true), as spec §8 requires.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any

from . import nodes as n
from .checker import CheckedPolicy
from .diagnostics import PolicyDslError, UsageError
from .household import Household
from .values import Exact, RecordValue, Series, Unknown, divide_exact, exact, format_amount, merge

Fn = Callable[["Ctx"], Any]
_ARITH: dict[str, Callable[[Any, Any], Any]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                                   ">=": operator.ge, "=": operator.eq, "!=": operator.ne}
_UNSET = object()


class EvaluationError(PolicyDslError):
    """The policy cannot be applied to this household (e.g. a division by zero in a rule)."""

    exit_code = 1


@dataclass
class ComparisonEvent:
    """One comparison as it was evaluated: both sides, the outcome, and the loop variables then bound."""

    node: n.Compare
    left: Any
    right: Any
    outcome: Any
    bindings: dict[str, Any]


@dataclass
class Ctx:
    """Per-household evaluation state."""

    inputs: dict[str, Any]
    params: dict[str, Exact]
    as_of: date
    defs: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    events: list[ComparisonEvent] | None = None


# ---------------------------------------------------------------- three-valued helpers


def and3(a: Any, b: Any) -> Any:
    if a is False or b is False:
        return False
    if a is True and b is True:
        return True
    return merge(a, b)


def or3(a: Any, b: Any) -> Any:
    if a is True or b is True:
        return True
    if a is False and b is False:
        return False
    return merge(a, b)


def not3(a: Any) -> Any:
    return a if isinstance(a, Unknown) else not a


def months_before(anchor: date, count: int) -> tuple[str, ...]:
    """The ``count`` calendar months before the month of ``anchor``, oldest first, as YYYY-MM."""
    index = anchor.year * 12 + anchor.month - 1
    return tuple(f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count, index))


# ---------------------------------------------------------------- compiling expressions


class Compiler:
    """Compiles expressions to closures; ``traced`` closures also record every comparison."""

    def __init__(self, policy: CheckedPolicy, traced: bool) -> None:
        self.policy = policy
        self.traced = traced
        self.defs: dict[str, Fn] = {}

    def definition(self, name: str) -> Fn:
        fn = self.defs.get(name)
        if fn is None:
            decl = self.policy.symbols[name].decl
            assert isinstance(decl, n.Definition)
            fn = self.defs[name] = self.compile(decl.expr, frozenset())  # the checker ruled out cycles
        return fn

    def compile(self, e: n.Expr, local: frozenset[str]) -> Fn:  # noqa: C901 - one case per node kind
        if isinstance(e, (n.Number, n.Money)):
            value = exact(e.value)
            return lambda c: value
        if isinstance(e, (n.Text, n.DateLiteral, n.Boolean)):
            lit = e.value
            return lambda c: lit
        if isinstance(e, n.Name):
            return self.name(e, local)
        if isinstance(e, n.Call):
            arg = self.compile(e.argument, local)
            annual = e.function == "annual"

            def call(c: Ctx) -> Any:
                v = arg(c)
                if type(v) is Unknown:
                    return v
                return v * 12 if annual else divide_exact(v, 12)
            return call
        if isinstance(e, n.SetLiteral):
            members = frozenset(i.name for i in e.items if isinstance(i, n.Name))
            return lambda c: members
        if isinstance(e, n.Index):
            target, index = self.compile(e.target, local), self.compile(e.index, local)

            def at(c: Ctx) -> Any:
                s, m = target(c), index(c)
                if isinstance(s, Unknown) or isinstance(m, Unknown):
                    return merge(s, m)
                return s.at(m)
            return at
        if isinstance(e, n.FieldAccess):
            target, fname = self.compile(e.target, local), e.name

            def get(c: Ctx) -> Any:
                r = target(c)
                return r if isinstance(r, Unknown) else r.get(fname)
            return get
        if isinstance(e, n.Negate):
            operand = self.compile(e.operand, local)
            return lambda c: (lambda v: v if isinstance(v, Unknown) else -v)(operand(c))
        if isinstance(e, n.BinOp):
            return self.binop(e, local)
        if isinstance(e, n.Compare):
            return self.compare(e, local)
        if isinstance(e, n.Member):
            el, coll, neg = self.compile(e.element, local), self.compile(e.collection, local), e.negated

            def member(c: Ctx) -> Any:
                x, s = el(c), coll(c)
                if isinstance(x, Unknown) or isinstance(s, Unknown):
                    return merge(x, s)
                return (x in s) != neg
            return member
        if isinstance(e, n.HasAny):
            left, right, every = self.compile(e.left, local), self.compile(e.right, local), e.all

            def has(c: Ctx) -> Any:
                a, b = left(c), right(c)
                if isinstance(a, Unknown) or isinstance(b, Unknown):
                    return merge(a, b)
                return b <= a if every else not a.isdisjoint(b)
            return has
        if isinstance(e, n.IsEmpty):
            operand, neg = self.compile(e.operand, local), e.negated

            def empty(c: Ctx) -> Any:
                v = operand(c)
                return v if isinstance(v, Unknown) else (len(v) == 0) != neg
            return empty
        if isinstance(e, n.Not):
            operand = self.compile(e.operand, local)
            return lambda c: not3(operand(c))
        if isinstance(e, n.And):
            left, right = self.compile(e.left, local), self.compile(e.right, local)

            def and_(c: Ctx) -> Any:
                a = left(c)
                if a is False:
                    return False
                return and3(a, right(c))
            return and_
        if isinstance(e, n.Or):
            left, right = self.compile(e.left, local), self.compile(e.right, local)

            def or_(c: Ctx) -> Any:
                a = left(c)
                if a is True:
                    return True
                return or3(a, right(c))
            return or_
        if isinstance(e, n.Quantified):
            return self.quantified(e, local)
        if isinstance(e, n.Window):
            anchor, months = self.compile(e.anchor, local), e.months

            def window(c: Ctx) -> Any:
                d = anchor(c)
                return d if isinstance(d, Unknown) else months_before(d, months)
            return window
        if isinstance(e, n.Aggregate):
            return self.aggregate(e, local)
        if isinstance(e, n.Count):
            operand = self.compile(e.operand, local)

            def count(c: Ctx) -> Any:
                v = operand(c)
                return v if isinstance(v, Unknown) else len(v)
            return count
        raise AssertionError(f"unhandled node {type(e).__name__}")

    def name(self, e: n.Name, local: frozenset[str]) -> Fn:
        name = e.name
        if name in local:
            return lambda c: c.vars[name]
        if name == "as_of":
            return lambda c: c.as_of
        sym = self.policy.symbols[name]
        if sym.kind == "input":
            return lambda c: _input(c, name)
        if sym.kind == "parameter":
            return lambda c: c.params[name]
        if sym.kind == "member":
            return lambda c: name
        body = self.definition(name)

        def definition(c: Ctx) -> Any:
            v = c.defs.get(name, _UNSET)
            if v is _UNSET:
                v = c.defs[name] = body(c)
            return v
        return definition

    def binop(self, e: n.BinOp, local: frozenset[str]) -> Fn:
        left, right = self.compile(e.left, local), self.compile(e.right, local)
        if e.op == "/":
            span = e.span

            def divide(c: Ctx) -> Any:
                a, b = left(c), right(c)
                if type(a) is Unknown or type(b) is Unknown:
                    return merge(a, b)
                if not b:
                    raise EvaluationError(f"{span}: division by zero while applying the policy")
                return Fraction(a, b) if type(a) is int and type(b) is int else a / b
            return divide
        fn = _ARITH[e.op]

        def arith(c: Ctx) -> Any:
            a, b = left(c), right(c)
            if type(a) is Unknown or type(b) is Unknown:
                return merge(a, b)
            return fn(a, b)
        return arith

    def compare(self, e: n.Compare, local: frozenset[str]) -> Fn:
        left, right, test = self.compile(e.left, local), self.compile(e.right, local), _COMPARE[e.op]

        def cmp(c: Ctx) -> Any:
            a, b = left(c), right(c)
            if type(a) is Unknown or type(b) is Unknown:
                return merge(a, b)
            return test(a, b)
        if not self.traced:
            return cmp

        def traced(c: Ctx) -> Any:
            a, b = left(c), right(c)
            out = merge(a, b) if type(a) is Unknown or type(b) is Unknown else test(a, b)
            if c.events is not None:
                c.events.append(ComparisonEvent(e, a, b, out, dict(c.vars)))
            return out
        return traced

    def quantified(self, e: n.Quantified, local: frozenset[str]) -> Fn:
        items, var, every = self.compile(e.iterable, local), e.var, e.every
        body = self.compile(e.body, local | {var})
        full = self.traced  # a trace shows every item, not only up to the deciding one

        def quant(c: Ctx) -> Any:
            seq = items(c)
            if isinstance(seq, Unknown):
                return seq
            saved = c.vars.get(var, _UNSET)
            result: Any = every
            decided = False
            for item in seq:
                c.vars[var] = item
                if decided:  # traced only: the remaining items, for the record; they cannot change the result
                    with contextlib.suppress(EvaluationError):
                        body(c)
                    continue
                v = body(c)
                result = and3(result, v) if every else or3(result, v)
                if result is (not every):
                    decided = True
                    if not full:
                        break
            if saved is _UNSET:
                c.vars.pop(var, None)
            else:
                c.vars[var] = saved
            return result
        return quant

    def aggregate(self, e: n.Aggregate, local: frozenset[str]) -> Fn:
        items, var, mean = self.compile(e.iterable, local), e.var, e.function == "mean"
        body = self.compile(e.body, local | {var})
        span = e.span
        if e.function == "count":  # a yes/no test per item: count the yes
            test = body

            def body(c: Ctx) -> Any:
                v = test(c)
                return v if type(v) is Unknown else int(v)

        def agg(c: Ctx) -> Any:
            seq = items(c)
            if isinstance(seq, Unknown):
                return seq
            saved = c.vars.get(var, _UNSET)
            total: Any = 0
            unknown: list[Unknown] = []
            for item in seq:
                c.vars[var] = item
                v = body(c)
                if isinstance(v, Unknown):
                    unknown.append(v)
                else:
                    total += v
            if saved is _UNSET:
                c.vars.pop(var, None)
            else:
                c.vars[var] = saved
            if unknown:
                return merge(*unknown)
            if mean:
                if not seq:
                    raise EvaluationError(f"{span}: the mean of an empty list is not defined; test first that the "
                                          "list is not empty")
                return divide_exact(total, len(seq))
            return total
        return agg


def _input(c: Ctx, name: str) -> Any:
    v = c.inputs.get(name)
    return v if v is not None else Unknown(frozenset((name,)))


# ---------------------------------------------------------------- results and traces


@dataclass
class ConditionTrace:
    """One ``requires`` line: its outcome, the comparisons made and the named values it read."""

    condition: n.Condition
    outcome: Any
    comparisons: list[ComparisonEvent]
    values: dict[str, Any]


@dataclass
class RuleTrace:
    rule: n.Rule
    outcome: Any  # the rule's own conditions (True / False / Unknown)
    result: Any  # after its gate (precondition, eligibility, earlier statuses)
    conditions: list[ConditionTrace]


@dataclass
class Trace:
    """Everything the evaluation decided and why; rendering it is the explanation stage's job."""

    rules: list[RuleTrace]
    definitions: dict[str, Any]
    definition_events: dict[str, list[ComparisonEvent]]
    parameters: dict[str, n.ParamValue]


@dataclass
class Result:
    """The outcome for one household (spec §9), plus the trace when asked for."""

    policy: CheckedPolicy
    as_of: date
    in_force: bool
    eligible: bool | None
    categories: list[str]
    primary_category: str | None
    undetermined: list[str]
    measures: list[str]
    status: str | None
    missing: list[str]
    values: dict[str, str]
    exact_values: dict[str, Fraction]
    parameters: dict[str, n.ParamValue]
    warnings: list[str] = field(default_factory=list)
    as_of_source: str = "household"  # where the assessment date came from: household, option or today
    trace: Trace | None = None

    def to_json(self) -> dict[str, Any]:
        header = self.policy.policy.header
        return {
            "policy": {"id": header.id, "title": header.title, "sha256": self.policy.sha256},
            "as_of": self.as_of.isoformat(),
            "in_force": self.in_force,
            "eligible": self.eligible,
            "categories": self.categories,
            "primary_category": self.primary_category,
            "undetermined": self.undetermined,
            "measures": self.measures,
            "status": self.status,
            "missing": self.missing,
            "values": self.values,
        }


_NO_CONDITIONS: list[ConditionTrace] = []


@dataclass(frozen=True)
class NotEvaluated:
    """In a trace: a value the result did not need and that could not be computed (e.g. a division by zero)."""

    reason: str


def _for_the_record(fn: Fn, ctx: Ctx) -> Any:
    try:
        return fn(ctx)
    except EvaluationError as exc:
        return NotEvaluated(str(exc))


def _all_of(fns: list[Fn]) -> Fn:
    """One closure for a rule's conditions: stops at the first false one (false ∧ unknown = false)."""
    if not fns:
        return lambda c: True
    if len(fns) == 1:
        return fns[0]

    def all_of(c: Ctx) -> Any:
        result: Any = True
        for fn in fns:
            v = fn(c)
            if v is False:
                return False
            if v is not True:
                result = v if result is True else merge(result, v)
        return result
    return all_of


def _tri(v: Any) -> bool | None:
    return None if isinstance(v, Unknown) else bool(v)


class _Run:
    """One evaluation: the context, what held, what is undetermined and why, and the trace if asked for."""

    def __init__(self, evaluator: Evaluator, ctx: Ctx, trace: bool) -> None:
        self.ev = evaluator
        self.ctx = ctx
        self.trace = trace
        self.fns = evaluator.rules[trace]
        self.held: set[str] = set()
        self.undetermined: list[str] = []
        self.missing: set[str] = set()
        self.traces: list[RuleTrace] = []
        self.definition_values: dict[str, Any] = {}
        self.definition_events: dict[str, list[ComparisonEvent]] = {}
        self.last_own: Any = True

    def definitions(self) -> None:
        """Traced only: every definition's value, each with the comparisons it made."""
        for d in self.ev.policy.policy.definitions:
            self.ctx.events = []
            fn = self.ev.slow.name(n.Name(n.NOWHERE, d.name), frozenset())
            self.definition_values[d.name] = _for_the_record(fn, self.ctx)
            self.definition_events[d.name] = self.ctx.events

    def own(self, rule: n.Rule, needed: bool) -> tuple[Any, Any, list[ConditionTrace]]:
        """The rule's own conditions: (value for the result, value to show, condition traces).

        ``needed`` is False where the result cannot depend on them. The trace evaluates more than the
        result needs (every condition of every rule); what only the trace evaluates is guarded, so an
        error there (a division by zero) cannot make a traced evaluation fail where an untraced one works.
        """
        if not self.trace:
            return self.ev.combined[id(rule)](self.ctx), None, _NO_CONDITIONS
        ctx = self.ctx
        result: Any = True
        shown: Any = True
        conds: list[ConditionTrace] = []
        for cond, fn in zip(rule.conditions, self.fns[id(rule)], strict=True):
            ctx.events = []
            if needed and result is not False:
                v = fn(ctx)
                result = and3(result, v)
            else:
                v = _for_the_record(fn, ctx)
            if isinstance(v, NotEvaluated):
                if shown is not False:
                    shown = v  # not computable, and nothing false: the rule's own outcome is unknown to the trace
            elif not isinstance(shown, NotEvaluated) or v is False:
                shown = and3(shown, v) if not isinstance(shown, NotEvaluated) else False
            conds.append(ConditionTrace(cond, v, ctx.events, self.ev._named_values(cond, ctx)))
        return result, shown, conds

    def gate(self, rule: n.Rule | None) -> Any:
        """A precondition's value (true when the policy has none)."""
        if rule is None:
            return True
        value, shown, conds = self.own(rule, needed=True)
        if self.trace:
            self.traces.append(RuleTrace(rule, shown, value, conds))
        return value

    def rule(self, rule: n.Rule, gate: Any) -> Any:
        """A category, measure or status behind its gate; records whether it held or is undetermined."""
        if gate is False and not self.trace:
            self.last_own = True
            return False
        value, shown, conds = self.own(rule, needed=gate is not False)
        self.last_own = value
        result = and3(gate, value)
        if self.trace:
            self.traces.append(RuleTrace(rule, shown, result, conds))
        if result is True:
            self.held.add(rule.id)
        elif isinstance(result, Unknown):
            self.undetermined.append(rule.id)
            self.missing |= result.paths
        return result


class Evaluator:
    """A policy compiled for evaluation; call ``evaluate`` once per household."""

    def __init__(self, policy: CheckedPolicy) -> None:
        self.policy = policy
        self.fast = Compiler(policy, traced=False)
        self.slow = Compiler(policy, traced=True)
        self.rules = {traced: self._compile_rules(c) for traced, c in ((False, self.fast), (True, self.slow))}
        self.combined = {key: _all_of(fns) for key, fns in self.rules[False].items()}
        self.reports = {traced: [(name, self._value_fn(c, name)) for name in policy.report]
                        for traced, c in ((False, self.fast), (True, self.slow))}

    def _compile_rules(self, comp: Compiler) -> dict[int, list[Fn]]:
        rules = [r for r in (self.policy.precondition, *self.policy.categories, *self.policy.measures,
                             self.policy.status_precondition, *self.policy.statuses) if r is not None]
        return {id(r): [comp.compile(cond.expr, frozenset()) for cond in r.conditions] for r in rules}

    def _value_fn(self, comp: Compiler, name: str) -> Fn:
        sym = self.policy.symbols[name]
        if sym.kind == "parameter":
            return lambda c: c.params[name]
        return comp.name(n.Name(n.NOWHERE, name), frozenset())

    def stale_parameters(self, values: dict[str, n.ParamValue], as_of: date) -> list[str]:
        """Values used past the day their source said they end: reused, but the user is told."""
        out = []
        declared = {p.name: p for p in self.policy.policy.parameters}
        for name, pv in values.items():
            if pv.until is not None and as_of > pv.until:
                later = [v.start for v in declared[name].values if v.start > as_of]
                gap = f"the next value starts on {later[0]}" if later else "no newer value is given"
                out.append(f"{name}: the value {pv.text} from {pv.start} was meant to apply until {pv.until}; "
                           f"{as_of} is later and {gap}, so it is reused — check for a new value")
        return out

    def parameter_values(self, as_of: date) -> dict[str, n.ParamValue]:
        """The value of every parameter in force on ``as_of``; a date before the first value is an error."""
        out: dict[str, n.ParamValue] = {}
        for p in self.policy.policy.parameters:
            applicable = [v for v in p.values if v.start <= as_of]
            if not applicable:
                first = p.values[0].start
                raise UsageError(f"the assessment date {as_of} is before the first value of '{p.name}' "
                                 f"({p.label or p.name}), which applies from {first}; choose a date from {first}")
            out[p.name] = applicable[-1]
        return out

    def evaluate(self, household: Household, as_of: date | None = None, trace: bool = False) -> Result:
        """Evaluate one household; ``as_of`` (e.g. from --as-of) wins over the household's own date."""
        day = as_of or household.as_of or date.today()
        day_source = "option" if as_of else "household" if household.as_of else "today"
        params = self.parameter_values(day)
        run = _Run(self, Ctx(household.values, {k: exact(v.value) for k, v in params.items()}, day), trace)
        pol = self.policy
        if trace:
            run.definitions()
        pre = run.gate(pol.precondition)
        eligible: Any = False
        for rule in pol.categories:
            eligible = or3(eligible, run.rule(rule, pre))
        for rule in pol.measures:
            run.rule(rule, eligible)
        status_gate = run.gate(pol.status_precondition) if pol.statuses else False
        not_before: Any = True  # first that holds: a status needs every earlier one not to hold
        status: str | None = None
        for rule in pol.statuses:
            r = run.rule(rule, and3(status_gate, not_before))
            if r is True and status is None:
                status = rule.id
            not_before = and3(not_before, not3(run.last_own))
        values: dict[str, str] = {}
        exact_values: dict[str, Fraction] = {}
        for name, fn in self.reports[trace]:
            v = fn(run.ctx)
            if not isinstance(v, Unknown):
                exact_values[name] = Fraction(v)
                money = pol.symbols[name].type.kind == "money"
                values[name] = format_amount(v) if money or Fraction(v).denominator != 1 else str(v)
        force = pol.policy.header.in_force
        in_force = force is None or force[0] <= day <= force[1]
        categories = [r.id for r in pol.categories if r.id in run.held]
        result = Result(pol, day, in_force, _tri(eligible), categories, categories[0] if categories else None,
                        run.undetermined, [r.id for r in pol.measures if r.id in run.held], status,
                        sorted(run.missing), values, exact_values, params,
                        [*household.warnings, *self.stale_parameters(params, day)], day_source)
        if trace:
            result.trace = Trace(run.traces, run.definition_values, run.definition_events, params)
        return result

    def _named_values(self, cond: n.Condition, ctx: Ctx) -> dict[str, Any]:
        """The facts a condition reads, by name or field path (``housing.difficulty``), with their values."""
        out: dict[str, Any] = {}
        targets = {id(node.target) for node in cond.expr.walk() if isinstance(node, n.FieldAccess)}
        for node in cond.expr.walk():
            if isinstance(node, n.FieldAccess) and isinstance(node.target, n.Name) \
                    and self.policy.symbols.get(node.target.name, None) is not None \
                    and self.policy.symbols[node.target.name].kind == "input":
                record = ctx.inputs.get(node.target.name)
                path = f"{node.target.name}.{node.name}"
                out[path] = record.get(node.name) if isinstance(record, RecordValue) else Unknown(frozenset((path,)))
                continue
            if id(node) in targets:
                continue
            if isinstance(node, n.Name) and node.name in self.policy.symbols and node.name not in out:
                sym = self.policy.symbols[node.name]
                if sym.kind == "member":
                    continue
                if sym.kind == "definition":
                    out[node.name] = ctx.defs.get(node.name)
                elif sym.kind == "parameter":
                    out[node.name] = ctx.params[node.name]
                elif sym.kind == "builtin":
                    out[node.name] = ctx.as_of
                else:
                    out[node.name] = ctx.inputs.get(node.name, Unknown(frozenset((node.name,))))
        return out


__all__ = [
    "ComparisonEvent",
    "ConditionTrace",
    "EvaluationError",
    "Evaluator",
    "RecordValue",
    "Result",
    "RuleTrace",
    "Series",
    "Trace",
]
