"""The compiled batch path: a checked policy compiled once into column operations over many households.

Every expression becomes a function of a chunk of households (``batch_read.Columns``) that returns a
whole column at once, computed with numpy on exact integers: an amount is a numerator column over a
denominator (cents over 100, an income per person over 100 × members), comparisons cross-multiply, and
where a product could leave int64 the column switches to Python integers (still exact, only slower).
Nothing is ever a float. Missing facts follow the same three-valued logic as the reference evaluator,
with a *known* mask beside every column.

Households left undetermined by missing facts are evaluated a second time with each unknown value
carrying, as a bit set, the facts it depends on, which gives the reference's ``undetermined`` ids and
``missing`` paths. A household for which this path cannot be sure of the reference's answer — a division
by zero somewhere in the policy, an assessment date before a parameter's first value, anything the reader
declined — is handed back (``None``) and the reference evaluator (``evaluator.py``) answers for it. A
property-based test requires both paths to give identical rows; member names are unique across enums
(the checker says so), so one bit per member serves every set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from fractions import Fraction
from math import lcm
from typing import Any

import msgspec
import numpy as np

from . import nodes as n
from .batch_read import ColumnReader, Columns, Leaf, LineSources, Unsupported, _fastread
from .checker import CheckedPolicy
from .evaluator import Evaluator

SAFE = 2**62  # a product whose bound stays under this is computed in int64; above, in Python integers
_EPOCH = date(1970, 1, 1).toordinal()


@dataclass
class Num:
    """An exact number per household: ``num / den`` (den > 0), ``bound`` ≥ |num|, ``dbound`` ≥ den.

    ``dkey`` names the denominator: two columns with equal keys have equal denominators, so they add
    without multiplying out."""

    num: Any  # np.ndarray (int64 or object) or int
    den: Any  # np.ndarray or int
    known: Any  # np.ndarray of bool or True
    bound: int
    dbound: int
    dkey: Any
    nkey: Any = None  # names the numerator when it is a fact, a parameter or a constant as such
    paths: Any = 0  # where unknown, the missing facts it depends on (a bit set per household; see Chunk.bit)


@dataclass
class Col:
    """Any other value per household: bool, text, set (bit mask), date (ordinal), list (length) or month."""

    kind: str
    values: Any
    known: Any
    paths: Any = 0


@dataclass
class Window:
    months: int
    anchor: Any  # month index per household (year × 12 + month - 1)
    known: Any  # where the date it is anchored on is known
    paths: Any = 0  # where it is not: the missing facts of that date


@dataclass
class SeriesRef:
    leaf: Leaf
    path: str


Fn = Callable[["Chunk"], Any]
Counted = tuple[bool | None, str | None, tuple[str, ...]]  # what a batch's summary counts: eligible, primary, all
_ENCODE = msgspec.json.Encoder().encode


def _text(value: Any) -> str:
    """A value as JSON text (msgspec writes what json.dumps(ensure_ascii=False) would, compactly)."""
    return _ENCODE(value).decode("utf-8")


def _id_text(ident: Any) -> str:
    return "" if ident is None else f'"id":{_text(ident)},'


def _warnings_text(warnings: list[str]) -> str:
    return f',"warnings":{_text(warnings)}' if warnings else ""


_BOOL = {True: "true", False: "false", None: "null"}
_CENTS = [f".{c:02d}" for c in range(100)]
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]')  # may be written otherwise


@dataclass
class Lines:
    """A chunk's rows written as lines of JSON Lines (None where the reference must answer), with what a
    batch's summary counts of them: (households, eligible, primary category, categories) per group of
    households whose rows agree on those, and how many carry warnings.

    With the native extension (``raw``), the rows are UTF-8 bytes, written whole by ``_fastread.rows``.
    Without it they are text, in which the policy's object ({"id":…,"title":…}, the same in every row)
    stands as one NUL character, which JSON text never holds raw, and ``encode`` writes it out: the
    rows are then plain ASCII, as a rule, which Python joins and encodes several times faster than text
    with a Chinese title in every row."""

    texts: list[Any]
    head: str = ""
    groups: list[tuple[int, bool | None, str | None, tuple[str, ...]]] = field(default_factory=list)
    warned: int = 0
    raw: bool = False  # the rows are UTF-8 bytes already, written by _fastread.rows (the head in place)

    def put(self, at: int, text: str) -> None:
        """Row ``at``, written elsewhere (by the reference)."""
        self.texts[at] = text.encode("utf-8") if self.raw else text

    def encode(self) -> bytes:
        """Every row, as UTF-8 (all must have been written: no None left). Runs of ASCII rows are joined
        and encoded apart from the few rows that are not (a Chinese warning, say): one such row would
        otherwise make Python join and encode the whole chunk character by character, five times slower."""
        if self.raw:
            return b"".join(self.texts)
        texts: list[str] = self.texts
        parts, start = [], 0
        for at in [at for at, text in enumerate(texts) if not text.isascii()]:
            parts += ["".join(texts[start:at]).encode("ascii"), texts[at].encode("utf-8")]
            start = at + 1
        parts.append("".join(texts[start:]).encode("ascii"))
        return b"".join(parts).replace(b"\0", self.head.encode("utf-8"))


@dataclass
class Decided:
    """What ``BatchEvaluator._decide`` found for a chunk: every rule's result, eligibility, status, values."""

    cols: Columns
    day: np.ndarray
    k: Chunk
    results: dict[str, Col]  # rule id → result after its gate
    eligible: Col
    status: np.ndarray  # index of the status that holds, -1 for none
    reports: list[tuple[str, list[str | None]]]
    decided: np.ndarray
    trouble: np.ndarray
    report_known: list[np.ndarray] = field(default_factory=list)  # where each reported value is known


