"""Seeded random households for the anju_2019 policy, written as JSON Lines.

    python benchmarks/generate_households.py 100000 --seed 1 --out /tmp/h.jsonl
    python benchmarks/generate_households.py 10 --seed 7            # to standard output
    python benchmarks/generate_households.py 10000 --broken 20 --out /tmp/bad.jsonl

The households look like what a caseworker's system would send (docs/formats.md, spec anju_2019 §3):
1 to 6 members; monthly incomes spread so that every category and non-eligible households occur (with
seed 1: about 22% category 1, 25% category 2, 29% category 3, 4% category 4, 48% not eligible); about one
household in four has a test within a cent per person of its bound, one in eight exactly on it: monthly
incomes of 560/840/1680 x members (600/900/1800 from 2020), the same month after month or varying with a
mean exactly there, or a 12-month test at 6720 (7200) x members, with cents in every term; causes drawn
from the enum; 12 months of income history (the 2019 rules read the last 6, the 2020 amendment all 12);
about 4% with a missing fact (an absent key); 30% filed, most with an assisted income history; 5% outside
安居区 or not urban workers; ``as_of`` from 2019-09-01 to 2020-12-31.

Every amount is built from whole cents (Python ints) and written by ``dumps`` as a JSON number with at
most two decimals (``2520.03``, ``1500``): no binary floating point is ever involved, so the file means
exactly what it says. The same seed gives the same file, byte for byte.

Households are written one at a time: memory stays flat for 10^6 lines and more. ``--broken K`` puts K
invalid lines at random places (bad JSON, a negative amount, an unknown cause, a fraction of a person, a
month that does not exist); each must be reported as an error row, never stop a batch.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from typing import IO, Any

CAUSES = ["illness", "children_in_school", "disability", "single_parent", "emergency", "accidental_injury",
          "major_illness", "other_special"]
ORDINARY = ["illness", "children_in_school", "disability", "single_parent", "other_special"]
SUDDEN = ["emergency", "accidental_injury", "major_illness", "other_special"]
STAGES = ["preschool", "primary", "junior_secondary", "senior_secondary", "vocational", "undergraduate",
          "postgraduate"]
OTHER_DISTRICTS = ["船山区", "射洪市", "蓬溪县", "大英县", "安居区 "]  # the last one: a stray space
FIRST_DAY = date(2019, 9, 1)
LAST_DAY = date(2020, 12, 31)
MEMBERS_WEIGHTS = [12, 24, 30, 18, 10, 6]  # 1..6 people


class Cents(int):
    """An amount of money in whole cents (fen); written as an exact decimal of 元."""


def amount_text(cents: int) -> str:
    """1500 for 150000 cents, 2520.03 for 252003, 0.07 for 7: an exact decimal, at most two places."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}" if frac == 0 else f"{sign}{whole}.{frac:02d}"


def dumps(value: Any) -> str:
    """Compact JSON with ``Cents`` written as exact decimals (json.dumps would need floats for that)."""
    if isinstance(value, Cents):
        return amount_text(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r}: build amounts as Cents, never as float")


def standard_cents(as_of: date) -> int:
    """dibao_standard in force on as_of (the policy's placeholders): 560 from 2019, 600 from 2020."""
    return 60000 if as_of >= date(2020, 1, 1) else 56000


def window(as_of: date) -> list[str]:
    """The 6 calendar months before the month of as_of, oldest first (spec §4)."""
    out = []
    y, m = as_of.year, as_of.month
    for _ in range(6):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        out.append(f"{y:04d}-{m:02d}")
    return out[::-1]


def months_before(as_of: date, count: int) -> list[str]:
    """``count`` months before the month of as_of, oldest first (for a longer history than the window)."""
    out = []
    y, m = as_of.year, as_of.month
    for _ in range(count):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        out.append(f"{y:04d}-{m:02d}")
    return out[::-1]


