"""The anju_2019 categories and eligibility written for OpenFisca-core: a peer to compare policydsl with.

    pip install -e '.[bench]'
    python benchmarks/openfisca_anju.py households.jsonl --out rows.jsonl   # categories per household
    python benchmarks/openfisca_anju.py --check                     # the spec's worked examples (§10)

Only what spec anju_2019 §4-§5 defines is encoded: the precondition, the window, the per-person income,
the 12-month tests, the causes, category_1..4 and ``eligible`` (not the measures nor the statuses).

The model, as an OpenFisca country package would write it:

- entities: ``person`` (one per household here: the applicant, who carries ``urban_worker``) and the group
  entity ``household`` with the role ``applicant``, carrying ``members`` (家庭总人口) as an input count;
- ``income`` is a MONTH variable (the household's total income in that calendar month): the six months
  of the window are six periods of the same variable, set by ``set_input``;
- the 12-month amounts (``disposable_income`` and the expenses) and the holdings (assets, savings) are
  inputs given for the assessment month;
- the causes are one boolean variable each (an OpenFisca Enum holds one value per entity, not a set);
- ``dibao_standard`` is a parameter with dated values (2019-01-01: 560, 2020-01-01: 600), read at the
  assessment month.

A simulation has one period, and the window and the standard depend on each household's ``as_of``: a
chunk of households is therefore split by the month of ``as_of``, one vectorised simulation per month.

OpenFisca's ``float`` is numpy float32 (about 7 significant digits): amounts such as 2520.03 are not
exact, and a household exactly on a bound, or one cent from it, can land on the wrong side. That is
what the comparison with policydsl (exact decimals) counts; ``build_system(dtype="float64")`` swaps in
double precision to show how much of it is the 32 bits and how much is binary floating point itself.

Facts that are absent from a household get the variable's default (0, False): OpenFisca has no missing
facts. ``Batch.missing`` marks those households, so a comparison can leave them out where policydsl
answers "undetermined". The loader also refuses what policydsl's validator refuses in the generator's
broken lines (not JSON, a negative amount, an unknown cause, a count that is not a whole number >= 1,
a month key that is not YYYY-MM); those households get no result (``None``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from openfisca_core.entities import build_entity
from openfisca_core.parameters import ParameterNode
from openfisca_core.periods import DateUnit, period
from openfisca_core.simulations import SimulationBuilder
from openfisca_core.taxbenefitsystems import TaxBenefitSystem
from openfisca_core.variables import Variable

MONTH = DateUnit.MONTH
ANJU = "安居区"
CAUSES = ["illness", "children_in_school", "disability", "single_parent", "emergency", "accidental_injury",
          "major_illness", "other_special"]
ORDINARY = ["illness", "children_in_school", "disability", "single_parent", "other_special"]
SUDDEN = ["emergency", "accidental_injury", "major_illness", "other_special"]
AMOUNTS = ["disposable_income", "hardship_expenses", "accident_expenses", "investment_assets", "savings"]
CATEGORIES = ["category_1", "category_2", "category_3", "category_4"]
MONTH_KEY = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

# ---------------------------------------------------------------- entities

Person = build_entity(key="person", plural="persons", label="a person", is_person=True)
Household = build_entity(
    key="household", plural="households", label="a household (家庭)",
    roles=[{"key": "applicant", "plural": "applicants", "label": "申请人", "max": 1},
           {"key": "member", "plural": "members_role", "label": "other members"}],
)

# ---------------------------------------------------------------- inputs


class urban_worker(Variable):
    value_type = bool
    entity = Person
    definition_period = MONTH
    label = "申请人是城镇职工"


class district(Variable):
    value_type = str
    entity = Household
    definition_period = MONTH
    label = "所在区县"


class members(Variable):
    value_type = int
    entity = Household
    definition_period = DateUnit.ETERNITY  # the size on as_of divides every month of the window (spec §4)
    default_value = 1
    label = "家庭总人口"


class income(Variable):
    value_type = float
    entity = Household
    definition_period = MONTH
    label = "家庭月收入 (the household's total income in this calendar month)"


def _amount(name: str, label: str) -> type[Variable]:
    return type(name, (Variable,), {"value_type": float, "entity": Household, "definition_period": MONTH,
                                    "label": label})


AMOUNT_VARIABLES = [
    _amount("disposable_income", "家庭可支配收入(前12个月)"),
    _amount("hardship_expenses", "因患病、子女上学、残疾及其他特殊原因造成的支出(前12个月)"),
    _amount("accident_expenses", "意外致困造成的支出(前12个月)"),
    _amount("investment_assets", "投资性财产"),
    _amount("savings", "储蓄"),
]
CAUSE_VARIABLES = [type(f"cause_{c}", (Variable,), {"value_type": bool, "entity": Household,
                                                    "definition_period": MONTH, "label": f"致困原因: {c}"})
                   for c in CAUSES]

# ---------------------------------------------------------------- formulas


def _window(p):  # the six months before the assessment month, oldest first
    return [p.offset(-k, MONTH) for k in range(6, 0, -1)]


class per_capita_income_month(Variable):
    value_type = float
    entity = Household
    definition_period = MONTH
    label = "P(m): 当月家庭人均收入"

    def formula(household, period, parameters):
        return household("income", period) / household("members", period)


class per_capita_income(Variable):
    value_type = float
    entity = Household
    definition_period = MONTH
    label = "家庭人均收入: the mean of P(m) over the window"

    def formula(household, period, parameters):
        return sum(household("per_capita_income_month", m) for m in _window(period)) / 6


class below_standard_6_months(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "家庭人均收入连续6个月低于最低生活保障标准"

    def formula(household, period, parameters):
        standard = parameters(period).dibao_standard
        result = household.filled_array(True)
        for m in _window(period):
            result = result & (household("per_capita_income_month", m) < standard)
        return result


class has_ordinary_cause(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "因病、因学、因残、单亲或其他特殊原因致困"

    def formula(household, period, parameters):
        return np.logical_or.reduce([household(f"cause_{c}", period) for c in ORDINARY])


class has_sudden_cause(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "因突发事件、意外伤害、重大疾病或其他特殊原因致困"

    def formula(household, period, parameters):
        return np.logical_or.reduce([household(f"cause_{c}", period) for c in SUDDEN])


class annual_test_2(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "(家庭可支配收入-因病等支出)/家庭总人口 <= 12 x 标准"

    def formula(household, period, parameters):
        annual = 12 * parameters(period).dibao_standard
        net = household("disposable_income", period) - household("hardship_expenses", period)
        return net / household("members", period) <= annual


class annual_test_3(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "(家庭可支配收入-意外致困支出)/家庭总人口 <= 12 x 标准"

    def formula(household, period, parameters):
        annual = 12 * parameters(period).dibao_standard
        net = household("disposable_income", period) - household("accident_expenses", period)
        return net / household("members", period) <= annual


class annual_test_4(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "(家庭可支配收入+投资性财产+储蓄-意外致困支出)/家庭总人口 <= 12 x 标准"

    def formula(household, period, parameters):
        annual = 12 * parameters(period).dibao_standard
        net = (household("disposable_income", period) + household("investment_assets", period)
               + household("savings", period) - household("accident_expenses", period))
        return net / household("members", period) <= annual


class precondition(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "安居区城镇职工"

    def formula(household, period, parameters):
        worker = household.value_from_person(household.members("urban_worker", period), Household.APPLICANT)
        return worker & (household("district", period) == ANJU)


class category_1(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "一是家庭人均收入连续6个月低于最低生活保障标准"

    def formula(household, period, parameters):
        return household("precondition", period) & household("below_standard_6_months", period)


class category_2(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "二是人均收入在低保标准上浮50%以内, 因病、因学、因残、单亲等致困"

    def formula(household, period, parameters):
        standard = parameters(period).dibao_standard
        return (household("precondition", period)
                & (household("per_capita_income", period) <= standard * 1.5)
                & household("has_ordinary_cause", period) & household("annual_test_2", period))


class category_3(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "三是人均收入在低保标准3倍(含)以内, 因突发事件等致困"

    def formula(household, period, parameters):
        standard = parameters(period).dibao_standard
        return (household("precondition", period)
                & (household("per_capita_income", period) <= standard * 3)
                & household("has_sudden_cause", period) & household("annual_test_3", period))


class category_4(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "四是人均收入超过低保标准3倍, 因突发事件等致困"

    def formula(household, period, parameters):
        standard = parameters(period).dibao_standard
        return (household("precondition", period)
                & (household("per_capita_income", period) > standard * 3)
                & household("has_sudden_cause", period) & household("annual_test_4", period))


class eligible(Variable):
    value_type = bool
    entity = Household
    definition_period = MONTH
    label = "属于四类帮扶对象之一"

    def formula(household, period, parameters):
        return np.logical_or.reduce([household(c, period) for c in CATEGORIES])


FORMULAS = [per_capita_income_month, per_capita_income, below_standard_6_months, has_ordinary_cause,
            has_sudden_cause, annual_test_2, annual_test_3, annual_test_4, precondition, category_1, category_2,
            category_3, category_4, eligible]

PARAMETERS = {
    "dibao_standard": {
        "description": "安居区城市居民最低生活保障标准 (元/人·月); placeholders, as in policies/anju_2019.policy",
        "metadata": {"unit": "currency"},
        "values": {"2019-01-01": {"value": 560}, "2020-01-01": {"value": 600}},
    },
}


class AnjuSystem(TaxBenefitSystem):
    """The tax-benefit system: two entities, the variables above, the dated dibao_standard."""

    def __init__(self, dtype: str = "float32") -> None:
        super().__init__([Person, Household])
        self.parameters = ParameterNode("", data=PARAMETERS)
        self.add_variables(urban_worker, district, members, income, *AMOUNT_VARIABLES, *CAUSE_VARIABLES, *FORMULAS)
        if dtype != "float32":  # OpenFisca's float is float32; this is an experiment, not a supported option
            for variable in self.variables.values():
                if variable.value_type is float:
                    variable.dtype = np.dtype(dtype).type


def build_system(dtype: str = "float32") -> AnjuSystem:
    return AnjuSystem(dtype)


# ---------------------------------------------------------------- loading JSON Lines into arrays


@dataclass
class Batch:
    """A chunk of households as columns. ``valid[i]`` is False for a line refused by the loader."""

    size: int
    valid: np.ndarray
    missing: np.ndarray  # some fact was absent (and got OpenFisca's default)
    month: np.ndarray  # "YYYY-MM" of as_of, the simulation period
    urban_worker: np.ndarray
    district: np.ndarray
    members: np.ndarray
    income: np.ndarray  # (size, 6): the window's months, oldest first
    amounts: dict[str, np.ndarray]
    causes: np.ndarray  # (size, len(CAUSES)) booleans
    errors: dict[int, str] = field(default_factory=dict)


def _window_keys(month: str) -> list[str]:
    y, m = int(month[:4]), int(month[5:7])
    out = []
    for _ in range(6):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        out.append(f"{y:04d}-{m:02d}")
    return out[::-1]


class Refused(ValueError):
    pass


def _amount_value(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Refused(f"{name}: not an amount")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise Refused(f"{name}: must be a finite amount >= 0")
    return number


def load_batch(lines: Iterable[str], today: str = "2019-09-15") -> Batch:
    """Parse JSON Lines (plain ``json.loads``: numbers become floats, as in any OpenFisca loader) into arrays."""
    rows = [line for line in lines if line.strip()]
    n = len(rows)
    b = Batch(n, np.ones(n, bool), np.zeros(n, bool), np.empty(n, object), np.zeros(n, bool), np.empty(n, object),
              np.ones(n, np.int64), np.zeros((n, 6)), {a: np.zeros(n) for a in AMOUNTS},
              np.zeros((n, len(CAUSES)), bool))
    cause_index = {c: i for i, c in enumerate(CAUSES)}
    for i, line in enumerate(rows):
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise Refused("not an object")
            as_of = doc.get("as_of") or today
            month = as_of[:7]
            b.month[i] = month
            missing = False
            applicant = doc.get("applicant")
            if isinstance(applicant, dict) and isinstance(applicant.get("urban_worker"), bool):
                b.urban_worker[i] = applicant["urban_worker"]
            else:
                missing = True
            b.district[i] = doc.get("district", "")
            if "district" not in doc:
                missing = True
            count = doc.get("members")
            if count is None:
                missing = True
            elif isinstance(count, bool) or not isinstance(count, (int, float)) or count != int(count) or count < 1:
                raise Refused("members: a whole number >= 1")
            else:
                b.members[i] = int(count)
            history = doc.get("income_history")
            if not isinstance(history, dict):
                history, missing = {}, True
            for key in history:
                if not MONTH_KEY.match(key):
                    raise Refused(f"income_history.{key}: not a month")
            for j, key in enumerate(_window_keys(month)):
                value = history.get(key)
                if value is None:
                    missing = True
                else:
                    b.income[i, j] = _amount_value(value, f"income_history.{key}")
            for name in AMOUNTS:
                value = doc.get(name)
                if value is None:
                    missing = True
                else:
                    b.amounts[name][i] = _amount_value(value, name)
            causes = doc.get("hardship_causes")
            if causes is None:
                missing = True
            else:
                for cause in causes:
                    if cause not in cause_index:
                        raise Refused(f"hardship_causes: unknown cause {cause!r}")
                    b.causes[i, cause_index[cause]] = True
            b.missing[i] = missing
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError and Refused are ValueErrors
            b.valid[i] = False
            b.month[i] = b.month[i] or ""
            b.errors[i] = str(exc)
    return b


# ---------------------------------------------------------------- the vectorised simulation


def evaluate_batch(system: AnjuSystem, batch: Batch) -> list[list[str] | None]:
    """The categories met by each household of the batch (None for a refused line): one OpenFisca
    simulation per assessment month, each computing every household of that month at once."""
    out: list[list[str] | None] = [None] * batch.size
    months = batch.month[batch.valid]
    for month in sorted(set(months)):
        idx = np.flatnonzero(batch.valid & (batch.month == month))
        met = simulate(system, batch, idx, month)
        for k, i in enumerate(idx):
            out[i] = [c for c in CATEGORIES if met[c][k]]
    return out


def simulate(system: AnjuSystem, batch: Batch, idx: np.ndarray, month: str) -> dict[str, np.ndarray]:
    p = period(month)
    sim = SimulationBuilder().build_default_simulation(system, count=len(idx))
    sim.set_input("urban_worker", p, batch.urban_worker[idx])
    sim.set_input("district", p, batch.district[idx])
    sim.set_input("members", p, batch.members[idx])
    for j, m in enumerate(_window(p)):
        sim.set_input("income", m, batch.income[idx, j])
    for name in AMOUNTS:
        sim.set_input(name, p, batch.amounts[name][idx])
    for c, cause in enumerate(CAUSES):
        sim.set_input(f"cause_{cause}", p, batch.causes[idx, c])
    return {c: sim.calculate(c, p) for c in CATEGORIES}


def iter_chunks(path: str | Path, size: int = 20000) -> Iterator[list[str]]:
    with open(path, encoding="utf-8") as f:
        chunk: list[str] = []
        for line in f:
            if line.strip():
                chunk.append(line)
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk


def evaluate_file(path: str | Path, system: AnjuSystem | None = None, chunk: int = 20000
                  ) -> Iterator[tuple[list[str] | None, bool]]:
    """(categories or None, missing) for each non-empty line of a JSON Lines file, in order, a chunk at a time."""
    system = system or build_system()
    for lines in iter_chunks(path, chunk):
        batch = load_batch(lines)
        yield from zip(evaluate_batch(system, batch), batch.missing.tolist(), strict=True)


# ---------------------------------------------------------------- the spec's worked examples (§10)


def _example(members_: int, monthly: str, causes: list[str], disposable: str = "0", hardship: str = "0",
             accident: str = "0", savings: str = "0", assets: str = "0") -> str:
    months = ", ".join(f'"2019-0{m}": {monthly}' for m in range(3, 9))
    return (f'{{"as_of": "2019-09-15", "district": "{ANJU}", "applicant": {{"urban_worker": true}}, '
            f'"members": {members_}, "income_history": {{{months}}}, "hardship_causes": {json.dumps(causes)}, '
            f'"disposable_income": {disposable}, "hardship_expenses": {hardship}, "accident_expenses": {accident}, '
            f'"investment_assets": {assets}, "savings": {savings}}}')


WORKED_EXAMPLES = [  # (what §10 says, the household, the categories §10 expects)
    ("3 people, 1,500 a month, no cause", _example(3, "1500", [], "18000"), ["category_1"]),
    ("3 people, 2,520 a month (P = 840, the bound), illness, (30240-10080)/3 = 6720",
     _example(3, "2520", ["illness"], "30240", hardship="10080"), ["category_2"]),
    ("the same with 2,520.03 a month (P = 840.01)",
     _example(3, "2520.03", ["illness"], "30240", hardship="10080"), []),
    ("2 people, 3,360 a month (P = 1680 = 3 x 560), emergency, (40320-26880)/2 = 6720",
     _example(2, "3360", ["emergency"], "40320", accident="26880"), ["category_3"]),
    ("2 people, 4,000 a month, major_illness, (48000+10000-45000)/2 = 6500",
     _example(2, "4000", ["major_illness"], "48000", accident="45000", savings="10000"), ["category_4"]),
]


def check_examples(system: AnjuSystem | None = None) -> list[tuple[str, list[str], list[str] | None]]:
    """(name, expected, OpenFisca's categories) for each worked example of spec §10."""
    system = system or build_system()
    batch = load_batch([text for _, text, _ in WORKED_EXAMPLES])
    got = evaluate_batch(system, batch)
    return [(name, expected, cats) for (name, _, expected), cats in zip(WORKED_EXAMPLES, got, strict=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("households", nargs="?", help="a JSON Lines file of households")
    parser.add_argument("--check", action="store_true", help="run the spec's worked examples (§10)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="float type of OpenFisca's amounts (OpenFisca's own: float32)")
    parser.add_argument("--out", help="write the rows to this file (default: standard output)")
    parser.add_argument("--chunk", type=int, default=20000, help="households loaded and simulated at a time")
    args = parser.parse_args(argv)
    system = build_system(args.dtype)
    if args.check or not args.households:
        bad = 0
        for name, expected, got in check_examples(system):
            ok = got == expected
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: expected {expected}, OpenFisca {got}")
        sys.exit(1 if bad else 0)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        for cats, missing in evaluate_file(args.households, system, args.chunk):
            out.write(json.dumps({"categories": cats, "missing_facts": missing}) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()