class Chunk:
    """Per-chunk state: the columns, the day of each household, values computed so far.

    With ``track``, every unknown value also carries the missing facts it depends on, as bit sets (Python
    integers) whose bits stand for JSON paths: slower, so only households left undetermined are evaluated
    that way, a second time."""

    def __init__(self, cols: Columns, day: np.ndarray, params: dict[str, Num], trouble: np.ndarray,
                 track: bool = False) -> None:
        self.cols = cols
        self.day = day
        self.params = params
        self.trouble = trouble  # households this path must hand back (a division by zero, …)
        self.track = track
        self.defs: dict[str, Any] = {}
        self.vars: dict[str, Any] = {}
        self.bits: dict[str, int] = {}
        self.names: list[str] = []
        self.tables: dict[str, tuple[int, int, np.ndarray, np.ndarray, np.ndarray, int] | None] = {}

    def bit(self, path: str) -> int:
        if path not in self.bits:
            self.bits[path] = 1 << len(self.names)
            self.names.append(path)
        return self.bits[path]

    def missing(self, known: np.ndarray, path: str) -> Any:
        """The paths of a fact: its bit where it is unknown."""
        if not self.track or known.all():
            return 0
        paths = np.zeros(len(known), dtype=object)
        paths[~known] = self.bit(path)
        return paths

    def paths_of(self, bits: int) -> list[str]:
        names = []
        while bits:  # one step per bit that is set, however many facts there are
            low = bits & -bits
            names.append(self.names[low.bit_length() - 1])
            bits ^= low
        return names


def _union(*values: Any) -> Any:
    """The missing facts of several values together (0 when none is unknown)."""
    out: Any = 0
    for v in values:
        if isinstance(v.paths, np.ndarray):
            out = v.paths if not isinstance(out, np.ndarray) else out | v.paths
    return out


def _unless(known: Any, paths: Any) -> Any:
    """No missing facts where a value is known after all (false ∧ unknown = false)."""
    if not isinstance(paths, np.ndarray):
        return paths
    return np.where(known, 0, paths)


def _big(*bounds: int) -> bool:
    return any(b >= SAFE for b in bounds)


def _exact(x: Any, big: bool) -> Any:
    """``x`` as Python integers when a result could leave int64."""
    if big and isinstance(x, np.ndarray) and x.dtype != object:
        return x.astype(object)
    return x


def _and(a: Col, b: Col) -> Col:
    false = (a.known & ~a.values) | (b.known & ~b.values)
    true = a.known & a.values & b.known & b.values
    known = true | false
    return Col("bool", true, known, _unless(known, _union(a, b)))


def _or(a: Col, b: Col) -> Col:
    true = (a.known & a.values) | (b.known & b.values)
    false = a.known & ~a.values & b.known & ~b.values
    known = true | false
    return Col("bool", true, known, _unless(known, _union(a, b)))


def _not(a: Col) -> Col:
    return Col("bool", ~a.values, a.known, a.paths)


def _truth(values: Any, known: Any, paths: Any, size: int) -> Col:
    """A yes/no column of ``size`` households, whatever scalars an expression on constants gave."""
    return Col("bool", np.broadcast_to(np.asarray(values, dtype=bool), (size,)),
               np.broadcast_to(np.asarray(known, dtype=bool), (size,)), paths)


def _bool(values: Any, size: int) -> Col:
    return Col("bool", np.full(size, values, dtype=bool), np.ones(size, dtype=bool))


