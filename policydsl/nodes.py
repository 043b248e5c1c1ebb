"""AST of a policy: frozen dataclasses, each carrying the source span it came from.

The parser builds these from the Lark parse tree; nothing downstream sees Lark objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import date
from fractions import Fraction


@dataclass(frozen=True, eq=False)
class Span:
    """Where a node sits in its file (1-based lines and columns, end exclusive)."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int  # character offsets into the file text
    end: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NOWHERE = Span("<builtin>", 0, 0, 0, 0, 0, 0)


@dataclass(frozen=True, eq=False)
class Node:
    """Base of every AST node."""

    span: Span = field(compare=False, repr=False)

    def children(self) -> Iterator[Node]:
        """The direct child nodes, in source order."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, tuple):
                yield from (v for v in value if isinstance(v, Node))

    def walk(self) -> Iterator[Node]:
        """This node and all its descendants, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, eq=False)
class Expr(Node):
    pass


@dataclass(frozen=True, eq=False)
class Number(Expr):
    value: Fraction
    text: str


@dataclass(frozen=True, eq=False)
class Money(Expr):
    """A literal amount in 元, e.g. ``560 元``."""

    value: Fraction
    text: str


@dataclass(frozen=True, eq=False)
class Text(Expr):
    value: str


@dataclass(frozen=True, eq=False)
class DateLiteral(Expr):
    value: date


@dataclass(frozen=True, eq=False)
class Boolean(Expr):
    value: bool


@dataclass(frozen=True, eq=False)
class Name(Expr):
    name: str


@dataclass(frozen=True, eq=False)
class Call(Expr):
    """A built-in conversion such as ``annual(x)`` or ``monthly(x)``."""

    function: str
    argument: Expr


@dataclass(frozen=True, eq=False)
class SetLiteral(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, eq=False)
class Index(Expr):
    """``series[month]``: one month of a monthly series."""

    target: Expr
    index: Expr


@dataclass(frozen=True, eq=False)
class FieldAccess(Expr):
    target: Expr
    name: str


@dataclass(frozen=True, eq=False)
class Negate(Expr):
    operand: Expr


@dataclass(frozen=True, eq=False)
class BinOp(Expr):
    """Arithmetic: ``op`` is one of + - * /."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False)
class Compare(Expr):
    """A comparison; ``word`` keeps the legal boundary word (低于, 以内, …) when one was written."""

    op: str  # one of < <= > >= = !=
    left: Expr
    right: Expr
    word: str | None = None


@dataclass(frozen=True, eq=False)
class Member(Expr):
    """``x in S`` (or ``x not in S``)."""

    element: Expr
    collection: Expr
    negated: bool = False


@dataclass(frozen=True, eq=False)
class HasAny(Expr):
    """``S has any of T`` (or ``has all of``)."""

    left: Expr
    right: Expr
    all: bool = False


@dataclass(frozen=True, eq=False)
class IsEmpty(Expr):
    operand: Expr
    negated: bool = False


@dataclass(frozen=True, eq=False)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True, eq=False)
class And(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False)
class Or(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False)
class Quantified(Expr):
    """``every m in W: body`` / ``any m in W: body``."""

    every: bool
    var: str
    iterable: Expr
    body: Expr


@dataclass(frozen=True, eq=False)
class Window(Expr):
    """``last N months before D``: the N calendar months before the month of D."""

    months: int
    anchor: Expr


@dataclass(frozen=True, eq=False)
class Aggregate(Expr):
    """``mean of E for m in W`` / ``sum of E for m in W`` / ``number of m in W where C`` (function "count")."""

    function: str  # "mean" | "sum" | "count"
    body: Expr
    var: str
    iterable: Expr


@dataclass(frozen=True, eq=False)
class Count(Expr):
    """``count of L``: the number of items of a list or set."""

    operand: Expr


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True, eq=False)
class TypeExpr(Node):
    """A declared type: kind is money, monthly, count, number, boolean, date, text, set, list or named."""

    kind: str
    period: str | None = None  # money: "month", "year" or None (an amount held, not a flow)
    of: str | None = None  # set/list element type, or the named type
    minimum: Fraction | None = None


@dataclass(frozen=True, eq=False)
class Header(Node):
    id: str
    title: str | None
    jurisdiction: str | None
    in_force: tuple[date, date] | None
    source: str | None
    title_en: str | None = None
    extends: str | None = None  # the file of the policy this one amends, relative to this one
    extends_span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, eq=False)
class ParamValue(Node):
    start: date
    value: Fraction
    text: str
    confirmed: bool | None  # None: provenance not stated
    note: str | None
    note_en: str | None = None
    until: date | None = None  # the last day the source meant this value for, when it says


@dataclass(frozen=True, eq=False)
class Parameter(Node):
    name: str
    label: str | None
    type: TypeExpr | None  # None only in an amendment: more dated values for an inherited parameter
    unit: str | None
    values: tuple[ParamValue, ...]
    source: str | None = None  # where the values come from (a document, an office)
    label_en: str | None = None


@dataclass(frozen=True, eq=False)
class EnumMember(Node):
    name: str
    label: str
    label_en: str | None = None


@dataclass(frozen=True, eq=False)
class Enum(Node):
    name: str
    label: str | None
    members: tuple[EnumMember, ...]
    label_en: str | None = None


@dataclass(frozen=True, eq=False)
class RecordField(Node):
    name: str
    label: str | None
    type: TypeExpr
    label_en: str | None = None


@dataclass(frozen=True, eq=False)
class Record(Node):
    name: str
    label: str | None
    fields: tuple[RecordField, ...]
    label_en: str | None = None


@dataclass(frozen=True, eq=False)
class Input(Node):
    name: str
    label: str | None
    type: TypeExpr
    label_en: str | None = None


@dataclass(frozen=True, eq=False)
class Definition(Node):
    name: str
    label: str | None
    expr: Expr
    label_en: str | None = None


@dataclass(frozen=True, eq=False)
class ReportName(Node):
    name: str


@dataclass(frozen=True, eq=False)
class Report(Node):
    names: tuple[ReportName, ...]


@dataclass(frozen=True, eq=False)
class Condition(Node):
    """One ``requires`` line, with the policy's own wording of it for citizens (Jinja text), if given."""

    expr: Expr
    phrase_zh: str | None = None
    phrase_en: str | None = None


