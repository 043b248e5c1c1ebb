"""Runtime values: exact numbers, the *unknown* value of a missing fact, series and records.

A number is an ``int`` when it is whole and a ``Fraction`` otherwise: both are exact, and whole numbers
(most amounts and every count) are much faster as ints. A float never appears.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any


@dataclass(frozen=True, slots=True)
class Unknown:
    """A value that depends on facts the household did not give; ``paths`` names them (JSON paths)."""

    paths: frozenset[str]

    def __bool__(self) -> bool:  # guard against using it as a truth value by mistake
        raise TypeError("Unknown has no truth value; use the three-valued helpers")


@dataclass(frozen=True, slots=True)
class Series:
    """A monthly series from the household (``YYYY-MM`` → amount); ``path`` is its JSON path."""

    path: str
    data: dict[str, Exact]

    def at(self, month: str) -> Exact | Unknown:
        value = self.data.get(month)
        return Unknown(frozenset((f"{self.path}.{month}",))) if value is None else value


@dataclass(frozen=True, slots=True)
class RecordValue:
    """An object of the household; an absent field reads as Unknown with the field's JSON path."""

    path: str
    data: dict[str, Any]

    def get(self, name: str) -> Any:
        value = self.data.get(name)
        if value is None:
            return Unknown(frozenset((f"{self.path}.{name}" if self.path else name,)))
        return value


Exact = int | Fraction


def exact(value: Fraction) -> Exact:
    """The fast exact form of a number: an int when it is whole."""
    return value.numerator if value.denominator == 1 else value


def divide_exact(a: Exact, b: Exact) -> Exact:
    """Exact division: int / int would give a float, so it becomes a Fraction."""
    if type(a) is int and type(b) is int:
        return Fraction(a, b)
    return Fraction(a) / b


def merge(*values: Any) -> Unknown:
    """The Unknown standing for every Unknown among ``values``."""
    paths: frozenset[str] = frozenset()
    for v in values:
        if isinstance(v, Unknown):
            paths |= v.paths
    return Unknown(paths)


def format_amount(value: Exact, places: int = 2) -> str:
    """An exact amount as a fixed-point string, e.g. Fraction(2520, 3) → '840.00' (half up)."""
    scale = 10**places
    num, den = value.numerator, value.denominator
    units = (2 * abs(num) * scale + den) // (2 * den)
    sign = "-" if num < 0 and units else ""
    if places == 0:
        return f"{sign}{units}"
    return f"{sign}{units // scale}.{units % scale:0{places}d}"


def exact_text(value: Exact, max_places: int = 12, min_places: int = 0) -> str:
    """A number written exactly when it has a finite decimal form of at most ``max_places`` places
    (499.999; at least ``min_places``, so 840.00), else to 6 places and '…' (840.003333…)."""
    value = Fraction(value)
    for places in range(min_places, max_places + 1):
        scaled = value * 10**places
        if scaled.denominator == 1:
            return format_amount(value, places)
    return format_amount(value, 6) + "…"


def to_plain(value: Any) -> Any:
    """A runtime value as JSON-ready data (amounts as 2-decimal strings; exact ones as fractions too)."""
    if isinstance(value, Unknown):
        return {"unknown": sorted(value.paths)}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Fraction)):
        if value.denominator == 1:
            return str(value.numerator)
        return format_amount(value)
    if isinstance(value, Series):
        return {k: to_plain(v) for k, v in sorted(value.data.items())}
    if isinstance(value, RecordValue):
        return {k: to_plain(v) for k, v in value.data.items()}
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    return str(value)