class ColumnCompiler:
    """Compiles expressions of a checked policy to column functions; raises ``Unsupported`` otherwise."""

    def __init__(self, policy: CheckedPolicy) -> None:
        self.policy = policy
        self.defs: dict[str, Fn] = {}
        self.member_bits: dict[str, int] = {}
        for enum in policy.enums.values():
            for i, m in enumerate(enum.members):
                self.member_bits[m.name] = 1 << i

    def definition(self, name: str) -> Fn:
        fn = self.defs.get(name)
        if fn is None:
            decl = self.policy.symbols[name].decl
            assert isinstance(decl, n.Definition)
            body = self.compile(decl.expr)

            def memo(k: Chunk) -> Any:
                if name not in k.defs:
                    k.defs[name] = body(k)
                return k.defs[name]
            fn = self.defs[name] = memo
        return fn

    def compile(self, e: n.Expr) -> Fn:  # noqa: C901 - one case per node kind
        if isinstance(e, (n.Number, n.Money)):
            v = Fraction(e.value)
            const = Num(v.numerator, v.denominator, True, abs(v.numerator), v.denominator, v.denominator,
                        ("const", v))
            return lambda k: const
        if isinstance(e, n.Boolean):
            flag = e.value
            return lambda k: _bool(flag, len(k.cols))
        if isinstance(e, n.Text):
            text = e.value
            return lambda k: Col("text", text, True)
        if isinstance(e, n.DateLiteral):
            ordinal = e.value.toordinal()
            return lambda k: Col("date", ordinal, True)
        if isinstance(e, n.Name):
            return self.name(e)
        if isinstance(e, n.Call):
            arg = self.compile(e.argument)
            if e.function == "annual":
                return lambda k: _mul(arg(k), TWELVE)
            return lambda k: _div(k, arg(k), TWELVE)
        if isinstance(e, n.SetLiteral):
            mask = 0
            for item in e.items:
                if not isinstance(item, n.Name) or item.name not in self.member_bits:
                    raise Unsupported("a set written with something other than enum members")
                mask |= self.member_bits[item.name]
            return lambda k: Col("set", mask, True)
        if isinstance(e, n.Index):
            if self.kind(e.target) != "series":
                raise Unsupported("indexing something other than a monthly series")
            target, index = self.compile(e.target), self.compile(e.index)
            return lambda k: _at(k, target(k), index(k))
        if isinstance(e, n.FieldAccess):
            target_name = e.target.name if isinstance(e.target, n.Name) else ""
            if getattr(self.policy.symbols.get(target_name), "kind", None) != "input":
                raise Unsupported("a field of something other than an input record")
            path = f"{target_name}.{e.name}"
            return lambda k: _leaf(k, path)
        if isinstance(e, n.Negate):
            operand = self.compile(e.operand)
            return lambda k: _neg(operand(k))
        if isinstance(e, n.BinOp):
            left, right = self.compile(e.left), self.compile(e.right)
            if e.op == "/":
                return lambda k: _div(k, left(k), right(k))
            if e.op == "*":
                return lambda k: _mul(left(k), right(k))
            sign = 1 if e.op == "+" else -1
            return lambda k: _add(left(k), right(k), sign)
        if isinstance(e, n.Compare):
            if not {self.kind(e.left), self.kind(e.right)} <= {"money", "count", "number", "boolean", "text",
                                                               "enum", "date"}:
                raise Unsupported("comparing values other than numbers, yes/no facts, texts and dates")
            left, right, op = self.compile(e.left), self.compile(e.right), e.op
            return lambda k: _compare(op, left(k), right(k))
        if isinstance(e, n.Member):
            element = e.element.name if isinstance(e.element, n.Name) else ""
            if getattr(self.policy.symbols.get(element), "kind", None) != "member" or self.kind(e.collection) != "set":
                raise Unsupported("'in' with something other than an enum member on its left")
            bit, coll, neg = self.member_bits[element], self.compile(e.collection), e.negated

            def member(k: Chunk) -> Col:
                s = coll(k)
                return _truth(((s.values & bit) != 0) != neg, s.known, s.paths, len(k.cols))
            return member
        if isinstance(e, n.HasAny):
            if self.kind(e.left) != "set" or self.kind(e.right) != "set":
                raise Unsupported("'has any of' on something other than sets")
            left, right, every = self.compile(e.left), self.compile(e.right), e.all

            def has(k: Chunk) -> Col:
                a, b = left(k), right(k)
                both = a.values & b.values
                out = both == b.values if every else both != 0
                return _truth(out, a.known & b.known, _union(a, b), len(k.cols))
            return has
        if isinstance(e, n.IsEmpty):
            if self.kind(e.operand) not in ("set", "list"):
                raise Unsupported("'is empty' on something other than a set or a list")
            operand, neg = self.compile(e.operand), e.negated

            def empty(k: Chunk) -> Col:
                v = operand(k)
                return _truth((v.values == 0) != neg, v.known, v.paths, len(k.cols))
            return empty
        if isinstance(e, n.Count):
            if self.kind(e.operand) not in ("set", "list"):
                raise Unsupported("'count of' something other than a set or a list")
            operand = self.compile(e.operand)

            def count(k: Chunk) -> Num:
                v = operand(k)
                values = np.broadcast_to(np.asarray(v.values, dtype=np.int64), (len(k.cols),))
                size = values if v.kind == "list" else np.bitwise_count(values).astype(np.int64)
                return Num(size, 1, v.known, _bound(size), 1, 1, paths=v.paths)
            return count
        if isinstance(e, n.Not):
            operand = self.compile(e.operand)
            return lambda k: _not(operand(k))
        if isinstance(e, (n.And, n.Or)):
            left, right, join = self.compile(e.left), self.compile(e.right), _and if isinstance(e, n.And) else _or
            return lambda k: join(left(k), right(k))
        if isinstance(e, n.Window):
            anchor, months = self.compile(e.anchor), e.months

            def window(k: Chunk) -> Window:
                d = anchor(k)
                return Window(months, _month_index(np.broadcast_to(d.values, (len(k.cols),))), d.known, d.paths)
            return window
        if isinstance(e, n.Quantified):
            return self.over_window(e.iterable, e.var, e.body, "every" if e.every else "any")
        if isinstance(e, n.Aggregate):
            return self.over_window(e.iterable, e.var, e.body, e.function)
        raise Unsupported(f"{type(e).__name__} expressions")

    def kind(self, e: n.Expr) -> str | None:
        """The checked type's kind of an expression (money, set, series, window, …)."""
        t = self.policy.types.get(id(e))
        return None if t is None else t.kind

    def over_window(self, iterable: n.Expr, var: str, body_expr: n.Expr, how: str) -> Fn:
        """``every``/``any``/``sum``/``mean``/``count`` of a body over the months of a window."""
        if self.kind(iterable) != "window":
            raise Unsupported("quantifiers and aggregates over something other than a window of months")
        items, body = self.compile(iterable), self.compile(body_expr)

        def over(k: Chunk) -> Any:
            w = items(k)
            saved = k.vars.get(var)
            acc: Any = None
            for j in range(w.months):
                k.vars[var] = Col("month", w.anchor - w.months + j, w.known, w.paths)  # unknown with its anchor
                v = body(k)
                if how == "count":
                    v = Num(v.values.astype(np.int64), 1, v.known, 1, 1, 1, paths=v.paths)
                if acc is None:
                    acc = v
                elif how == "every":
                    acc = _and(acc, v)
                elif how == "any":
                    acc = _or(acc, v)
                else:
                    acc = _add(acc, v, 1)
            k.vars[var] = saved
            if acc is None:  # an empty window (0 months)
                size = len(k.cols)
                if how in ("every", "any"):
                    return _bool(how == "every", size)
                if how == "mean":
                    k.trouble |= True
                return Num(np.zeros(size, dtype=np.int64), 1, True, 0, 1, 1)
            if how == "mean":
                acc = _div(k, acc, Num(w.months, 1, True, w.months, 1, 1, ("const", w.months)))
            return _anchored(acc, w)
        return over

    def name(self, e: n.Name) -> Fn:
        name = e.name
        if name == "as_of":
            return lambda k: Col("date", k.day, True)
        sym = self.policy.symbols.get(name)
        if sym is None:  # a loop variable: a month of a window (the only loops compiled)
            return lambda k: k.vars[name]
        if sym.kind == "input":
            return lambda k: _leaf(k, name)
        if sym.kind == "parameter":
            return lambda k: k.params[name]
        if sym.kind == "member":
            return lambda k: Col("text", name, True)
        if sym.kind == "definition":
            return self.definition(name)
        raise Unsupported(f"the name {name}")


