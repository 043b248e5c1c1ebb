"""Reading a household: JSON text → validated runtime values, driven only by the policy's input declarations.

Every problem names its JSON path (``members``, ``hardship_causes[0]``, ``income_history.2019-13``); all
problems of a document are reported together and no partial household is ever returned.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from . import nodes as n
from .checker import CheckedPolicy
from .diagnostics import HouseholdError, InputProblem, PolicyDslError, excerpt
from .nodes import Span
from .values import Exact, RecordValue, Series

MONTH_KEY = re.compile(r"^(\d{4})-(\d{2})$")
MONEY_TEXT = re.compile(r"^-?\d+(\.\d+)?$")
DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class JsonSyntaxError(HouseholdError):
    """The household file is not JSON: located as file:line:col with the line and a caret."""

    def __init__(self, source: str, text: str, line: int, column: int, message: str) -> None:
        span = Span(source, line, column, line, column + 1, 0, 0)
        shown = "\n".join(excerpt(text, span))
        self.problems = [InputProblem("", f"not valid JSON at line {line}, column {column}: {message}")]
        self.source = source
        PolicyDslError.__init__(self, f"{span}: not valid JSON: {message}" + (f"\n{shown}" if shown else ""))


class JsonObject(dict):  # type: ignore[type-arg]
    """A JSON object that remembers keys given twice (json keeps only the last one, silently)."""

    duplicates: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = JsonObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated: list[str] = []
        for key, _ in pairs:
            if key in seen:
                repeated.append(key)
            seen.add(key)
        obj.duplicates = tuple(repeated)
    return obj


class NonFinite:
    """Stands for NaN/Infinity found by the JSON reader, so the validator can name its path."""

    reason = "not a number"

    def __init__(self, text: str) -> None:
        self.text = text


MAX_WHOLE_DIGITS = 15  # 10^15 元 is beyond any household; longer numbers are typing errors (or attacks)
MAX_DECIMALS = 12
MAX_ID_DIGITS = 40  # a household's id may be a whole number this long (an ID-card number has 18 digits)
LARGEST = 10**MAX_WHOLE_DIGITS


class BadNumber(NonFinite):
    """A number too large or too finely divided to be a household's amount; named by the validator."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(text if len(text) <= 24 else text[:20] + "…")
        self.reason = reason
        self.literal = text  # as written, whole (a long number can still be an identifier)


def read_int(text: str) -> int | BadNumber:
    """A JSON/YAML integer, refusing absurd lengths before Python converts them."""
    digits = len(text.lstrip("+-"))
    if digits > MAX_WHOLE_DIGITS:
        return BadNumber(text, f"too large ({digits} digits; at most {MAX_WHOLE_DIGITS})")
    return int(text)