@dataclass(frozen=True, eq=False)
class Rule(Node):
    """A precondition, category, measure, status precondition or status.

    ``mode`` is "conditions" (all must hold), "always" or "otherwise" (status only).
    """

    kind: str
    id: str
    label: str | None
    clause: str | None
    conditions: tuple[Condition, ...]
    mode: str = "conditions"
    id_span: Span | None = field(default=None, compare=False, repr=False)  # where the id is written
    label_en: str | None = None


@dataclass(frozen=True, eq=False)
class Outcome(Expr):
    """Inside a property only: whether a category, measure or status holds (``kind`` "rule"), or ``eligible``."""

    name: str
    kind: str = "rule"  # "rule" or "eligible"


@dataclass(frozen=True, eq=False)
class Property(Node):
    """``property NAME "label" [assuming E] expect E``: a claim about every valid household, for analysis."""

    name: str
    label: str | None
    assuming: Expr | None
    expect: Expr


@dataclass(frozen=True, eq=False)
class Amendment(Node):
    """In a policy that extends another: ``replace`` a rule or definition by id, or ``remove`` one."""

    action: str  # "replace" | "remove"
    kind: str  # category, measure, status, precondition, status_precondition, define
    id: str
    node: Rule | Definition | None = None


@dataclass(frozen=True, eq=False)
class Policy(Node):
    header: Header
    parameters: tuple[Parameter, ...]
    enums: tuple[Enum, ...]
    records: tuple[Record, ...]
    inputs: tuple[Input, ...]
    definitions: tuple[Definition, ...]
    reports: tuple[Report, ...]
    rules: tuple[Rule, ...]
    source: str = field(compare=False, repr=False, default="")
    properties: tuple[Property, ...] = ()  # stated properties: checked by analysis, ignored by evaluation
    amendments: tuple[Amendment, ...] = ()  # only before merging with the policy it extends
    sources: dict[str, str] = field(compare=False, repr=False, default_factory=dict)  # file → text, all files
    removed: dict[str, Span] = field(compare=False, repr=False, default_factory=dict)  # id → the 'remove' line

    def text_of(self, node: Node) -> str:
        """The policy text a node was parsed from (whichever file it is in), on one line."""
        text = self.sources.get(node.span.file, self.source)
        return " ".join(text[node.span.start:node.span.end].split())
