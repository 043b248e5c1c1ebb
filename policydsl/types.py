"""The types of the policy language, and how each is named in messages to a policy officer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Type:
    """A value's type.

    kind: money, count, number, boolean, date, text, enum, set, list, record, series, window, month, error.
    period: for money and series, "month", "year", "N months" (a total over a window of N months) or None
        (an amount held on a day, such as savings).
    of: the enum of an enum or set, the record of a record or list.
    literal: a number written in the policy (it takes the unit of what it is compared with).
    """

    kind: str
    period: str | None = None
    of: str | None = None
    literal: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind in ("money", "count", "number")

    @property
    def dimensionless(self) -> bool:
        return self.kind in ("count", "number")

    def describe(self) -> str:
        """The type in words, e.g. 'a monthly amount (元 per month)'."""
        if self.kind == "money":
            if self.period and self.period.endswith(" months"):
                months = self.period.split()[0]
                return f"a {months}-month total (元 over {months} months)"
            return {"month": "a monthly amount (元 per month)", "year": "a 12-month amount (元 per year)",
                    None: "an amount of money (元)"}[self.period]
        if self.kind == "number" and self.literal:
            return "a number"
        return {
            "count": "a count", "number": "a number", "boolean": "a yes/no fact", "date": "a date",
            "text": "a text", "enum": f"one {self.of} value", "set": f"a set of {self.of} values",
            "list": f"a list of {self.of}", "record": f"{_article(self.of)} {self.of} record",
            "series": "a monthly series of amounts",
            "window": f"a window of {self.of} months" if self.of else "a window of months",
            "month": "a month", "error": "an invalid value",
        }[self.kind]


def _article(word: str | None) -> str:
    return "an" if word and word[0].lower() in "aeiou" else "a"


MONEY_MONTH = Type("money", "month")
MONEY_YEAR = Type("money", "year")
MONEY = Type("money")
COUNT = Type("count")
NUMBER = Type("number")
LITERAL = Type("number", literal=True)
BOOLEAN = Type("boolean")
DATE = Type("date")
TEXT = Type("text")
WINDOW = Type("window")
MONTH = Type("month")
ERROR = Type("error")
