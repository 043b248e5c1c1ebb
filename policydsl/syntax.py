"""Syntax: policy text → Lark parse tree → policydsl AST (``nodes``), with syntax errors in words.

Imported by ``parser`` only when a policy must be parsed (not when its AST is in ``cache``): Lark
alone takes about 20 ms to import."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Iterator
from datetime import date
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer_NonRecursive, Tree, v_args
from lark import __version__ as lark_version
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.grammar import Rule
from lark.lexer import PatternStr, TerminalDef

from . import cache as kept
from . import nodes as n
from .diagnostics import Diagnostic, PolicyError

# How expected terminals are named to a policy officer.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "DOTTED_NAME": "a dotted id (e.g. housing.security)",
    "STRING": 'a quoted text ("…")',
    "NUMBER": "a number",
    "PERCENT": "a percentage (e.g. 150%)",
    "DATE": "a date (YYYY-MM-DD)",
    "CMP_OP": "a comparison (< <= > >=)",
    "EQ": "'='",
    "PREFIX_BOUND": "a boundary word (低于 不满 超过 达到 届满)",
    "POSTFIX_BOUND": "a boundary word (以上 以下 以内 以外)",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "TIMES": "'*'",
    "DIVIDE": "'/'",
    "$END": "the end of the file",
}
_EXPRESSION_START = {"NAME", "NUMBER", "STRING", "LPAR"}
_STATEMENT_KEYWORDS = ["parameter", "enum", "record", "input", "define", "report", "precondition", "category",
                       "measure", "status", "property"]


class _ReservedWords:
    """Post-lexer: a keyword is a keyword everywhere, even where a name would also fit.

    Without it, 'measure' after an incomplete condition would be read as a name and the error would
    point one token too late.
    """

    always_accept = ()

    def __init__(self) -> None:
        self.words: dict[str, str] = {}

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        words = self.words
        for tok in stream:
            if tok.type == "NAME" and tok.value in words:
                yield tok.update(type=words[tok.value])
            else:
                yield tok


_NOT_KEPT = ("cache", "postlex", "transformer", "lexer_callbacks", "edit_terminals", "tree_class", "_plugins")


@cache
def _parser() -> Lark:
    """The grammar's LALR parser. Its tables take seconds to build: they are kept (``cache``) as plain data,
    read back without letting a file run code, unlike the pickle Lark's own cache would load."""
    grammar = resources.files("policydsl").joinpath("grammar.lark").read_text(encoding="utf-8")
    reserved = _ReservedWords()
    kept_as = "lark-" + hashlib.sha256((grammar + lark_version).encode()).hexdigest()[:32]
    tables = kept.load_tables(kept_as)
    lark = None
    if isinstance(tables, dict):
        with contextlib.suppress(Exception):  # tables from an older Lark, or damaged: built again below
            lark = Lark._load_from_dict(tables["data"], tables["memo"], postlex=reserved, propagate_positions=True)
    if lark is None:
        lark = Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False, postlex=reserved)
        data, memo = lark.memo_serialize([TerminalDef, Rule])
        data["options"] = {k: v for k, v in data["options"].items() if k not in _NOT_KEPT}
        kept.store_tables(kept_as, {"data": data, "memo": memo})
    name = re.compile(next(t.pattern.value for t in lark.terminals if t.name == "NAME"))
    reserved.words = {t.pattern.value: t.name for t in lark.terminals
                      if isinstance(t.pattern, PatternStr) and name.fullmatch(t.pattern.value)}
    return lark


def reserved_words() -> list[str]:
    """Words of the language that cannot be used as names."""
    _parser()
    return sorted(_parser().options.postlex.words)  # type: ignore[union-attr]


def _span(file: str, meta: Any) -> n.Span:
    return n.Span(file, meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos)


def _tok_span(file: str, tok: Token) -> n.Span:
    return n.Span(file, tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0,
                  tok.start_pos or 0, tok.end_pos or 0)


def _labels(items: list[Any]) -> tuple[str | None, str | None]:
    """The (Chinese, English) label among a declaration's parts, if it has one."""
    found = next((i for i in items if isinstance(i, tuple) and i[0] == "label"), None)
    return (found[1], found[2]) if found else (None, None)