TWELVE = Num(12, 1, True, 12, 1, 1, ("const", 12))


def _bound(values: Any) -> int:
    if isinstance(values, np.ndarray):
        return int(np.abs(values).max(initial=0))
    return abs(int(values))


def _leaf(k: Chunk, path: str) -> Any:
    leaf = k.cols.leaves[path]
    if leaf.kind == "num":
        return Num(leaf.values, leaf.den, leaf.known, _bound(leaf.values), leaf.den, leaf.den, ("leaf", path),
                   k.missing(leaf.known, path))
    if leaf.kind == "series":
        return SeriesRef(leaf, path)
    return Col(leaf.kind, leaf.values, leaf.known, k.missing(leaf.known, path))


def _month_index(ordinals: np.ndarray) -> np.ndarray:
    """year × 12 + month - 1 of each day (the month index ``batch_read`` keys series by)."""
    days = (ordinals - _EPOCH).astype("datetime64[D]")
    return days.astype("datetime64[M]").astype(np.int64) + 1970 * 12


_TABLE_MONTHS = 240  # a series whose months span more (in one chunk) is searched instead of tabled
_TABLE_CELLS = 1 << 22


def _table(k: Chunk, series: SeriesRef) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, int] | None:
    """A series as a table of households × months, made once per chunk, so that reading a month for every
    household is a gather instead of a sorted search: (first month, months, amounts, given, each
    household's first cell, largest amount). Each row has one more cell, never given, for months outside
    the table. None when the months span too far to table."""
    if series.path not in k.tables:
        key, values = series.leaf.values
        size = len(k.cols)
        table = None
        if len(key):
            index = key & ((1 << 20) - 1)
            low, high = int(index.min()), int(index.max())
            width = high - low + 2
            if width <= _TABLE_MONTHS and width * size <= _TABLE_CELLS:
                cells = (key >> 20) * width + (index - low)
                amounts = np.zeros(size * width, dtype=np.int64)
                given = np.zeros(size * width, dtype=bool)
                amounts[cells] = values
                given[cells] = True
                table = (low, width - 1, amounts, given, np.arange(size, dtype=np.int64) * width, _bound(values))
        k.tables[series.path] = table
    return k.tables[series.path]


def _at(k: Chunk, series: SeriesRef, month: Col) -> Num:
    """One month of a series for every household; unknown where the month is (its window's date is
    missing) or the household did not give that month."""
    key, values = series.leaf.values
    size = len(month.values)
    month_known = np.broadcast_to(np.asarray(month.known, dtype=bool), (size,))
    table = _table(k, series) if size == len(k.cols) else None
    if table is not None:
        low, span, amounts, given_cells, first, bound = table
        offset = np.asarray(month.values, dtype=np.int64) - low
        cell = first + np.where(offset.view(np.uint64) < span, offset, span)  # negative: far beyond span
        given = given_cells[cell]  # never for a month before year 0: no key YYYY-MM names one
        got = amounts[cell]
        known = given if month.known is True else given & month_known
    else:
        if len(key):  # a sorted search in the flattened series
            wanted = (np.arange(size, dtype=np.int64) << 20) | np.maximum(month.values, 0)
            pos = np.minimum(np.searchsorted(key, wanted), len(key) - 1)
            given = key[pos] == wanted
            got = np.where(given, values[pos], 0)
        else:
            given, got = np.zeros(size, dtype=bool), np.zeros(size, dtype=np.int64)
        known = given & month_known & (month.values >= 0)  # before year 0: no key YYYY-MM names such a month
        bound = _bound(got)
    den = series.leaf.den
    paths: Any = 0
    if k.track and not known.all():
        paths = np.zeros(size, dtype=object)
        for i in np.flatnonzero(~known).tolist():
            if not month_known[i]:
                paths[i] = month.paths[i] if isinstance(month.paths, np.ndarray) else 0
                continue
            index = int(month.values[i])
            paths[i] = k.bit(f"{series.path}.{index // 12:04d}-{index % 12 + 1:02d}")
    return Num(got, den, known, bound, den, den, paths=paths)


def _anchored(value: Any, w: Window) -> Any:
    """Where a window's date is missing, the reference looks at no month of it: the value is unknown and
    needs that date only, whatever its body would have needed."""
    if isinstance(w.known, bool) or w.known.all():
        return value
    paths = np.where(w.known, value.paths, w.paths) if isinstance(w.paths, np.ndarray) else value.paths
    return replace(value, known=value.known & w.known, paths=paths)  # a copy: the value may be shared


def _neg(a: Num) -> Num:
    return Num(-a.num, a.den, a.known, a.bound, a.dbound, a.dkey, paths=a.paths)