def read_decimal(text: str) -> Decimal | NonFinite:
    """A JSON/YAML decimal, exact; refusing huge exponents, which would take forever to make exact."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        return BadNumber(text, "not a number")
    if not value.is_finite():
        return BadNumber(text, "not a number")
    if value != 0 and value.adjusted() >= MAX_WHOLE_DIGITS:
        return BadNumber(text, f"too large (at most {MAX_WHOLE_DIGITS} digits before the decimal point)")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS and value != value.to_integral_value():
        return BadNumber(text, f"too finely divided (at most {MAX_DECIMALS} decimal places)")
    return value


@dataclass
class Household:
    """Validated inputs by name; an absent fact is simply not there (it reads as Unknown)."""

    values: dict[str, Any]
    as_of: date | None
    warnings: list[str] = field(default_factory=list)


def load_json(text: str, source: str = "household") -> Any:
    """Parse JSON text keeping numbers exact (no float ever) and NaN/Infinity visible to the validator."""
    try:
        doc = json.loads(text.removeprefix("\ufeff"), parse_float=read_decimal, parse_int=read_int,
                         parse_constant=NonFinite, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(source, text, exc.lineno, exc.colno, exc.msg) from None
    except RecursionError:
        raise HouseholdError([InputProblem("", "not valid JSON: nested too deeply")], source) from None
    if _SURROGATE_ESCAPE.search(text):  # "\ud800" alone is half a character: no text can hold it
        path = _half_character(doc, "")
        if path is not None:
            raise HouseholdError([InputProblem(path, "is not valid text: it holds half of a character (a "
                                                     "\\uD800-\\uDFFF escape without its other half)")], source)
    return doc


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _half_character(value: Any, path: str) -> str | None:
    """The JSON path of the first text (or key) holding a lone surrogate, if any."""
    if isinstance(value, str):
        return path if any("\ud800" <= c <= "\udfff" for c in value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = _join(path, str(key).encode("utf-8", "backslashreplace").decode("utf-8"))  # printable
            if any("\ud800" <= c <= "\udfff" for c in str(key)):
                return here
            found = _half_character(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _half_character(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f'the text "{value}"' if len(value) < 40 else "a text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, NonFinite):
        return value.text
    if isinstance(value, date):
        return f"the date {value}"
    return type(value).__name__


def _close(key: str, names: list[str]) -> str | None:
    """The declared name a mistyped key most likely meant (a near spelling, or a name it begins)."""
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return close[0]
    starts = [name for name in names if name.startswith(key) or key.startswith(name)]
    return starts[0] if len(starts) == 1 else None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Validator:
    """Converts one household document according to the checked policy's declarations."""

    def __init__(self, policy: CheckedPolicy) -> None:
        self.policy = policy
        self.inputs = {i.name: i for i in policy.policy.inputs}
        self.problems: list[InputProblem] = []
        self.warnings: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(InputProblem(path, message, self.label(path)))

    def label(self, path: str) -> str | None:
        """The declared label of the fact at a JSON path (students[0].stage → 学段), for messages."""
        parts = [p.split("[", 1)[0] for p in path.split(".")] if path else []
        if not parts or parts[0] not in self.inputs:
            return None
        decl: Any = self.inputs[parts[0]]
        for part in parts[1:]:
            te = decl.type
            record = self.policy.records.get(te.of or "") if te.kind in ("named", "list") else None
            field = next((f for f in record.fields if f.name == part), None) if record else None
            if field is None:
                return decl.label  # a month of a series, or an unknown key: the container's label
            decl = field
        return decl.label

    def no_duplicates(self, obj: dict[str, Any], path: str) -> None:
        for key in getattr(obj, "duplicates", ()):
            self.fail(_join(path, key), "given twice in the same object; keep only one")

    def household(self, doc: Any, source: str) -> Household:
        if not isinstance(doc, dict):
            raise HouseholdError([InputProblem("", f"a household must be a JSON object, not {_kind(doc)}")], source)
        values: dict[str, Any] = {}
        as_of: date | None = None
        self.no_duplicates(doc, "")
        for key, raw in doc.items():
            if not isinstance(key, str):
                key = str(key)
            if key == "as_of":
                as_of = self.date(raw, key) if raw is not None else None
                continue
            if key == "id" and "id" not in self.inputs:
                continue  # the household's identifier (carried into batch rows), not a fact of the policy
            decl = self.inputs.get(key)
            if decl is None:
                close = _close(key, list(self.inputs))
                self.warnings.append(f"{key}: not an input of this policy, ignored"
                                     + (f" (did you mean '{close}'?)" if close else ""))
                continue
            if raw is None:
                continue  # null is the same as absent: a missing fact
            value = self.value(raw, decl.type, key)
            if value is not None:
                values[key] = value
        for name, decl in self.inputs.items():
            if name not in values:
                empty = self.empty(decl.type, name)
                if empty is not None:
                    values[name] = empty
        if self.problems:
            raise HouseholdError(self.problems, source)
        return Household(values, as_of, self.warnings)

    def empty(self, te: n.TypeExpr, path: str) -> Any:
        """What an absent container reads as: its own facts are then missing one by one."""
        if te.kind == "monthly":
            return Series(path, {})
        if te.kind == "named" and te.of in self.policy.records:
            fields = self.policy.records[te.of].fields
            inner = {f.name: self.empty(f.type, _join(path, f.name)) for f in fields}
            return RecordValue(path, {k: v for k, v in inner.items() if v is not None})
        return None

    def value(self, raw: Any, te: n.TypeExpr, path: str) -> Any:
        kind = te.kind
        if kind in ("money", "count", "number"):
            return self.number(raw, te, path)
        if kind == "boolean":
            if not isinstance(raw, bool):
                self.fail(path, f"expected true or false, got {_kind(raw)}")
                return None
            return raw
        if kind == "text":
            if not isinstance(raw, str):
                self.fail(path, f"expected a text, got {_kind(raw)}")
                return None
            if raw != raw.strip():
                self.warnings.append(f'{path}: "{raw}" begins or ends with spaces, which count when it is compared')
            return raw
        if kind == "date":
            return self.date(raw, path)
        if kind == "monthly":
            if not isinstance(raw, dict):
                self.fail(path, f'expected an object of monthly amounts such as {{"2019-03": 1500}}, got {_kind(raw)}')
                return None
            data: dict[str, Exact] = {}
            self.no_duplicates(raw, path)
            for key, amount in raw.items():
                key = str(key)
                m = MONTH_KEY.match(key)
                if not m or not 1 <= int(m.group(2)) <= 12:
                    self.fail(_join(path, key), f'"{key}" is not a month; write months as YYYY-MM, e.g. "2019-03"')
                    continue
                if amount is None:
                    continue
                v = self.number(amount, n.TypeExpr(te.span, "money", "month", None, te.minimum), _join(path, key))
                if v is not None:
                    data[key] = v
            return Series(path, data)
        if kind == "set":
            if not isinstance(raw, list):
                self.fail(path, f"expected a list of {te.of} values, got {_kind(raw)}")
                return None
            members: set[str] = set()
            for i, item in enumerate(raw):
                member = self.enum(item, te.of or "", f"{path}[{i}]")
                if member is not None:
                    members.add(member)
            return frozenset(members)
        if kind == "list":
            if not isinstance(raw, list):
                self.fail(path, f"expected a list of {te.of}, got {_kind(raw)}")
                return None
            items = [self.record(item, te.of or "", f"{path}[{i}]") for i, item in enumerate(raw)]
            return tuple(items)
        if kind == "named":
            if te.of in self.policy.enums:
                return self.enum(raw, te.of, path)
            return self.record(raw, te.of or "", path)
        raise AssertionError(kind)

    def number(self, raw: Any, te: n.TypeExpr, path: str) -> Exact | None:
        if type(raw) is int and -LARGEST < raw < LARGEST:  # the common case, kept fast
            if te.minimum is not None and raw < te.minimum:
                self.fail(path, f"must be at least {te.minimum}, got {raw}")
                return None
            return raw
        what = {"money": "an amount in 元", "count": "a whole number", "number": "a number"}[te.kind]
        if isinstance(raw, NonFinite):  # NaN, Infinity, or a number refused by the reader
            self.fail(path, f"{raw.text} is {raw.reason}; expected {what}")
            return None
        if type(raw) is int:  # beyond LARGEST: given by YAML or by a library caller
            self.fail(path, f"the number is too large (at most {MAX_WHOLE_DIGITS} digits); expected {what}")
            return None
        if isinstance(raw, float):
            raw = repr(raw)  # the shortest text that reads back as this float: what the writer meant
        elif isinstance(raw, str) and not (te.kind == "money" and MONEY_TEXT.match(raw.strip())):
            self.fail(path, f"expected {what}, got {_kind(raw)}")
            return None
        if not isinstance(raw, (str, Decimal)):
            self.fail(path, f"expected {what}, got {_kind(raw)}")
            return None
        checked = read_decimal(raw.strip()) if isinstance(raw, str) else read_decimal(str(raw))
        if isinstance(checked, NonFinite):
            self.fail(path, f"{checked.text} is {checked.reason}; expected {what}")
            return None
        value = Fraction(checked)
        if value.denominator == 1:
            whole = value.numerator
            if te.minimum is not None and whole < te.minimum:
                self.fail(path, f"must be at least {te.minimum}, got {raw}")
                return None
            return whole
        if te.kind == "count":
            self.fail(path, f"expected a whole number, got {raw}: a count cannot have a fraction")
            return None
        if te.minimum is not None and value < te.minimum:
            self.fail(path, f"must be at least {te.minimum}, got {raw}")
            return None
        return value

    def date(self, raw: Any, path: str) -> date | None:
        if isinstance(raw, date):
            return raw
        if isinstance(raw, str) and DATE_TEXT.match(raw):
            try:
                return date.fromisoformat(raw)
            except ValueError:
                self.fail(path, f'"{raw}" is not a real date')
                return None
        self.fail(path, f"expected a date written YYYY-MM-DD, got {_kind(raw)}")
        return None

    def enum(self, raw: Any, enum_name: str, path: str) -> str | None:
        enum = self.policy.enums[enum_name]
        names = [m.name for m in enum.members]
        if isinstance(raw, str) and raw in names:
            return raw
        listing = ", ".join(f"{m.name} ({m.label})" for m in enum.members)
        if isinstance(raw, str):
            by_label = next((m.name for m in enum.members if m.label == raw), None)
            close = difflib.get_close_matches(raw, names, n=1, cutoff=0.7)
            hint = f" — did you mean '{by_label or close[0]}'?" if by_label or close else ""
            self.fail(path, f'unknown {enum_name} "{raw}"{hint}; expected one of: {listing}')
        else:
            self.fail(path, f"expected one {enum_name} value as a text, got {_kind(raw)}; one of: {listing}")
        return None

    def record(self, raw: Any, record_name: str, path: str) -> RecordValue | None:
        rec = self.policy.records[record_name]
        if not isinstance(raw, dict):
            self.fail(path, f"expected an object ({rec.label or rec.name}), got {_kind(raw)}")
            return None
        fields = {f.name: f for f in rec.fields}
        data: dict[str, Any] = {}
        self.no_duplicates(raw, path)
        for key, item in raw.items():
            key = str(key)
            f = fields.get(key)
            if f is None:
                close = _close(key, list(fields))
                self.warnings.append(f"{_join(path, key)}: not a field of {rec.label or rec.name}, ignored"
                                     + (f" (did you mean '{close}'?)" if close else ""))
                continue
            if item is None:
                continue
            v = self.value(item, f.type, _join(path, key))
            if v is not None:
                data[key] = v
        for name, f in fields.items():
            if name not in data:
                empty = self.empty(f.type, _join(path, name))
                if empty is not None:
                    data[name] = empty
        return RecordValue(path, data)


def read_household(policy: CheckedPolicy, doc: Any, source: str = "household") -> Household:
    """Validate an already-parsed document (dict) against the policy's declarations."""
    return Validator(policy).household(doc, source)

