"""Reading many households at once into columns, for the compiled batch path (``batch_eval``).

Two tiers. The native reader (``_fastread``, a C extension built at install when a compiler is there)
reads the plain, common form of a household straight into column buffers. What it declines, and every
household when it is not built, goes to the msgspec tier: the policy's input declarations become
msgspec types, so decoding and most validation run in C, and the rest (amounts, months, dates) is
checked here, column by column. Both tiers only *accept* what the
reference reader (``household.py``) would accept without a problem or a warning, and reads it to the same
exact values (and, for a text with spaces at its ends, the same warning). Everything else — a syntax
error, a wrong type, a key given twice, an amount written as text or with more than two decimals, an
unknown key — is *declined*: that household goes to the reference reader, which gives its error or
warning. Declining is always safe; accepting must be exact.

Amounts are kept as integers of hundredths (cents), counts as integers: never a float.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Annotated, Any, Literal, overload

import msgspec
import numpy as np

try:
    from . import _fastread  # type: ignore[attr-defined]
except ImportError:  # not built (no C compiler at install): the msgspec tier reads everything
    _fastread = None

from . import nodes as n
from .checker import CheckedPolicy
from .household import DATE_TEXT, LARGEST, MAX_ID_DIGITS, MAX_WHOLE_DIGITS

UNSET = msgspec.UNSET
SCALE = {"money": 100, "number": 10**6}  # the denominator a read amount or number is kept over
_DECIMALS = {"money": 2, "number": 6}
_LONGEST = 16  # characters of an amount this path reads; longer ones go to the reference reader
_WHOLE_DIGITS = MAX_WHOLE_DIGITS  # digits before the point: more is the reference reader's error to give
_ID_INT = re.compile(rb"-?\d{1,%d}" % MAX_ID_DIGITS)  # as batch.household_id keeps it
_ODD_ID = object()
_PLAIN_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_SERIES_CHARS = re.compile(rb'\{["0-9:,.\-nul]*\}')  # may be a plain series ({"2019-03":1500,"2019-04":null})
_PLAIN = np.zeros(256, dtype=bool)  # the bytes of a plain number literal, and the padding of short ones
_PLAIN[list(b"0123456789.\0")] = True
_NULL = np.frombuffer(b"null", dtype=np.uint8)
_DIGIT = np.zeros(256, dtype=np.int64)
_DIGIT[48:58] = np.arange(10)
_NULL_RAW = msgspec.Raw(b"null")
astuple = msgspec.structs.astuple


class Spans(Sequence[bytes]):
    """The households of a block as spans of its bytes (``_fastread.lines`` finds them): the native reader
    reads them in place, so no bytes object is made per line; ``spans[i]`` copies one out, for a household
    handed on to another reader."""

    __slots__ = ("_ends", "_starts", "buffer", "ends", "starts")

    def __init__(self, buffer: bytes, starts: bytes, ends: bytes) -> None:
        self.buffer, self.starts, self.ends = buffer, starts, ends
        self._starts, self._ends = memoryview(starts).cast("q"), memoryview(ends).cast("q")

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...
    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.buffer[self._starts[i]:self._ends[i]]


class LineSources(Sequence[str]):
    """Where each household of a block comes from, "line N", kept as the numbers: the row writer puts
    them in the rows directly, without making the text "line N" first."""

    __slots__ = ("array",)

    def __init__(self, numbers: bytes) -> None:
        self.array = np.frombuffer(numbers, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [f"line {number}" for number in self.array[i].tolist()]
        return f"line {int(self.array[i])}"


def split_lines(block: bytes, before: int) -> tuple[LineSources, Spans] | None:
    """(sources, texts) of the households of a block of whole lines, as ``batch.block_lines`` reads
    them, split by the native reader; None where it is not built."""
    if _fastread is None:
        return None
    numbers, starts, ends = _fastread.lines(block, before)
    return LineSources(numbers), Spans(block, starts, ends)


class Unsupported(Exception):
    """The policy declares or uses something the compiled path does not handle (the reference does)."""


@dataclass
class Leaf:
    """One column: a fact of every accepted household (``known`` False where it is absent or null).

    kind is num (``values`` integers over ``den``), bool, text, set (a bit mask of enum members), list
    (only its length), date (ordinals) or series: ``values`` is then (keys, amounts), every month of every
    household, sorted by key = household << 20 | month index, the amounts integers over ``den``."""

    kind: str
    values: Any
    known: np.ndarray
    den: int = 1


@dataclass
class Columns:
    """Households read into columns: ``rows`` are their positions in the chunk that was read."""

    rows: list[int]
    leaves: dict[str, Leaf]
    as_of: np.ndarray  # ordinal of the household's own as_of, 0 where it gives none
    ids: list[Any] = field(default_factory=list)  # the household's 'id' when it gives one, else None
    warnings: list[Sequence[str]] = field(default_factory=list)  # what the reference reader warns about, each

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, keep: np.ndarray) -> Columns:
        """The households at positions ``keep`` (sorted) only."""
        leaves = {k: _take(leaf, keep, len(self)) for k, leaf in self.leaves.items()}
        return Columns([self.rows[i] for i in keep], leaves, self.as_of[keep], [self.ids[i] for i in keep],
                       [self.warnings[i] for i in keep])


def _optional(t: Any) -> Any:
    return t | None | msgspec.UnsetType


class ColumnReader:
    """Reads JSON texts of households into ``Columns`` for one checked policy.

    ``native``: use the native tier where it is built (None: unless ``POLICYDSL_NATIVE=0`` is set)."""

    MONTH_CACHE = 100_000  # month keys remembered (with their month index) before the cache starts afresh

    def __init__(self, policy: CheckedPolicy, native: bool | None = None) -> None:
        self.policy = policy
        self.structs: dict[str, Any] = {}
        top: list[tuple[str, Any, Any]] = []
        self.plan: list[tuple[str, n.TypeExpr]] = []  # (path, type) of every leaf column, records flattened
        for decl in policy.policy.inputs:
            top.append((decl.name, self._type(decl.type, decl.name), UNSET))
        if "as_of" not in {d.name for d in policy.policy.inputs}:
            top.append(("as_of", _optional(str), UNSET))
        self.has_id = "id" not in {d.name for d in policy.policy.inputs}  # else 'id' is a fact of the policy
        if self.has_id:
            top.append(("id", msgspec.Raw, UNSET))
        household = msgspec.defstruct("Household", top, forbid_unknown_fields=True)
        self.decoder = msgspec.json.Decoder(household)
        self.top = [name for name, _, _ in top]
        self.record_of = {d.name: d.type.of or "" for d in policy.policy.inputs
                          if d.type.kind == "named" and d.type.of in policy.records}
        self.record_inputs = {name: len(policy.records[of].fields) for name, of in self.record_of.items()}
        self.dates: dict[str, int | None] = {}
        self.series_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
        self.spaced: list[tuple[int, str]] = []  # (household, warning) found while reading a chunk
        self.months: dict[str, int] = {}  # month key → month index (year × 12 + month - 1), -1 if not a month
        if native is None:
            native = os.environ.get("POLICYDSL_NATIVE", "1") != "0"
        self.native = self._native_reader() if native and _fastread is not None else None

    # ------------------------------------------------------------ msgspec types from the declarations

    def _type(self, te: n.TypeExpr, path: str, in_list: bool = False) -> Any:
        """The msgspec type of a declared input or field; every one but a record is also a column."""
        kind = te.kind
        record = kind == "named" and te.of not in self.policy.enums
        if (in_list and kind in ("monthly", "list")) or (record and (in_list or "." in path)):
            raise Unsupported(f"{path}: a {'record' if record else kind} inside a list item or a record")
        if not record and not in_list:  # fields of list items are only checked, never read into columns
            self.plan.append((path, te))
        if kind in ("money", "number", "monthly"):  # the literal's own text, read exactly (null: missing)
            return msgspec.Raw
        if kind == "count":
            low = _low(te.minimum, 1) if te.minimum is not None else -LARGEST + 1
            return _optional(Annotated[int, msgspec.Meta(ge=max(low, -LARGEST + 1), le=LARGEST - 1)])
        if kind in ("boolean", "text", "date"):
            return _optional({"boolean": bool, "text": str, "date": str}[kind])
        if kind == "set":
            if len(self.policy.enums[te.of or ""].members) > 62:
                raise Unsupported(f"{path}: a set of an enum of more than 62 members")  # bits of an int64
            return _optional(list[self._enum(te.of)])  # type: ignore[misc]
        if kind == "list":
            return _optional(list[self._record(te.of or "", path, in_list=True)])  # type: ignore[misc]
        if kind == "named":
            return _optional(self._enum(te.of) if not record else self._record(te.of or "", path, in_list=False))
        raise Unsupported(f"{path}: inputs of kind {kind}")

    def _enum(self, name: str | None) -> Any:
        members = tuple(m.name for m in self.policy.enums[name or ""].members)
        return Literal[members]  # type: ignore[valid-type]

    def _record(self, name: str, path: str, in_list: bool) -> Any:
        key = f"{name}/{in_list}"
        if key not in self.structs:
            rec = self.policy.records[name]
            fields = []
            for f in rec.fields:
                if in_list and f.type.kind not in ("boolean", "count", "set") and not (
                        f.type.kind == "named" and f.type.of in self.policy.enums):
                    raise Unsupported(f"{path}: list items with {f.type.kind} fields")
                fields.append((f.name, self._type(f.type, f"{path}.{f.name}", in_list), UNSET))
            self.structs[key] = msgspec.defstruct(f"R_{name}_{int(in_list)}", fields, forbid_unknown_fields=True)
        elif not in_list:
            for f in self.policy.records[name].fields:
                self._type(f.type, f"{path}.{f.name}", in_list)
        return self.structs[key]

    def _native_reader(self) -> Any:
        """The native tier set up for this policy's inputs; None if it lacks something they need."""
        column = {path: i for i, (path, _) in enumerate(self.plan)}
        enums = self.policy.enums

        def spec(name: str, te: n.TypeExpr, path: str, in_list: bool) -> tuple[Any, ...]:
            kind = te.kind
            col = -1 if in_list else column.get(path, -1)
            members = tuple(m.name for m in enums[te.of or ""].members) if te.of in enums else None
            if members is not None and len(members) > 62:
                raise Unsupported("an enum of more than 62 members")
            if kind in ("money", "number"):
                return (name, _fastread.NUM, col, _DECIMALS[kind], _low(te.minimum, SCALE[kind]), None, None, None)
            if kind == "monthly":
                return (name, _fastread.SERIES, col, 2, _low(te.minimum, 100), None, None, None)
            if kind == "count":
                low = _low(te.minimum, 1) if te.minimum is not None else -LARGEST + 1
                return (name, _fastread.COUNT, col, 0, max(low, -LARGEST + 1), LARGEST - 1, None, None)
            if kind in ("boolean", "text", "date"):
                code = {"boolean": _fastread.BOOL, "text": _fastread.TEXT, "date": _fastread.DATE}[kind]
                return (name, code, col, 0, None, None, None, None)
            if kind == "set":
                return (name, _fastread.SET, col, 0, None, None, members, None)
            if kind == "named" and members is not None:
                return (name, _fastread.ENUM, col, 0, None, None, members, None)
            fields = self.policy.records[te.of or ""].fields
            inner = [spec(f.name, f.type, f"{path}.{f.name}", in_list or kind == "list") for f in fields]
            return (name, _fastread.LIST if kind == "list" else _fastread.RECORD, col, 0, None, None, None, inner)

        if "as_of" in {d.name for d in self.policy.policy.inputs}:
            return None  # the checker refuses such an input; were it allowed, msgspec would read it
        try:
            top = [spec(d.name, d.type, d.name, False) for d in self.policy.policy.inputs]
        except Unsupported:
            return None
        top.append(("as_of", _fastread.AS_OF, -1, 0, None, None, None, None))
        if self.has_id:
            top.append(("id", _fastread.ID, -1, 0, None, None, None, None))
        if len(self.plan) > _fastread.MAX_COLUMNS or _widest(top) > _fastread.MAX_FIELDS:
            return None  # more than any real policy has: msgspec reads them
        return _fastread.Reader(top, len(self.plan))

    # ------------------------------------------------------------ reading

    def read(self, texts: Sequence[str | bytes]) -> Columns:
        """The households among ``texts`` (str, or UTF-8 bytes) that the reference would accept as they
        are, in columns."""
        if self.native is None:
            return self._read_texts(texts, range(len(texts)))
        size = len(texts)
        ok_bytes, as_of, ids, values, known, objects, series = (
            self.native.read_spans(texts.buffer, texts.starts, texts.ends) if isinstance(texts, Spans)
            else self.native.read(texts))
        leaves: dict[str, Leaf] = {}
        for c, (path, te) in enumerate(self.plan):
            k = np.frombuffer(known[c], dtype=bool)
            if te.kind == "monthly":
                owner, index, amounts = (np.frombuffer(b, dtype=np.int64) for b in series[c])
                leaves[path] = Leaf("series", ((owner << 20) | index, amounts), k, 100)
            elif objects[c] is not None:
                leaves[path] = Leaf("text", np.array(objects[c], dtype=object), k)
            else:
                v = np.frombuffer(values[c], dtype=np.int64)
                leaves[path] = Leaf(_COLUMN_KIND[te.kind], v.astype(bool) if te.kind == "boolean" else v, k,
                                    SCALE.get(te.kind, 1))
        ok = np.frombuffer(ok_bytes, dtype=bool).copy()
        day = np.frombuffer(as_of, dtype=np.int64)
        warnings: list[Sequence[str]] = [()] * size  # one shared empty tuple: a list for each costs more
        for c, (path, te) in enumerate(self.plan):
            if te.kind == "text":
                for i, message in self._spaced(path, objects[c]):
                    if warnings[i]:
                        ok[i] = False  # two warnings: their order follows the document's keys
                    warnings[i] = [*warnings[i], message]
        read = Columns(list(range(size)), leaves, day, ids, warnings)
        if ok.all():
            return read
        return _merge(read.take(np.flatnonzero(ok)), self._read_texts(texts, np.flatnonzero(~ok).tolist()))

    def _read_texts(self, texts: Sequence[str | bytes], which: Sequence[int]) -> Columns:
        """The msgspec tier on the texts at positions ``which``, as str: bytes that are not UTF-8 are
        left to the reference reader, which says so."""
        chosen: list[int] = []
        strings: list[str] = []
        for i in which:
            text = texts[i]
            if isinstance(text, bytes):
                try:
                    text = text.decode("utf-8")
                except UnicodeDecodeError:
                    continue
            chosen.append(i)
            strings.append(text)
        rest = self._read(strings)
        rest.rows = [chosen[r] for r in rest.rows]
        return rest

    @staticmethod
    def _spaced(path: str, texts: list[Any]) -> list[tuple[int, str]]:
        """(household, warning) for each text with spaces at its ends, as the reference warns."""
        spaced = {r for r in set(texts) if type(r) is str and r != r.strip()}
        if not spaced:
            return []
        return [(i, f'{path}: "{r}" begins or ends with spaces, which count when it is compared')
                for i, r in enumerate(texts) if r in spaced]

    def _read(self, texts: list[str]) -> Columns:
        """The msgspec tier of ``read``."""
        decoded: list[Any] = []
        rows: list[int] = []
        decode = self.decoder.decode
        for i, text in enumerate(texts):
            try:
                decoded.append(decode(text))
            # UnicodeEncodeError: half a character; RecursionError: an id nested deeper than Python's stack
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeEncodeError, RecursionError):
                continue
            rows.append(i)
        size = len(decoded)
        ok = np.ones(size, dtype=bool)
        # Keys given twice: msgspec keeps the last one silently, the reference refuses them. Every key is
        # followed by one colon and texts can only add more colons, never fewer, so as many colons as keys
        # read means that no key was repeated.
        tuples = [astuple(h) for h in decoded]
        keys = np.fromiter((len(t) - t.count(UNSET) for t in tuples), dtype=np.int64, count=size)
        tops = dict(zip(self.top, zip(*tuples, strict=True), strict=True)) if size else \
            {name: () for name in self.top}
        fields: dict[str, tuple[Any, ...]] = {}
        for name, width in self.record_inputs.items():
            blank = (UNSET,) * width
            inner = [blank if r is UNSET or r is None else astuple(r) for r in tops[name]]
            keys += np.fromiter((width - t.count(UNSET) for t in inner), dtype=np.int64, count=size)
            names = [f.name for f in self.policy.records[self.record_of[name]].fields]
            if size:
                fields.update(zip((f"{name}.{f}" for f in names), zip(*inner, strict=True), strict=True))
            else:
                fields.update((f"{name}.{f}", ()) for f in names)
        leaves = {path: self._leaf(list(tops[path] if path in tops else fields[path]), te, ok, keys, path)
                  for path, te in self.plan}
        colons = np.fromiter((texts[i].count(":") for i in rows), dtype=np.int64, count=size)
        ok &= colons == keys
        day = self._dates(tops["as_of"], ok) if "as_of" in tops else np.zeros(size, dtype=np.int64)
        ids = [None if v is UNSET else _id(v) for v in tops["id"]] if self.has_id else [None] * size
        ok[[i for i, v in enumerate(ids) if v is _ODD_ID]] = False
        warnings: list[Sequence[str]] = [()] * size
        for i, message in self.spaced:
            if warnings[i]:
                ok[i] = False  # two warnings: their order follows the document's keys; the reference knows it
            warnings[i] = [*warnings[i], message]
        self.spaced.clear()
        columns = Columns(rows, leaves, day, ids, warnings)
        return columns if ok.all() else columns.take(np.flatnonzero(ok))

    def _leaf(self, raw: list[Any], te: n.TypeExpr, ok: np.ndarray, keys: np.ndarray, path: str) -> Leaf:
        kind = te.kind
        size = len(raw)
        if kind in ("money", "number"):
            values, known, bad = parse_units([b"" if r is UNSET else r for r in raw], _DECIMALS[kind])
            low = _low(te.minimum, SCALE[kind])
            if low is not None:
                bad |= known & (values < low)
            ok &= ~bad
            return Leaf("num", values, known, SCALE[kind])
        if kind == "monthly":
            return self._series(raw, _low(te.minimum, 100), ok, keys)
        complete = not raw.count(UNSET) and not raw.count(None)  # the common case, read at C speed
        known = np.ones(size, dtype=bool) if complete else \
            np.fromiter((r is not UNSET and r is not None for r in raw), dtype=bool, count=size)
        if kind == "count":
            values = np.array(raw, dtype=np.int64) if complete else \
                np.fromiter((r if type(r) is int else 0 for r in raw), dtype=np.int64, count=size)
            return Leaf("num", values, known, 1)
        if kind == "boolean":
            values = np.array(raw, dtype=bool) if complete else \
                np.fromiter((r is True for r in raw), dtype=bool, count=size)
            return Leaf("bool", values, known)
        if kind == "text":
            values = np.array([r if type(r) is str else "" for r in raw], dtype=object)
            self.spaced += self._spaced(path, raw)
            return Leaf("text", values, known)
        if kind == "date":
            return Leaf("date", self._dates(raw, ok), known)
        if kind == "set":
            bits = {m.name: 1 << i for i, m in enumerate(self.policy.enums[te.of or ""].members)}
            masks = np.fromiter((sum({bits[x] for x in r}) if type(r) is list else 0 for r in raw),
                                dtype=np.int64, count=size)
            return Leaf("set", masks, known)
        if kind == "list":
            lengths = np.zeros(size, dtype=np.int64)
            for i, r in enumerate(raw):
                if type(r) is list:
                    lengths[i] = len(r)
                    keys[i] += sum(len(item.__struct_fields__) - astuple(item).count(UNSET) for item in r)
            return Leaf("list", lengths, known)
        if kind == "named":  # an enum value
            return Leaf("text", np.array([r if type(r) is str else "" for r in raw], dtype=object), known)
        raise AssertionError(kind)

    def _series(self, raw: list[Any], low: int | None, ok: np.ndarray, keys: np.ndarray) -> Leaf:
        """Monthly amounts of every household, flattened: (household, month index, amount), sorted.

        A series written plainly (``{"2019-03":1500,"2019-04":1500.5}``: no spaces, numbers or null) is
        read from one joined buffer by numpy; any other is decoded by msgspec and read value by value."""
        size = len(raw)
        given = [i for i, r in enumerate(raw) if r is not UNSET and r != _NULL_RAW]  # null: a missing series
        simple = [i for i in given if _SERIES_CHARS.fullmatch(raw[i])]
        parts: list[Any] = []
        plain = np.zeros(0, dtype=np.int64)
        if simple:
            plain, *part = self._plain_series([raw[i] for i in simple], np.array(simple, dtype=np.int64))
            parts.append(part)
        other = sorted(set(given) - set(plain.tolist()))
        if other:
            parts.append(self._other_series([raw[i] for i in other], np.array(other, dtype=np.int64)))
        if not parts:
            none = np.zeros(0, dtype=np.int64)
            parts.append([none, none, none, none.astype(bool), none.astype(bool)])
        owner, index, values, known, bad = (np.concatenate(x) for x in zip(*parts, strict=True))
        keys += np.bincount(owner, minlength=size)
        if low is not None:
            bad |= known & (values < low)
        bad |= index < 0
        keep = known & ~bad
        key = (owner << 20) | np.maximum(index, 0)
        order = np.argsort(key, kind="stable")
        twice = np.zeros(len(key), dtype=bool)
        twice[order[1:]] = key[order[1:]] == key[order[:-1]]  # a month given twice: the reference refuses it
        ok[owner[bad | twice]] = False
        present = np.zeros(size, dtype=bool)
        present[given] = True
        return _flat_series(owner[keep], index[keep], values[keep], present)

    def _plain_series(self, texts: list[Any], rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Series written plainly, read from one buffer: each month key sits at fixed places before its
        colon, each amount between the colon and the next comma or brace. Returns the rows read this way
        (a series that turns out not to be plain is left to ``_other_series``) and their entries."""
        data = np.frombuffer(b"\0".join(texts) + b"\0", dtype=np.uint8)
        nul = np.flatnonzero(data == 0)
        starts = np.concatenate(([0], nul[:-1] + 1))
        colons = np.flatnonzero(data == 58)
        seg = np.searchsorted(nul, colons)  # which series each entry is in
        count = len(texts)
        at = np.concatenate((data, np.zeros(2, dtype=np.uint8)))  # room to look one past the end

        def back(k: int) -> np.ndarray:  # the byte k places before each colon (a NUL before the buffer)
            return np.where(colons >= k, data[np.maximum(colons - k, 0)], 0)

        ends = np.flatnonzero((data == 44) | (data == 125))  # the comma or brace that ends each amount
        stops = ends[np.minimum(np.searchsorted(ends, colons), len(ends) - 1)] if len(ends) else colons
        key = np.stack([back(k) for k in (8, 7, 6, 5, 3, 2)]).astype(np.int64) - 48  # YYYY and MM
        entry = (back(1) == 34) & (back(9) == 34) & (back(4) == 45) & ((key >= 0) & (key <= 9)).all(axis=0) \
            & ((back(10) == 123) | (back(10) == 44)) & (stops > colons) \
            & (((at[stops] == 44) & (at[stops + 1] == 34)) | ((at[stops] == 125) & (at[stops + 1] == 0)))
        quotes = np.bincount(np.searchsorted(nul, np.flatnonzero(data == 34)), minlength=count)
        braces = np.bincount(np.searchsorted(nul, np.flatnonzero((data == 123) | (data == 125))), minlength=count)
        entries = np.bincount(seg, minlength=count)
        good = (quotes == 2 * entries) & (braces == 2) & (data[starts] == 123) & (data[nul - 1] == 125) \
            & (np.bincount(seg, weights=~entry, minlength=count) == 0)
        values, known, bad = _parse_segments(data, colons + 1, stops - colons - 1, 2)
        take = good[seg]
        year = key[0] * 1000 + key[1] * 100 + key[2] * 10 + key[3]
        month = key[4] * 10 + key[5]
        index = np.where((month >= 1) & (month <= 12), year * 12 + month - 1, -1)[take]
        return rows[good], rows[seg[take]], index, values[take], known[take], bad[take]

    def _other_series(self, texts: list[Any], rows: np.ndarray) -> tuple[np.ndarray, ...]:
        dicts: list[dict[str, Any]] = []
        for text in texts:
            try:
                dicts.append(self.series_decoder.decode(text))
            except (msgspec.DecodeError, msgspec.ValidationError):
                dicts.append({"": b""})  # not an object of months: the key is refused below
        owner = np.repeat(rows, np.fromiter(map(len, dicts), dtype=np.int64, count=len(dicts)))
        months = self.months
        if len(months) >= self.MONTH_CACHE:  # a cache, not a record of every key ever seen
            months.clear()
        for key in {k for d in dicts for k in d if k not in months}:
            # Only the plain form YYYY-MM (ASCII digits, nothing after). The reference reader also takes
            # "2019-03\n" or full-width digits as month keys, but then finds no month 2019-03 under them:
            # such a household is its to answer.
            good = _PLAIN_MONTH.fullmatch(key) is not None and 1 <= int(key[5:7]) <= 12
            months[key] = int(key[:4]) * 12 + int(key[5:7]) - 1 if good else -1
        index = np.array([months[k] for d in dicts for k in d], dtype=np.int64)
        values, known, bad = parse_units([v for d in dicts for v in d.values()], 2)
        return owner, index, values, known, bad

    def _date(self, text: str) -> int | None:
        if text not in self.dates:
            day: int | None = None
            if DATE_TEXT.match(text) and text[-1:].isdigit():
                try:
                    day = date.fromisoformat(text).toordinal()
                except ValueError:
                    day = None
            if len(self.dates) < 100_000:
                self.dates[text] = day
            return day
        return self.dates[text]

    def _dates(self, raw: Sequence[Any], ok: np.ndarray) -> np.ndarray:
        """Ordinals of the dates given (0 where none is); a text that is not a date declines its household."""
        out = np.zeros(len(raw), dtype=np.int64)
        for i, r in enumerate(raw):
            if type(r) is str:
                day = self._date(r)
                if day is None:
                    ok[i] = False
                else:
                    out[i] = day
        return out


def _widest(fields: list[tuple[Any, ...]]) -> int:
    """The most fields of one object (the household, a record, a list item) in a native reader spec."""
    return max([len(fields), *(_widest(f[7]) for f in fields if f[7] is not None)])


def without_native() -> str | None:
    """Why batches are read without the native reader, in words, where it was not built; None otherwise
    (also when it is turned off on purpose with POLICYDSL_NATIVE=0)."""
    if _fastread is not None or os.environ.get("POLICYDSL_NATIVE") == "0":
        return None
    return ("this installation has no native batch reader (it is built at install when a C compiler works "
            "and POLICYDSL_NO_NATIVE is not set; 'pip install -v .' shows why it was not): households are "
            "read by the msgspec reader instead, with the same results, two to three times slower")


def _low(minimum: Any, scale: int) -> int | None:
    """A declared minimum (>= 0) in the integer units a column is kept in (rounded up: exact for integers)."""
    return None if minimum is None else -((-minimum * scale).__floor__())


def parse_units(texts: list[Any], decimals: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """JSON value texts (bytes, or msgspec Raw) → (integers of 10^-decimals, known, bad), all at once.

    known: a plain number with at most ``decimals`` places and at most ``_LONGEST`` characters. bad:
    anything else but ``b""`` (absent) and ``null`` (missing) — an exponent, more places, a quoted text,
    true, an object… which the reference reader then judges. msgspec has already checked that each text
    is one JSON value, so a text made only of digits, one point and a leading minus is a number literal.
    The texts are joined with NUL bytes, which JSON text never holds, and cut apart again by numpy."""
    if not texts:
        none = np.zeros(0, dtype=np.int64)
        return none, none.astype(bool), none.astype(bool)
    data = np.frombuffer(b"\0".join(texts) + b"\0", dtype=np.uint8)
    ends = np.flatnonzero(data == 0)
    starts = np.zeros_like(ends)
    starts[1:] = ends[:-1] + 1
    return _parse_segments(data, starts, ends - starts, decimals)


def _parse_segments(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                    decimals: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``parse_units`` of the pieces ``data[start:start + length]`` of one buffer."""
    width = min(int(lengths.max(initial=1)) or 1, _LONGEST + 1)  # longer texts are cut here, refused below
    pos = np.arange(width)
    inside = pos < lengths[:, None]
    chars = np.where(inside, data[np.minimum(starts[:, None] + pos, len(data) - 1)], 0).astype(np.uint8)
    absent = (lengths == 0) | ((lengths == 4) & (chars[:, :4] == _NULL).all(axis=1) if width >= 4 else False)
    minus = chars[:, 0] == 45
    chars[:, 0] = np.where(minus, 48, chars[:, 0])  # a leading minus reads as a 0 digit, the sign is kept apart
    at_point = chars == 46
    points = at_point.sum(axis=1)
    point = np.where(points == 1, at_point.argmax(axis=1), np.minimum(lengths, width))
    whole = point - minus  # digits before the point: at most 15, as the reference reader allows (LARGEST)
    known = _PLAIN[chars].all(axis=1) & (points <= 1) & (lengths > 0) & (lengths <= _LONGEST) \
        & (lengths - point - 1 <= decimals) & (whole <= _WHOLE_DIGITS) & (whole + decimals <= 18)
    units = (_DIGIT[chars] * _weights(width, decimals)[point]).sum(axis=1)
    units = np.where(known, np.where(minus, -units, units), 0)
    return units, known, ~known & ~absent


@cache
def _weights(width: int, decimals: int) -> np.ndarray:
    """[point, position] → the power of ten of a digit at that position when the point is at ``point``
    (``point`` = the length when there is none), in units of 10^-decimals; 0 for the point itself."""
    table = np.zeros((width + 1, width), dtype=np.int64)
    for point in range(width + 1):
        for pos in range(width):
            exponent = point - pos - 1 + decimals + (pos > point)
            if pos != point and 0 <= exponent <= 18:
                table[point, pos] = 10**exponent
    return table


def _flat_series(owner: np.ndarray, index: np.ndarray, values: np.ndarray, known: np.ndarray) -> Leaf:
    key = (owner << 20) | index
    order = np.argsort(key, kind="stable")
    return Leaf("series", (key[order], values[order]), known, 100)


def _id(raw: Any) -> Any:
    """The household's id as ``batch.household_id`` keeps it: a text or a whole number; ``_ODD_ID`` for
    anything else but null (the reference warns about it)."""
    if raw is UNSET:
        return None
    text = bytes(raw)
    if text[:1] == b'"':
        return msgspec.json.decode(text)
    if _ID_INT.fullmatch(text):
        return int(text)
    return None if text == b"null" else _ODD_ID


_COLUMN_KIND = {"money": "num", "number": "num", "count": "num", "boolean": "bool", "date": "date", "set": "set",
                "list": "list"}


def _merge(a: Columns, b: Columns) -> Columns:
    """The households of both, in the order of their rows."""
    if not len(b):
        return a
    if not len(a):
        return b
    size = len(a) + len(b)
    order = np.argsort(np.array(a.rows + b.rows, dtype=np.int64), kind="stable")
    place = np.empty(size, dtype=np.int64)
    place[order] = np.arange(size)
    leaves = {}
    for path, la in a.leaves.items():
        lb = b.leaves[path]
        known = np.concatenate((la.known, lb.known))[order]
        if la.kind == "series":
            key = np.concatenate((la.values[0], lb.values[0] + (len(a) << 20)))
            values = np.concatenate((la.values[1], lb.values[1]))
            leaves[path] = _flat_series(place[key >> 20], key & ((1 << 20) - 1), values, known)
        else:
            leaves[path] = Leaf(la.kind, np.concatenate((la.values, lb.values))[order], known, la.den)
    ids, warnings = a.ids + b.ids, a.warnings + b.warnings
    return Columns(sorted(a.rows + b.rows), leaves, np.concatenate((a.as_of, b.as_of))[order],
                   [ids[i] for i in order], [warnings[i] for i in order])


def _take(leaf: Leaf, keep: np.ndarray, size: int) -> Leaf:
    if leaf.kind == "series":
        key, values = leaf.values
        renumber = np.full(size, -1, dtype=np.int64)
        renumber[keep] = np.arange(len(keep))
        owner = renumber[key >> 20]
        kept = owner >= 0
        return _flat_series(owner[kept], key[kept] & ((1 << 20) - 1), values[kept], leaf.known[keep])
    return Leaf(leaf.kind, leaf.values[keep], leaf.known[keep], leaf.den)


__all__ = ["SCALE", "ColumnReader", "Columns", "Leaf", "Unsupported", "parse_units", "without_native"]