def _string(tok: Token) -> str:
    return str(tok)[1:-1]


def _date(file: str, tok: Token) -> date:
    try:
        return date.fromisoformat(str(tok))
    except ValueError:
        raise PolicyError([Diagnostic("E002", "error", f"'{tok}' is not a real date", _tok_span(file, tok),
                                      "write dates as YYYY-MM-DD, e.g. 2019-08-12")]) from None


_OPS = {"<": "<", "<=": "<=", "≤": "<=", ">": ">", ">=": ">=", "≥": ">=", "=": "=", "!=": "!=", "≠": "!=",
        "低于": "<", "不满": "<", "超过": ">", "达到": ">=", "届满": ">=",
        "以上": ">=", "以下": "<=", "以内": "<=", "以外": ">",
        "+": "+", "-": "-", "*": "*", "×": "*", "/": "/", "÷": "/"}


@v_args(meta=True)
class ToAst(Transformer_NonRecursive):
    """Turns the parse tree into AST nodes; run after parsing so positions survive."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def _s(self, meta: Any) -> n.Span:
        return _span(self.file, meta)

    def _number(self, tok: Token, text: str | None = None) -> Fraction:
        text = text if text is not None else str(tok)
        if len(text) > 30:
            raise PolicyError([Diagnostic("E001", "error", f"this number has {len(text)} characters; at most 30",
                                          _tok_span(self.file, tok), "is a digit repeated by mistake?")])
        return Fraction(text)

    # -- header and top level
    def start(self, meta: Any, items: list[Any]) -> n.Policy:
        header, *stmts = items
        groups: dict[type, list[Any]] = {k: [] for k in
                                         (n.Parameter, n.Enum, n.Record, n.Input, n.Definition, n.Report, n.Rule,
                                          n.Property, n.Amendment)}
        for s in stmts:
            groups[type(s)].append(s)
        g = {k: tuple(v) for k, v in groups.items()}
        return n.Policy(self._s(meta), header, g[n.Parameter], g[n.Enum], g[n.Record], g[n.Input], g[n.Definition],
                        g[n.Report], g[n.Rule], properties=g[n.Property], amendments=g[n.Amendment])

    def header(self, meta: Any, items: list[Any]) -> n.Header:
        name, *rest = items
        fields: dict[str, Any] = {"title": None, "jurisdiction": None, "in_force": None, "source": None,
                                  "title_en": None, "extends": None}
        for key, value in rest:
            fields[key] = value
        if fields["title"] is not None:
            fields["title"], fields["title_en"] = fields["title"]
        if fields["extends"] is not None:
            fields["extends"], fields["extends_span"] = fields["extends"]
        return n.Header(self._s(meta), str(name), **fields)

    def title(self, meta: Any, items: list[Any]) -> tuple[str, Any]:
        return ("title", (_string(items[0]), _string(items[1]) if len(items) > 1 else None))


    def jurisdiction(self, meta: Any, items: list[Any]) -> tuple[str, Any]:
        return ("jurisdiction", _string(items[0]))

    def source(self, meta: Any, items: list[Any]) -> tuple[str, Any]:
        return ("source", _string(items[0]))

    def extends(self, meta: Any, items: list[Any]) -> tuple[str, Any]:
        return ("extends", (_string(items[0]), self._s(meta)))

    def replace(self, meta: Any, items: list[Any]) -> n.Amendment:
        node = items[-1]
        kind = node.kind if isinstance(node, n.Rule) else "define"
        return n.Amendment(self._s(meta), "replace", kind, node.id if isinstance(node, n.Rule) else node.name, node)

    def remove(self, meta: Any, items: list[Any]) -> n.Amendment:
        return n.Amendment(self._s(meta), "remove", str(items[0]), str(items[1]))

    def in_force(self, meta: Any, items: list[Any]) -> tuple[str, Any]:
        return ("in_force", (_date(self.file, items[0]), _date(self.file, items[1])))

    def label(self, meta: Any, items: list[Any]) -> tuple[str, str, str | None]:
        return ("label", _string(items[0]), _string(items[1]) if len(items) > 1 else None)

    def explain(self, meta: Any, items: list[Any]) -> tuple[str, str, str | None]:
        return ("explain", _string(items[0]), _string(items[1]) if len(items) > 1 else None)

    def clause(self, meta: Any, items: list[Any]) -> tuple[str, str]:
        return ("clause", _string(items[0]))

    # -- parameters
    def parameter(self, meta: Any, items: list[Any]) -> n.Parameter:
        name, *rest = items
        label = unit = source = label_en = None
        type_: n.TypeExpr | None = None
        values: list[n.ParamValue] = []
        for item in rest:
            if isinstance(item, n.TypeExpr):
                type_ = item
            elif isinstance(item, n.ParamValue):
                values.append(item)
            elif item[0] == "label":
                label, label_en = item[1], item[2]
            elif item[0] == "unit":
                unit = item[1]
            elif item[0] == "source":
                source = item[1]
        return n.Parameter(self._s(meta), str(name), label, type_, unit, tuple(values), source, label_en)

    def param_unit(self, meta: Any, items: list[Any]) -> tuple[str, str]:
        return ("unit", _string(items[0]))

    def param_source(self, meta: Any, items: list[Any]) -> tuple[str, str]:
        return ("source", _string(items[0]))

    def param_value(self, meta: Any, items: list[Any]) -> n.ParamValue:
        until = None
        if isinstance(items[1], Token) and items[1].type == "DATE":
            until = _date(self.file, items.pop(1))
        start, _eq, (value, text), *prov = items
        confirmed: bool | None = None
        note = note_en = None
        for flag, text_note, text_note_en in prov:
            confirmed = flag
            note = text_note if text_note is not None else note
            note_en = text_note_en if text_note_en is not None else note_en
        return n.ParamValue(self._s(meta), _date(self.file, start), value, text, confirmed, note, note_en, until)

    def unconfirmed(self, meta: Any, items: list[Any]) -> tuple[bool, str | None, str | None]:
        return (False, _string(items[0]) if items else None, _string(items[1]) if len(items) > 1 else None)

    def confirmed(self, meta: Any, items: list[Any]) -> tuple[bool, str | None, str | None]:
        return (True, _string(items[0]) if items else None, _string(items[1]) if len(items) > 1 else None)

    def signed_number(self, meta: Any, items: list[Any]) -> tuple[Fraction, str]:
        return (self._number(items[0]), str(items[0]))

    def negative_number(self, meta: Any, items: list[Any]) -> tuple[Fraction, str]:
        return (-self._number(items[1]), "-" + str(items[1]))

    # -- vocabularies, records, inputs
    def enum_decl(self, meta: Any, items: list[Any]) -> n.Enum:
        name, *rest = items
        label, label_en = _labels(rest)
        members = tuple(i for i in rest if isinstance(i, n.EnumMember))
        return n.Enum(self._s(meta), str(name), label, members, label_en)

    def enum_member(self, meta: Any, items: list[Any]) -> n.EnumMember:
        label_en = _string(items[2]) if len(items) > 2 else None
        return n.EnumMember(self._s(meta), str(items[0]), _string(items[1]), label_en)

    def record_decl(self, meta: Any, items: list[Any]) -> n.Record:
        name, *rest = items
        label, label_en = _labels(rest)
        fields = tuple(i for i in rest if isinstance(i, n.RecordField))
        return n.Record(self._s(meta), str(name), label, fields, label_en)

    def field(self, meta: Any, items: list[Any]) -> n.RecordField:
        name, *rest = items
        label, label_en = _labels(rest)
        return n.RecordField(self._s(meta), str(name), label, rest[-1], label_en)

    def input_decl(self, meta: Any, items: list[Any]) -> n.Input:
        name, *rest = items
        label, label_en = _labels(rest)
        return n.Input(self._s(meta), str(name), label, rest[-1], label_en)

    def type_expr(self, meta: Any, items: list[Any]) -> n.TypeExpr:
        kind, period, of = items[0]
        minimum = items[1] if len(items) > 1 else None
        return n.TypeExpr(self._s(meta), kind, period, of, minimum)

    def constraint(self, meta: Any, items: list[Any]) -> Fraction:
        op, (value, _text) = items
        if str(op) not in (">=", "≥"):
            raise PolicyError([Diagnostic("E003", "error", f"'{op}' cannot be used as an input constraint",
                                          _tok_span(self.file, op), "write a lower bound, e.g. '>= 0'")])
        return value

    def money_type(self, meta: Any, items: list[Any]) -> tuple[str, str | None, None]:
        return ("money", items[0] if items else None, None)

    def per_month(self, meta: Any, items: list[Any]) -> str:
        return "month"

    def per_year(self, meta: Any, items: list[Any]) -> str:
        return "year"

    def monthly_type(self, meta: Any, items: list[Any]) -> tuple[str, str, None]:
        return ("monthly", "month", None)

    def count_type(self, meta: Any, items: list[Any]) -> tuple[str, None, None]:
        return ("count", None, None)

    def number_type(self, meta: Any, items: list[Any]) -> tuple[str, None, None]:
        return ("number", None, None)

    def boolean_type(self, meta: Any, items: list[Any]) -> tuple[str, None, None]:
        return ("boolean", None, None)

    def date_type(self, meta: Any, items: list[Any]) -> tuple[str, None, None]:
        return ("date", None, None)

    def text_type(self, meta: Any, items: list[Any]) -> tuple[str, None, None]:
        return ("text", None, None)

    def set_type(self, meta: Any, items: list[Any]) -> tuple[str, None, str]:
        return ("set", None, str(items[0]))

    def list_type(self, meta: Any, items: list[Any]) -> tuple[str, None, str]:
        return ("list", None, str(items[0]))

    def named_type(self, meta: Any, items: list[Any]) -> tuple[str, None, str]:
        return ("named", None, str(items[0]))

    # -- definitions and rules
    def definition(self, meta: Any, items: list[Any]) -> n.Definition:
        name, *rest = items
        label, label_en = _labels(rest)
        return n.Definition(self._s(meta), str(name), label, rest[-1], label_en)

    def report(self, meta: Any, items: list[Any]) -> n.Report:
        return n.Report(self._s(meta), tuple(n.ReportName(_tok_span(self.file, t), str(t)) for t in items))

    def condition(self, meta: Any, items: list[Any]) -> n.Condition:
        phrase = items[1] if len(items) > 1 else ("explain", None, None)
        return n.Condition(self._s(meta), items[0], phrase[1], phrase[2])

    def conditions(self, meta: Any, items: list[Any]) -> tuple[str, tuple[n.Condition, ...]]:
        return ("conditions", tuple(items))

    def always(self, meta: Any, items: list[Any]) -> tuple[str, tuple[()]]:
        return ("always", ())

    def otherwise(self, meta: Any, items: list[Any]) -> tuple[str, tuple[()]]:
        return ("otherwise", ())

    def _rule(self, kind: str, meta: Any, id_: str | Token, rest: list[Any]) -> n.Rule:
        label = clause = label_en = None
        mode, conds = "conditions", []
        for item in rest:
            if isinstance(item, n.Condition):
                conds.append(item)
            elif item[0] == "label":
                label, label_en = item[1], item[2]
            elif item[0] == "clause":
                clause = item[1]
            else:
                mode, conds = item[0], list(item[1])
        id_span = _tok_span(self.file, id_) if isinstance(id_, Token) else None
        return n.Rule(self._s(meta), kind, str(id_), label, clause, tuple(conds), mode, id_span, label_en)

    def precondition(self, meta: Any, items: list[Any]) -> n.Rule:
        return self._rule("precondition", meta, "precondition", items)

    def status_precondition(self, meta: Any, items: list[Any]) -> n.Rule:
        return self._rule("status_precondition", meta, "status_precondition", items)

    def category(self, meta: Any, items: list[Any]) -> n.Rule:
        return self._rule("category", meta, items[0], items[1:])

    def measure(self, meta: Any, items: list[Any]) -> n.Rule:
        return self._rule("measure", meta, items[0], items[1:])

    def status(self, meta: Any, items: list[Any]) -> n.Rule:
        return self._rule("status", meta, items[0], items[1:])

    def property_decl(self, meta: Any, items: list[Any]) -> n.Property:
        name, *rest = items
        label = next((i[1] for i in rest if isinstance(i, tuple) and i[0] == "label"), None)
        assuming = next((i[1] for i in rest if isinstance(i, tuple) and i[0] == "assuming"), None)
        return n.Property(self._s(meta), str(name), label, assuming, rest[-1])

    def property_assuming(self, meta: Any, items: list[Any]) -> tuple[str, n.Expr]:
        return ("assuming", items[0])

    # -- expressions
    def every(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Quantified(self._s(meta), True, str(items[0]), items[1], items[2])

    def any(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Quantified(self._s(meta), False, str(items[0]), items[1], items[2])

    def or_(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Or(self._s(meta), items[0], items[-1])

    def and_(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.And(self._s(meta), items[0], items[-1])

    def not_(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Not(self._s(meta), items[-1])

    def compare(self, meta: Any, items: list[Any]) -> n.Expr:
        left, op, right = items
        word = str(op) if not str(op).isascii() and str(op) not in "≤≥≠" else None
        return n.Compare(self._s(meta), _OPS[str(op)], left, right, word)

    def compare_post(self, meta: Any, items: list[Any]) -> n.Expr:
        left, right, op = items
        return n.Compare(self._s(meta), _OPS[str(op)], left, right, str(op))

    def member(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Member(self._s(meta), items[0], items[1])

    def not_member(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Member(self._s(meta), items[0], items[1], negated=True)

    def has_any(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.HasAny(self._s(meta), items[0], items[1])

    def has_all(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.HasAny(self._s(meta), items[0], items[1], all=True)

    def is_empty(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.IsEmpty(self._s(meta), items[0])

    def is_not_empty(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.IsEmpty(self._s(meta), items[0], negated=True)

    def binop(self, meta: Any, items: list[Any]) -> n.Expr:
        left, op, right = items
        return n.BinOp(self._s(meta), _OPS[str(op)], left, right)

    def neg(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Negate(self._s(meta), items[-1])

    def index(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Index(self._s(meta), items[0], items[1])

    def field_access(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.FieldAccess(self._s(meta), items[0], str(items[1]))

    def number(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Number(self._s(meta), self._number(items[0]), str(items[0]))

    def percent(self, meta: Any, items: list[Any]) -> n.Expr:
        text = str(items[0])
        return n.Number(self._s(meta), self._number(items[0], text[:-1]) / 100, text)

    def money_literal(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Money(self._s(meta), self._number(items[0]), str(items[0]))

    def string(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Text(self._s(meta), _string(items[0]))

    def date(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.DateLiteral(self._s(meta), _date(self.file, items[0]))

    def true(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Boolean(self._s(meta), True)

    def false(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Boolean(self._s(meta), False)

    def name(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Name(self._s(meta), str(items[0]))

    def call(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Call(self._s(meta), str(items[0]), items[1])

    def monthly_call(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Call(self._s(meta), "monthly", items[-1])

    def set_literal(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.SetLiteral(self._s(meta), tuple(i for i in items if i is not None))

    def window(self, meta: Any, items: list[Any]) -> n.Expr:
        months = str(items[0])
        if not months.isdigit():
            raise PolicyError([Diagnostic("E001", "error", f"a window counts whole months, not {months}",
                                          _tok_span(self.file, items[0]), "write e.g. 'last 6 months before as_of'")])
        return n.Window(self._s(meta), int(months), items[1])

    def mean(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Aggregate(self._s(meta), "mean", items[0], str(items[1]), items[2])

    def total(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Aggregate(self._s(meta), "sum", items[0], str(items[1]), items[2])

    def count(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Count(self._s(meta), items[0])

    def count_where(self, meta: Any, items: list[Any]) -> n.Expr:
        return n.Aggregate(self._s(meta), "count", items[2], str(items[0]), items[1])


_OPERATORS = {"PLUS", "MINUS", "TIMES", "DIVIDE", "CMP_OP", "EQ", "PREFIX_BOUND", "POSTFIX_BOUND", "AND", "OR",
              "且", "或", "并且", "IN", "HAS", "IS", "NOT", "DOT", "LSQB", "LPAR", "在", "FOR"}
_STARTS = {"NAME", "NUMBER", "STRING", "LPAR", "PERCENT", "DATE", "MINUS", "LBRACE", "TRUE", "FALSE", "NOT", "非",
           "EVERY", "ANY", "LAST", "MEAN", "SUM", "COUNT", "MONTHLY", "_NUMBER_WORD"}


def _word(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        return f"'{_parser().get_terminal(name).pattern.value}'"
    except KeyError:
        return name.lower()


def _describe_expected(expected: set[str]) -> str:
    """The expected tokens in words, grouped: 'an expression', 'an operator', 'a new statement'."""
    words: list[str] = []
    rest = set(expected)
    if {"NAME", "NUMBER"} <= rest:
        words.append("an expression (a name, a number, a quoted text or '(')")
        rest -= _STARTS
    if len(rest & _OPERATORS) >= 4:
        words.append("an operator (+ - * /, a comparison such as <= or 低于, and, or, …)")
        rest -= _OPERATORS | {"RPAR", "RSQB", "RBRACE", "COMMA", "COLON"}
    keywords = {k for k in rest if k.lower() in _STATEMENT_KEYWORDS}
    if len(keywords) >= 5:
        rest -= keywords
        words.append("a new statement (parameter, input, define, category, measure, …)")
    words.extend(_word(name) for name in sorted(rest))
    return ", ".join(dict.fromkeys(words))


_NEAR_MISSES = {
    "高于": "write 超过 (more than, >) or 'a 在 b 以上' (at least, ≥)",
    "大于": "write 超过 (more than, >) or 'a 在 b 以上' (at least, ≥)",
    "多于": "write 超过 (more than, >) or 'a 在 b 以上' (at least, ≥)",
    "小于": "write 低于 (less than, <) or 'a 在 b 以下' (at most, ≤)",
    "少于": "write 低于 (less than, <) or 'a 在 b 以下' (at most, ≤)",
    "之内": "write 'a 在 b 以内' (at most, ≤)",
    "之上": "write 'a 在 b 以上' (at least, ≥)",
    "之下": "write 'a 在 b 以下' (at most, ≤)",
    "等于": "write '=' (or 达到 for 'at least')",
    "不低于": "write 达到 (at least, ≥)",
    "不超过": "write 'a 在 b 以内' (at most, ≤)",
    "、": "separate the items of a set with ',' (a half-width comma)",
    "，": "separate items with ',' (a half-width comma)",
    "。": "a statement does not end with '。'; remove it",
}


def _previous_line(text: str, line: int, column: int) -> tuple[int, str] | None:
    """The last line with code before a token that starts its line (to blame an incomplete line)."""
    lines = text.splitlines()
    if line - 1 >= len(lines) or lines[line - 1][: column - 1].strip():
        return None
    for i in range(line - 2, -1, -1):
        code = lines[i].split("#", 1)[0].strip()
        if code:
            return i + 1, code
    return None


def _syntax_error(exc: UnexpectedInput, file: str, text: str) -> Diagnostic:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        if not any(line.split("#", 1)[0].strip() for line in text.splitlines()):
            return Diagnostic("E001", "error", "the policy file is empty", n.Span(file, 1, 1, 1, 2, 0, 0),
                              "a policy starts with 'policy <id>', e.g. 'policy anju_2019'")
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        span = n.Span(file, line, column, line, column + 1, len(text), len(text))
        return Diagnostic("E001", "error", "the file ends in the middle of a statement", span,
                          f"expected {_describe_expected(set(exc.expected))}")
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = text[pos] if pos < len(text) else "?"
        span = n.Span(file, line, column, line, column + 1, pos, pos + 1)
        hint = None
        rest_of_line = text[pos + 1:].split("\n", 1)[0]
        if char == '"' and '"' not in rest_of_line:
            hint = 'add the closing " on the same line; a text cannot span lines'
            if "”" in rest_of_line or "“" in rest_of_line:
                hint = 'it ends with a curly quote ”: close it with a straight double quote " instead'
            return Diagnostic("E001", "error", "this quoted text is not closed", span, hint)
        if char in _NEAR_MISSES:
            return Diagnostic("E001", "error", f"unexpected character '{char}'", span, _NEAR_MISSES[char])
        if char in "“”‘’":
            hint = 'quote texts with straight double quotes: "…"'
        elif char in "（）：，＝＜＞":
            hint = "use the half-width character instead of the full-width one: ( ) : , = < >"
        elif exc.allowed:
            hint = f"expected {_describe_expected(set(exc.allowed))}"
        return Diagnostic("E001", "error", f"unexpected character '{char}'", span, hint)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    span = _tok_span(file, tok)
    shown = str(tok).replace("\n", " ")
    what = f"'{shown}'" if len(shown) < 40 else f"'{shown[:37]}…'"
    hint = f"expected {_describe_expected(set(exc.expected))}"
    if "NAME" in exc.expected and tok.type != "NAME" and str(tok).isidentifier():
        if "NUMBER" in exc.expected:
            message = f"expected an expression before '{shown}'"
            hint = f"'{shown}' is a word of the language, not a name"
            before = _previous_line(text, tok.line or 1, tok.column or 1)
            if before is not None:
                hint = f"line {before[0]} ends before its expression is complete: '{before[1]}'; {hint}"
        else:
            message = f"'{shown}' is a word of the language and cannot be used as a name"
            hint = "choose another name, e.g. with a prefix or suffix"
        return Diagnostic("E001", "error", message, span, hint)
    words = ("低于", "超过", "以内", "以上", "以下", "以外", "达到", "不满", "届满", "在")
    near = _NEAR_MISSES.get(str(tok))
    if near:
        return Diagnostic("E001", "error", f"'{tok}' is not a word of the language", span, near)
    preceding = text[:tok.start_pos or 0].rstrip()
    glued = next((w for w in words if preceding.endswith(w) and len(preceding) > len(w)
                  and not preceding[-len(w) - 1].isspace()), None)
    if glued:
        example = "a 在 b 以内" if glued == "在" else f"a {glued} b"
        hint = f"put a space before '{glued}': boundary words stand apart, e.g. '{example}'"
    elif tok.type == "NAME" and any(w in str(tok) for w in words):
        hint += "; put spaces around boundary words, e.g. 'a 低于 b'"
    return Diagnostic("E001", "error", f"unexpected {what}", span, hint)


def parse(text: str, file: str = "<policy>") -> n.Policy:
    """Parse policy text into an AST; raises PolicyError with a located syntax error."""
    try:
        tree: Tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise PolicyError([_syntax_error(exc, file, text)], text) from None
    try:
        policy = ToAst(file).transform(tree)
    except RecursionError:
        raise PolicyError([Diagnostic("E001", "error", "an expression is nested too deeply to read",
                                      n.Span(file, 1, 1, 1, 2, 0, 1), "split it into several 'define' steps")],
                          text) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, RecursionError):
            raise PolicyError([Diagnostic("E001", "error", "an expression is nested too deeply to read",
                                          n.Span(file, 1, 1, 1, 2, 0, 1), "split it into several 'define' steps")],
                              text) from None
        if isinstance(exc.orig_exc, PolicyError):
            raise PolicyError(exc.orig_exc.diagnostics, text) from None
        raise
    except PolicyError as exc:
        raise PolicyError(exc.diagnostics, text) from None
    _check_depth(policy, text)
    return dataclasses.replace(policy, source=text, sources={file: text})


MAX_DEPTH = 100


def _check_depth(policy: n.Policy, text: str) -> None:
    """Refuse expressions nested deeper than MAX_DEPTH, which later stages walk recursively."""
    stack: list[tuple[n.Node, int]] = [(policy, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PolicyError([Diagnostic("E001", "error", f"this expression is nested more than {MAX_DEPTH} levels "
                                          "deep", node.span, "split it into several 'define' steps")], text)
        stack.extend((child, depth + 1) for child in node.children())