class Generator:
    """Draws households from one seeded ``random.Random``; ``household()`` returns one dict."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.days = (LAST_DAY - FIRST_DAY).days

    # ------------------------------------------------------------ helpers

    def cents_between(self, low: int, high: int) -> Cents:
        return Cents(self.rng.randint(low, high))

    def near(self, target: int) -> int:
        """A bound itself, or one cent below or above it."""
        return target + self.rng.choice((-1, 0, 0, 1))

    def split(self, total: int, parts: int, spread: int) -> list[Cents]:
        """``parts`` amounts of whole cents, each near total/parts, adding up to exactly ``total``."""
        base = total // parts
        amounts = [max(0, base + self.rng.randint(-spread, spread)) for _ in range(parts - 1)]
        last = total - sum(amounts)
        if last < 0:  # spread too wide for a small total: fall back to even parts
            amounts = [base] * (parts - 1)
            last = total - base * (parts - 1)
        amounts.append(last)
        self.rng.shuffle(amounts)
        return [Cents(a) for a in amounts]

    # ------------------------------------------------------------ the parts of a household

    def monthly_incomes(self, members: int, std: int) -> tuple[list[Cents], str]:
        """Six monthly household totals and the band they were drawn in."""
        rng = self.rng
        band = rng.choices(["below", "band2", "band3", "above3", "bound"], weights=[27, 20, 20, 20, 13])[0]
        if band == "bound":
            factor = rng.choice((2, 3, 6))  # x std/2: 1x, 1.5x, 3x the standard per person
            per_month = self.near(std * factor // 2 * members)
            if rng.random() < 0.5:  # the same amount every month
                return [Cents(per_month)] * 6, f"bound{factor}"
            # months that differ but whose mean is exactly on (or a cent around) the bound
            return self.split(per_month * 6 + rng.choice((-1, 0, 1)), 6, std * members // 10), f"bound{factor}"
        low, high = {"below": (std * 30 // 100, std - 1), "band2": (std + 1, std * 3 // 2),
                     "band3": (std * 3 // 2 + 1, std * 3), "above3": (std * 3 + 1, std * 8)}[band]
        per_person = rng.randint(low, high)
        months = []
        for _ in range(6):
            noise = rng.randint(-per_person // 12, per_person // 12)
            value = (per_person + noise) * members
            if band == "below":
                value = min(value, std * members - rng.randint(1, 3000))  # stays below in every month
            months.append(Cents(max(0, value)))
        if band == "below" and rng.random() < 0.15:  # one better month breaks "6 months in a row"
            months[rng.randrange(6)] = Cents(std * members + rng.randint(0, 20000))
        return months, band

    def causes(self) -> list[str]:
        rng = self.rng
        kind = rng.choices(["none", "ordinary", "sudden", "both"], weights=[25, 35, 22, 18])[0]
        if kind == "none":
            return []
        if kind == "ordinary":
            chosen = rng.sample(ORDINARY, rng.choice((1, 1, 1, 2)))
        elif kind == "sudden":
            chosen = rng.sample(SUDDEN, rng.choice((1, 1, 2)))
        else:
            chosen = [rng.choice(ORDINARY[:4]), rng.choice(SUDDEN[:3])]
        return [c for c in CAUSES if c in chosen]  # the enum's order, as a form would list them

    def twelve_month_facts(self, members: int, std: int, months: list[Cents], causes: list[str],
                           band: str) -> dict[str, Cents]:
        """disposable income, the two kinds of expenses, assets and savings; sometimes exactly on the
        12-month bound (6720 or 7200 x members) or one cent around it, with cents in every term."""
        rng = self.rng
        yearly = sum(months) * 2  # 12 months at the window's pace
        disposable = max(0, yearly * rng.randint(85, 110) // 100 + rng.randint(-5000, 5000))
        hardship = accident = 0
        assets = 0 if rng.random() < 0.7 else rng.randint(100000, 8000000)
        savings = 0 if rng.random() < 0.2 else int(rng.lognormvariate(10.0, 1.2))  # cents: median ~220 元
        savings = min(savings, 50000000)
        if any(c in ORDINARY for c in causes):
            hardship = disposable * rng.randint(0, 80) // 100 + rng.randint(0, 99)
        if any(c in SUDDEN for c in causes):
            accident = disposable * rng.randint(20, 100) // 100 + rng.randint(0, 99)
            if band == "above3" and rng.random() < 0.5:  # a well-off household hit hard: category 4's case
                net = 12 * std * members * rng.randint(40, 110) // 100
                accident = max(accident, disposable + assets + savings - net)
        annual = 12 * std * members
        tests = ["none"] * 10  # the bound is put only on a test that matters for the causes given
        if any(c in ORDINARY for c in causes):
            tests += ["hardship"] * 2
        if any(c in SUDDEN for c in causes):
            tests += ["accident", "all"]
        test = rng.choice(tests)
        target = self.near(annual)
        if test == "hardship":  # (disposable - hardship) / members on the bound
            disposable = max(disposable, target + rng.randint(0, 300000))
            hardship = disposable - target
        elif test == "accident":  # (disposable - accident) / members on the bound
            disposable = max(disposable, target + rng.randint(0, 300000))
            accident = disposable - target
        elif test == "all":  # (disposable + assets + savings - accident) / members on the bound
            accident = disposable + assets + savings - target
            if accident < 0:
                disposable -= accident
                accident = 0
        return {"disposable_income": Cents(disposable), "hardship_expenses": Cents(hardship),
                "accident_expenses": Cents(accident), "investment_assets": Cents(assets),
                "savings": Cents(savings)}

    def archive(self, members: int, std: int, win: list[str]) -> dict[str, Any]:
        rng = self.rng
        if rng.random() >= 0.3:
            return {"filed": False, "hard_to_lift": False, "receives_dibao": False, "assisted_income_history": {}}
        hard, dibao = rng.random() < 0.35, rng.random() < 0.45
        history: dict[str, Cents] = {}
        if rng.random() < 0.75:
            if rng.random() < 0.3:  # the mean exactly on the standard ("达到" includes it)
                amounts = self.split(self.near(std * members * 6), 6, std * members // 8)
            else:
                per = rng.randint(std * 60 // 100, std * 160 // 100) * members
                amounts = [Cents(max(0, per + rng.randint(-per // 10, per // 10))) for _ in range(6)]
            history = dict(zip(win, amounts, strict=True))
        return {"filed": True, "hard_to_lift": hard, "receives_dibao": dibao, "assisted_income_history": history}

    def household(self) -> dict[str, Any]:
        rng = self.rng
        as_of = FIRST_DAY + timedelta(days=rng.randrange(self.days + 1))
        std = standard_cents(as_of)
        members = rng.choices(range(1, 7), weights=MEMBERS_WEIGHTS)[0]
        win = window(as_of)
        months, band = self.monthly_incomes(members, std)
        # A year of history, as administrative systems send it: the 2019 rules read the last 6 months (the
        # window), the 2020 amendment (6 of the last 12 months below the standard) reads all 12. The older
        # months wander around the first month of the window, so the amendment moves some households.
        older = months_before(as_of, 12)[:6]
        history: dict[str, Cents] = {m: Cents(max(0, months[0] + rng.randint(-5000, 5000) * members)) for m in older}
        history.update(zip(win, months, strict=True))
        causes = self.causes()
        twelve = self.twelve_month_facts(members, std, months, causes, band)
        working = rng.randint(0 if members > 1 else 1, members)
        employed = rng.randint(0, working)
        unemployed = rng.randint(0, working - employed)
        students = [{"stage": rng.choice(STAGES)} for _ in range(rng.choice((0, 0, 0, 1, 1, 2)) if members > 1 else 0)]
        district = "安居区" if rng.random() < 0.95 else rng.choice(OTHER_DISTRICTS)
        doc: dict[str, Any] = {
            "as_of": as_of.isoformat(),
            "district": district,
            "applicant": {"urban_worker": rng.random() < 0.95},
            "members": members,
            "income_history": history,
            "disposable_income": twelve["disposable_income"],
            "hardship_causes": causes,
            "hardship_expenses": twelve["hardship_expenses"],
            "accident_expenses": twelve["accident_expenses"],
            "investment_assets": twelve["investment_assets"],
            "savings": twelve["savings"],
            "working_age_members": working,
            "employed_members": employed,
            "unemployed_able_members": unemployed,
            "wants_to_start_business": rng.random() < 0.1,
            "students": students,
            "has_basic_medical_insurance": rng.random() < 0.9,
            "employer_insurance_arrears": rng.random() < 0.08,
            "housing": {"difficulty": rng.random() < 0.2, "public_rental": rng.random() < 0.1},
            "laid_off_overcapacity": rng.random() < 0.05,
            "archive": self.archive(members, std, win),
        }
        if rng.random() < 0.04:
            self.drop_facts(doc, win)
        return doc

    def drop_facts(self, doc: dict[str, Any], win: list[str]) -> None:
        """Make one or two facts missing by removing their keys (a missing fact, not an error)."""
        rng = self.rng
        for _ in range(rng.choice((1, 1, 2))):
            what = rng.choice(["month", "month", "income_history", "members", "hardship_causes", "disposable_income",
                               "hardship_expenses", "accident_expenses", "savings", "investment_assets", "housing",
                               "students", "applicant", "archive.hard_to_lift", "archive.assisted_income_history"])
            if what == "month":
                if isinstance(doc.get("income_history"), dict):
                    doc["income_history"].pop(rng.choice(win), None)
            elif what.startswith("archive."):
                doc["archive"].pop(what.split(".", 1)[1], None)
            else:
                doc.pop(what, None)

    # ------------------------------------------------------------ broken lines

    def broken_line(self) -> str:
        """One invalid line: a household with one thing wrong, or text that is not JSON at all."""
        rng = self.rng
        kind = rng.choice(["bad_json", "negative", "unknown_cause", "fraction", "bad_month"])
        doc = self.household()
        if kind == "bad_json":
            text = dumps(doc)
            return text[: rng.randint(1, len(text) - 1)]  # truncated: not valid JSON
        if kind == "negative":
            doc[rng.choice(["savings", "disposable_income", "hardship_expenses"])] = Cents(-rng.randint(1, 100000))
        elif kind == "unknown_cause":
            doc["hardship_causes"] = [*doc.get("hardship_causes", []), rng.choice(["sick", "患病", "flood"])]
        elif kind == "fraction":
            doc["members"] = "2.5"  # replaced by a raw number below
            return dumps(doc).replace('"members":"2.5"', '"members":2.5')
        else:
            doc["income_history"] = {**doc.get("income_history", {}), "2019-13": Cents(150000)}
        return dumps(doc)


def lines(count: int, seed: int, broken: int = 0) -> Iterator[str]:
    """``count`` JSON Lines (without newline): households, with ``broken`` invalid ones among them."""
    gen = Generator(seed)
    bad = set(random.Random(seed ^ 0x5EED).sample(range(count), min(broken, count))) if broken else set()
    for i in range(count):
        yield gen.broken_line() if i in bad else dumps(gen.household())


def write(count: int, seed: int, out: IO[str], broken: int = 0) -> None:
    for line in lines(count, seed, broken):
        out.write(line)
        out.write("\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="how many lines to write")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1): same seed, same file")
    parser.add_argument("--out", help="file to write (default: standard output)")
    parser.add_argument("--broken", type=int, default=0, metavar="K", help="put K invalid lines among them")
    args = parser.parse_args(argv)
    if args.count < 0 or args.broken < 0 or args.broken > args.count:
        parser.error("count must be >= 0 and 0 <= --broken <= count")
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
            write(args.count, args.seed, out, args.broken)
    else:
        sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[attr-defined]
        write(args.count, args.seed, sys.stdout, args.broken)


if __name__ == "__main__":
    main()