def _add(a: Num, b: Num, sign: int) -> Num:
    known = a.known & b.known
    if a.dkey == b.dkey or (type(a.den) is int and type(b.den) is int and a.den == b.den):
        big = _big(a.bound + b.bound)
        num = _exact(a.num, big) + sign * _exact(b.num, big)
        return Num(num, a.den, known, a.bound + b.bound, a.dbound, a.dkey, paths=_union(a, b))
    bound, dbound = a.bound * b.dbound + b.bound * a.dbound, a.dbound * b.dbound
    big = _big(bound, dbound)
    an, ad, bn, bd = (_exact(x, big) for x in (a.num, a.den, b.num, b.den))
    return Num(an * bd + sign * bn * ad, ad * bd, known, bound, dbound, ("*", a.dkey, b.dkey), paths=_union(a, b))


def _mul(a: Num, b: Num) -> Num:
    bound, dbound = a.bound * b.bound, a.dbound * b.dbound
    big = _big(bound, dbound)
    an, ad, bn, bd = (_exact(x, big) for x in (a.num, a.den, b.num, b.den))
    return Num(an * bn, ad * bd, a.known & b.known, bound, dbound, ("*", a.dkey, b.dkey), paths=_union(a, b))


def _div(k: Chunk, a: Num, b: Num) -> Num:
    zero = b.num == 0
    if np.any(zero & b.known):
        k.trouble |= zero & b.known  # the reference raises its division-by-zero error: let it
    bound, dbound = a.bound * b.dbound, a.dbound * b.bound
    big = _big(bound, dbound)
    an, ad, bn, bd = (_exact(x, big) for x in (a.num, a.den, b.num, b.den))
    if isinstance(bn, np.ndarray):
        signs = np.where(bn < 0, -1, 1)
        divisor = np.where(zero, 1, bn * signs)
        dkey = ("/", a.dkey, b.dkey, b.nkey) if b.nkey is not None else object()  # object(): equal to no other
        return Num(an * bd * signs, ad * divisor, a.known & b.known, bound, dbound, dkey, paths=_union(a, b))
    sign = -1 if bn < 0 else 1
    size = abs(bn) or 1  # by zero: every household is handed back above
    return Num(an * bd * sign, ad * size, a.known & b.known, bound, dbound, ("*", a.dkey, size), paths=_union(a, b))


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "=": np.equal, "!=": np.not_equal}


def _compare(op: str, a: Any, b: Any) -> Col:
    if isinstance(a, Num):
        big = _big(a.bound * b.dbound, b.bound * a.dbound)
        an, ad, bn, bd = (_exact(x, big) for x in (a.num, a.den, b.num, b.den))
        out = _OPS[op](an * bd, bn * ad)
    else:
        out = _OPS[op](a.values, b.values)
    size = max(np.size(a.known), np.size(b.known), np.size(out))
    return _truth(out, a.known & b.known, _union(a, b), size)


class BatchEvaluator:
    """A policy compiled for column-wise evaluation; ``rows`` answers for whole chunks of households."""

    def __init__(self, policy: CheckedPolicy) -> None:
        self.policy = policy
        self.reader = ColumnReader(policy)
        self.compiler = ColumnCompiler(policy)
        self.reference = Evaluator(policy)
        c = self.compiler
        self.rules = {id(r): [c.compile(cond.expr) for cond in r.conditions] for r in policy.rules}
        self.reports = [(name, c.name(n.Name(n.NOWHERE, name))) for name in policy.report]
        header = policy.policy.header
        self.head = {"id": header.id, "title": header.title, "sha256": policy.sha256}
        self.in_force = None if header.in_force is None else tuple(d.toordinal() for d in header.in_force)
        self.params = []
        for p in policy.policy.parameters:
            den = lcm(*(Fraction(v.value).denominator for v in p.values))
            nums = np.array([int(Fraction(v.value) * den) for v in p.values], dtype=object)
            self.params.append((p.name, np.array([v.start.toordinal() for v in p.values]), nums, den))
        self.warnings: dict[int, list[str]] = {}
        self._middles: dict[Any, tuple[str, str, Counted]] = {}  # see _middle

    def _params(self, day: np.ndarray, trouble: np.ndarray) -> dict[str, Num]:
        out = {}
        for name, starts, nums, den in self.params:
            index = np.searchsorted(starts, day, side="right") - 1
            trouble |= index < 0  # before the first value: the reference's error says so
            values = nums[np.maximum(index, 0)]
            bound = max(abs(int(v)) for v in nums)
            if bound < SAFE:
                values = values.astype(np.int64)
            out[name] = Num(values, den, True, bound, den, den, ("param", name))
        return out

    def _stale(self, ordinal: int) -> list[str]:
        if ordinal not in self.warnings:
            day = date.fromordinal(ordinal)
            try:
                values = self.reference.parameter_values(day)
            except Exception:  # before the first value: such households never reach here
                values = {}
            self.warnings[ordinal] = self.reference.stale_parameters(values, day)
        return self.warnings[ordinal]

    def rows(self, texts: list[str], sources: list[str], as_of: date | None) -> list[dict[str, Any] | None]:
        """One result row per text (as ``batch.Worker.row`` writes it), or None where the reference must answer."""
        return self._answer(texts, sources, as_of)

    def lines(self, texts: Sequence[str | bytes], sources: Sequence[str], as_of: date | None) -> Lines:
        """Like ``rows``, each row already written as a line of JSON Lines, and counted for the summary."""
        lines = Lines([None] * len(texts), _text(self.head), raw=self.reader.native is not None)
        self._answer(texts, sources, as_of, lines)
        return lines

    def _answer(self, texts: Sequence[str | bytes], sources: Sequence[str], as_of: date | None,
                lines: Lines | None = None) -> list[Any]:
        out: list[Any] = [None] * len(texts)
        cols = self.reader.read(texts)
        if not len(cols):
            return out
        today = date.today().toordinal()
        day = np.full(len(cols), as_of.toordinal()) if as_of is not None else \
            np.where(cols.as_of != 0, cols.as_of, today)
        first = self._decide(cols, day, track=False)
        again = np.flatnonzero(~first.decided & ~first.trouble)
        second = None
        if len(again):  # missing facts: once more, tracking which facts each open question needs
            second = self._decide(cols.take(again), day[again], track=True)
        for d, which in ((first, first.decided & ~first.trouble), (second, None)):
            if d is not None:
                which = ~d.trouble if which is None else which
                if lines is None:
                    self._write(d, sources, out, which)
                else:
                    self._write_lines(d, sources, lines, which)
        return out

    def _decide(self, cols: Columns, day: np.ndarray, track: bool) -> Decided:
        """Every rule for every household of ``cols``, as the reference evaluator decides them."""
        size = len(cols)
        trouble = np.zeros(size, dtype=bool)
        k = Chunk(cols, day, self._params(day, trouble), trouble, track)
        pol = self.policy

        def own(rule: n.Rule | None) -> Col:
            result = _bool(True, size)
            if rule is not None:
                for fn in self.rules[id(rule)]:
                    result = _and(result, fn(k))
            return result

        results: dict[str, Col] = {}
        pre = own(pol.precondition)
        eligible = _bool(False, size)
        for rule in pol.categories:
            results[rule.id] = r = _and(pre, own(rule))
            eligible = _or(eligible, r)
        for rule in pol.measures:
            results[rule.id] = _and(eligible, own(rule))
        status_gate = own(pol.status_precondition) if pol.statuses else _bool(False, size)
        not_before = _bool(True, size)
        status = np.full(size, -1, dtype=np.int64)
        for i, rule in enumerate(pol.statuses):
            gate = _and(status_gate, not_before)
            mine = own(rule)
            results[rule.id] = r = _and(gate, mine)
            status = np.where((status < 0) & r.values & r.known, i, status)
            closed = gate.known & ~gate.values  # the reference does not look at a rule behind a closed gate
            last_known = closed | mine.known
            last = Col("bool", np.where(closed, True, mine.values), last_known, _unless(last_known, mine.paths))
            not_before = _and(not_before, _not(last))
        decided = np.ones(size, dtype=bool)
        for r in results.values():
            decided &= r.known
        values = [self._values(name, fn(k), size) for name, fn in self.reports]
        return Decided(cols, day, k, results, eligible, status, [(name, texts) for name, texts, _ in values], decided,
                       k.trouble, [known for _, _, known in values])

    def _shared(self, d: Decided) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Rule ids in row order, which hold and which stay open (household × rule), and in force."""
        pol = self.policy
        size = len(d.cols)
        ordered = [r.id for r in (*pol.categories, *pol.measures, *pol.statuses)]
        held = np.stack([d.results[i].values & d.results[i].known for i in ordered], axis=1) if ordered \
            else np.zeros((size, 0), dtype=bool)
        open_ = np.stack([~d.results[i].known for i in ordered], axis=1) if ordered \
            else np.zeros((size, 0), dtype=bool)
        in_force = np.ones(size, dtype=bool) if self.in_force is None else \
            (d.day >= self.in_force[0]) & (d.day <= self.in_force[1])
        return ordered, held, open_, in_force

    def _opened(self, d: Decided, ordered: list[str], open_: np.ndarray,
                at: list[int]) -> list[tuple[list[str], list[str]]]:
        """For the households ``at``: the rules their missing facts leave open, and those facts (both
        empty outside the tracking pass)."""
        if not d.k.track:
            return [([], [])] * len(at)
        paths = {name: d.results[name].paths.tolist() if isinstance(d.results[name].paths, np.ndarray) else None
                 for name in ordered}
        out: list[tuple[list[str], list[str]]] = []
        for i, row in zip(at, open_[at].tolist(), strict=True):
            undetermined = [name for name, is_open in zip(ordered, row, strict=True) if is_open]
            bits = 0
            for name in undetermined:
                bits |= int(paths[name][i]) if paths[name] is not None else 0  # type: ignore[index]
            out.append((undetermined, sorted(d.k.paths_of(bits)) if bits else []))
        return out

    def _warnings(self, d: Decided, day: int, i: int) -> list[str]:
        warnings = self._stale(day)
        return [*d.cols.warnings[i], *warnings] if d.cols.warnings[i] else warnings

    def _write(self, d: Decided, sources: Sequence[str], out: list[Any], which: np.ndarray) -> None:
        """The rows of the households ``which`` of a decided chunk, as the dicts ``batch.Worker.row``
        returns, into their places in ``out``."""
        pol = self.policy
        ordered, held, open_, in_force = self._shared(d)
        categories = [r.id for r in pol.categories]
        measures = [r.id for r in pol.measures]
        status_ids = [r.id for r in pol.statuses]
        ncat = len(categories)
        days, status_list, in_force_list = d.day.tolist(), d.status.tolist(), in_force.tolist()
        eligible_known, eligible_values = d.eligible.known.tolist(), d.eligible.values.tolist()
        at = np.flatnonzero(which).tolist()
        for i, (undetermined, missing) in zip(at, self._opened(d, ordered, open_, at), strict=True):
            day = days[i]
            cats = [c for c, h in zip(categories, held[i], strict=False) if h]
            status = status_list[i]
            row: dict[str, Any] = {"source": sources[d.cols.rows[i]]}
            if d.cols.ids[i] is not None:
                row["id"] = d.cols.ids[i]
            row.update({
                "policy": self.head, "as_of": date.fromordinal(day).isoformat(), "in_force": in_force_list[i],
                "eligible": eligible_values[i] if eligible_known[i] else None,
                "categories": cats, "primary_category": cats[0] if cats else None,
                "undetermined": undetermined,
                "measures": [m for m, h in zip(measures, held[i, ncat:], strict=False) if h],
                "status": status_ids[status] if status >= 0 else None, "missing": missing,
                "values": {name: text[i] for name, text in d.reports if text[i] is not None}})
            warnings = self._warnings(d, day, i)
            if warnings:
                row["warnings"] = list(warnings)
            out[d.cols.rows[i]] = row

    def _write_lines(self, d: Decided, sources: Sequence[str], lines: Lines, which: np.ndarray) -> None:
        """Like ``_write``, each row written straight from pieces of JSON (the same bytes as encoding the
        dict, without making it). Households whose rows agree from "in_force" to "status" (as most do:
        the same categories, measures and status) share that piece, made once (``_middle``)."""
        pol = self.policy
        pick = np.flatnonzero(which)
        if not len(pick):
            return
        ordered, held, open_, in_force = self._shared(d)
        eligible = np.where(d.eligible.known, d.eligible.values.astype(np.int64), 2)
        shared = np.column_stack([in_force, eligible, d.status + 1, held])[pick]
        # the groups of alike rows: one number per household where the bits fit in int64
        widths = [1, 2, max(1, len(pol.statuses).bit_length()), *([1] * held.shape[1])]
        if sum(widths) <= 62:
            packed = (shared << np.cumsum([0, *widths[:-1]])).sum(axis=1)
            found, first, group, sizes = np.unique(packed, return_index=True, return_inverse=True, return_counts=True)
            keys: list[Any] = found.tolist()
        else:
            found, first, group, sizes = np.unique(shared, axis=0, return_index=True, return_inverse=True,
                                                   return_counts=True)
            keys = [tuple(row) for row in found.tolist()]
        group = group.reshape(-1)
        middles = self._middles
        if len(middles) > 100_000:
            middles.clear()
        for key, at_first in zip(keys, first.tolist(), strict=True):
            if key not in middles:
                middles[key] = self._middle(shared[at_first].tolist())
        pieces = [middles[key] for key in keys]
        counted: dict[Counted, int] = {}  # households by what the summary counts: far fewer than groups
        for piece, size in zip(pieces, sizes.tolist(), strict=True):
            counted[piece[2]] = counted.get(piece[2], 0) + size
        lines.groups += [(size, *part) for part, size in counted.items()]
        # the days: the policy and as_of of a row, and the warnings about stale parameters, by day
        days, on_day = np.unique(d.day[pick], return_inverse=True)
        days_list, on_day = days.tolist(), on_day.reshape(-1)
        stale = [self._stale(day) for day in days_list]
        stale_text = [_warnings_text(warnings) for warnings in stale]
        spaced = d.cols.warnings
        at = pick.tolist()
        warnings: Any
        if any(spaced[i] for i in at):  # a text with spaces at its ends (rare): its own warnings first
            warnings = [stale_text[j] if not spaced[i] else _warnings_text([*spaced[i], *stale[j]])
                        for i, j in zip(at, on_day.tolist(), strict=True)]
            lines.warned += len(warnings) - warnings.count("")
        else:
            warnings = ("pick", stale_text, on_day)
            lines.warned += int(np.bincount(on_day, minlength=len(days))[[bool(t) for t in stale_text]].sum())
        undetermined: Any = "[]"
        missing: Any = "[]"
        if d.k.track:
            opened = self._opened(d, ordered, open_, at)
            undetermined = [_text(u) if u else "[]" for u, _ in opened]
            missing = [_text(m) if m else "[]" for _, m in opened]
        rows = np.asarray(d.cols.rows, dtype=np.int64)[pick]
        if isinstance(sources, LineSources):  # lines of a file, the usual case
            source: list[Any] = ['"line ', ("int", sources.array[rows]), '"']
        else:
            texts = [sources[row] for row in rows.tolist()]
            source = [[_text(t) for t in texts] if _NEEDS_ESCAPE.search("".join(texts)) else [f'"{t}"' for t in texts]]
        ids = d.cols.ids
        ident: Any = "" if ids.count(None) == len(ids) else [
            "" if x is None else f'"id":{x},' if type(x) is int else _id_text(x) for x in (ids[i] for i in at)]
        head = _text(self.head) if lines.raw else "\0"  # the policy's object, or its stand-in (Lines.encode)
        heads = [f'"policy":{head},"as_of":"{date.fromordinal(day).isoformat()}' for day in days_list]
        values, odd = self._values_parts(d, pick)
        before = ['{"source":', *source, ",", ident, ("pick", heads, on_day), ("pick", [m[0] for m in pieces], group),
                  undetermined, ("pick", [m[1] for m in pieces], group), missing, ',"values":']
        after = [warnings, "}\n"]
        write = _fastread.rows if lines.raw else _rows
        write([_int64(part) for part in (*before, *values, *after)], lines.texts, rows.tolist())
        if odd:  # households with an unknown value: written again, with their own "values" object
            ks = list(odd)
            few = [[_at_positions(part, ks) for part in parts] for parts in (before, after)]
            write([_int64(part) for part in (*few[0], list(odd.values()), *few[1])], lines.texts,
                  rows[ks].tolist())

    def _values_parts(self, d: Decided, pick: np.ndarray) -> tuple[list[Any], dict[int, str]]:
        """The "values" object of each household ``pick`` as parts of its row: each value picked from its
        column (amounts need no escaping); and, by position, the whole object of each household with an
        unknown value, which leaves that value out."""
        names = [_text(name) for name, _ in d.reports]
        if not names:
            return ["{}"], {}
        unknown = np.zeros(len(pick), dtype=bool)
        for known in d.report_known:
            if not known.all():
                unknown |= ~known[pick]
        index = pick.tolist()
        odd = {k: "{" + ",".join(f'{name}:"{text[index[k]]}"' for name, (_, text) in zip(names, d.reports, strict=True)
                                 if text[index[k]] is not None) + "}" for k in np.flatnonzero(unknown).tolist()}
        parts: list[Any] = ["{"]
        for j, (name, (_, text), known) in enumerate(zip(names, d.reports, d.report_known, strict=True)):
            chosen = pick
            if not known.all():  # an unknown value points at a stand-in: its row is written again
                chosen = np.where(known, np.arange(len(text)), len(text))[pick]
                text = [*text, ""]
            parts += [("," if j else "") + f'{name}:"', ("pick", text, chosen), '"']
        return [*parts, "}"], odd

    def _middle(self, shared: list[int]) -> tuple[str, str, Counted]:
        """The pieces of a row from "in_force" to "undetermined" and from "measures" to "missing", for
        ``shared`` = (in force, eligible 0/1/2 for unknown, status + 1, each rule held), and what the
        summary counts of it: eligible, primary category, categories."""
        pol = self.policy
        in_force, eligible, status, *holds = shared
        ncat, nmeas = len(pol.categories), len(pol.measures)
        cats = [r.id for r, h in zip(pol.categories, holds, strict=False) if h]
        meas = [r.id for r, h in zip(pol.measures, holds[ncat:ncat + nmeas], strict=False) if h]
        answer = (False, True, None)[eligible]
        return (f'","in_force":{_BOOL[bool(in_force)]},"eligible":{_BOOL[answer]},"categories":{_text(cats)},'
                f'"primary_category":{_text(cats[0] if cats else None)},"undetermined":',
                f',"measures":{_text(meas)},"status":{_text(pol.statuses[status - 1].id) if status else "null"},'
                '"missing":', (answer, cats[0] if cats else None, tuple(cats)))

    def _values(self, name: str, v: Num, size: int) -> tuple[str, list[str | None], np.ndarray]:
        """A reported value per household, written as the reference writes it (None where unknown):
        an amount, or a fraction, to the cent rounded half up; a whole number as it is. And where it is known."""
        big = _big(2 * v.bound * 100 + v.dbound, 2 * v.dbound)
        num = np.broadcast_to(_exact(np.asarray(v.num), big), (size,))
        den = np.broadcast_to(_exact(np.asarray(v.den), big), (size,))
        known = np.broadcast_to(np.asarray(v.known), (size,))
        cents = (2 * abs(num) * 100 + den) // (2 * den)
        sign = np.where((num < 0) & (cents > 0), "-", "")
        money = self.policy.symbols[name].type.kind == "money"
        if money and not (num < 0)[known].any():  # the usual case, written the quick way
            quick: list[str | None] = [f"{w}{_CENTS[c]}" for w, c in zip((cents // 100).tolist(),
                                                                        (cents % 100).tolist(), strict=True)]
            for i in np.flatnonzero(~known).tolist():
                quick[i] = None
            return name, quick, known
        whole = np.zeros(size, dtype=bool) if money else (num % den == 0)
        texts: list[str | None] = [
            None if not ok else str(n_ // d_) if w else f"{s_}{c // 100}.{c % 100:02d}"
            for ok, w, n_, d_, c, s_ in zip(known.tolist(), whole.tolist(), num.tolist(), den.tolist(),
                                            cents.tolist(), sign.tolist(), strict=True)]
        return name, texts, known


def _at_positions(part: Any, ks: list[int]) -> Any:
    """A part of a row (see ``_rows``) for only the positions ``ks``."""
    if isinstance(part, list):
        return [part[k] for k in ks]
    if isinstance(part, tuple):
        kind, *rest, numbers = part
        return (kind, *rest, numbers[ks])
    return part


def _int64(part: Any) -> Any:
    """A part of a row as ``_fastread.rows`` takes it: indexes and numbers as int64 bytes."""
    if isinstance(part, tuple):
        kind, *rest, numbers = part
        return (kind, *rest, np.ascontiguousarray(numbers, dtype=np.int64).tobytes())
    return part


def _rows(parts: list[Any], target: list[Any], positions: list[int]) -> None:
    """``_fastread.rows`` in Python, where the native reader is not used (rows stay text, see Lines):
    ``target[positions[k]]`` = each part's text for row k joined, a part being a text, a list (its k-th
    item), ('pick', texts, index) (texts[index[k]]) or ('int', values)."""
    columns: list[Any] = [[""] * len(positions)]
    for part in parts:
        if isinstance(part, (str, bytes)):
            columns.append([part.decode("utf-8") if isinstance(part, bytes) else part] * len(positions))
        elif isinstance(part, list):
            columns.append(part)
        elif part[0] == "pick":
            texts = part[1]
            columns.append([texts[i] for i in np.frombuffer(part[2], dtype=np.int64).tolist()])
        else:
            columns.append([str(v) for v in np.frombuffer(part[1], dtype=np.int64).tolist()])
    for position, pieces in zip(positions, zip(*columns, strict=True), strict=True):
        target[position] = "".join(pieces)


def compiled_or_why(policy: CheckedPolicy) -> tuple[BatchEvaluator | None, str | None]:
    """The compiled batch evaluator for a policy; or None and why, in words, when the policy uses
    something only the reference evaluator handles."""
    try:
        return BatchEvaluator(policy), None
    except Unsupported as exc:
        return None, f"the compiled batch path does not handle {exc}; every household is evaluated by the " \
                     "reference evaluator (the same results, several times slower)"


def compile_batch(policy: CheckedPolicy) -> BatchEvaluator | None:
    """The compiled batch evaluator for a policy, or None when it uses something only the reference handles."""
    return compiled_or_why(policy)[0]


__all__ = ["BatchEvaluator", "Lines", "compile_batch", "compiled_or_why"]
