"""Evaluation through the library API: spec §10 to the cent, exactness, three-valued logic, dates, the trace."""

from __future__ import annotations

import copy
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from policydsl import Evaluator, UsageError, check, load_policy, parse, read_household
from policydsl.diagnostics import HouseholdError
from policydsl.render import render_text, trace_json
from policydsl.testing import iter_cases
from policydsl.values import Unknown

WINDOW = ["2019-03", "2019-04", "2019-05", "2019-06", "2019-07", "2019-08"]
WINDOW_2020 = ["2019-09", "2019-10", "2019-11", "2019-12", "2020-01", "2020-02"]
ALWAYS = ["archive", "medical.supplementary_insurance", "safety_net.warmth"]

# Every conditional measure's own condition is false here, so the measures come only from what a test sets.
NEUTRAL: dict[str, Any] = {
    "as_of": "2019-09-15",
    "district": "安居区",
    "applicant": {"urban_worker": True},
    "members": 3,
    "income_history": {m: 1500 for m in WINDOW},
    "disposable_income": 18000,
    "hardship_causes": [],
    "hardship_expenses": 0,
    "accident_expenses": 0,
    "investment_assets": 0,
    "savings": 0,
    "working_age_members": 2,
    "employed_members": 1,
    "unemployed_able_members": 0,
    "wants_to_start_business": False,
    "students": [],
    "has_basic_medical_insurance": True,
    "employer_insurance_arrears": False,
    "housing": {"difficulty": False, "public_rental": False},
    "laid_off_overcapacity": False,
    "archive": {"filed": False, "hard_to_lift": False, "receives_dibao": False, "assisted_income_history": {}},
}


def neutral(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(NEUTRAL)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def monthly(amount: Any, months: list[str] = WINDOW) -> dict[str, Any]:
    return dict.fromkeys(months, amount)


# ---------------------------------------------------------------- spec §10, to the cent


def test_example_1_category_1_only(evaluate):
    r = evaluate(neutral())
    assert (r.eligible, r.categories, r.primary_category) == (True, ["category_1"], "category_1")
    assert r.measures == ["archive", "medical.supplementary_insurance", "safety_net.dibao", "safety_net.warmth"]
    assert r.exact_values == {"dibao_standard": Fraction(560), "per_capita_income": Fraction(500)}
    assert r.values == {"dibao_standard": "560.00", "per_capita_income": "500.00"}
    assert (r.undetermined, r.missing, r.status, r.in_force) == ([], [], None, True)


def test_example_2_the_bound_itself_is_category_2(evaluate):
    r = evaluate(neutral(income_history=monthly(2520), hardship_causes=["illness"], disposable_income=30240,
                         hardship_expenses=10080))
    assert r.exact_values["per_capita_income"] == Fraction(840)  # = 1.5 × 560 exactly
    assert (r.eligible, r.categories, r.primary_category) == (True, ["category_2"], "category_2")
    assert r.measures == ALWAYS  # P = 840 is not below 560: no dibao
    assert r.values["per_capita_income"] == "840.00"


def test_example_3_one_cent_over_the_bound_is_not_category_2(evaluate):
    r = evaluate(neutral(income_history=monthly("2520.03"), hardship_causes=["illness"], disposable_income=30240,
                         hardship_expenses=10080))
    assert r.exact_values["per_capita_income"] == Fraction(84001, 100)
    assert (r.eligible, r.categories, r.measures) == (False, [], [])
    assert r.values["per_capita_income"] == "840.01"


def test_example_4_three_times_the_standard_is_category_3(evaluate):
    r = evaluate(neutral(members=2, income_history=monthly(3360), hardship_causes=["emergency"],
                         disposable_income=40320, accident_expenses=26880))
    assert r.exact_values["per_capita_income"] == Fraction(1680)
    assert (r.eligible, r.categories) == (True, ["category_3"])
    assert r.measures == ["archive", "medical.supplementary_insurance", "safety_net.temporary_assistance",
                          "safety_net.warmth"]


def test_example_5_above_three_times_is_category_4(evaluate):
    r = evaluate(neutral(members=2, income_history=monthly(4000), hardship_causes=["major_illness"],
                         disposable_income=48000, savings=10000, investment_assets=0, accident_expenses=45000))
    assert r.exact_values["per_capita_income"] == Fraction(2000)
    assert (r.eligible, r.categories, r.primary_category) == (True, ["category_4"], "category_4")
    assert r.measures == ["archive", "medical.supplementary_insurance", "medical.mutual_aid",
                          "medical.charity_referral", "safety_net.temporary_assistance", "safety_net.warmth"]


def test_category_4_one_yuan_over_s12_is_not_met(evaluate):
    # (48,000 + 10,000 + 0 − 44,559)/2 = 6,720.50 > 6,720
    r = evaluate(neutral(members=2, income_history=monthly(4000), hardship_causes=["major_illness"],
                         disposable_income=48000, savings=10000, accident_expenses=44559))
    assert r.categories == []
    assert r.eligible is False


# ---------------------------------------------------------------- exactness


def test_a_third_of_a_cent_over_the_bound_is_over_although_shown_as_840_00(evaluate):
    r = evaluate(neutral(income_history=monthly("2520.01"), hardship_causes=["illness"], disposable_income=30240,
                         hardship_expenses=10080))
    p = r.exact_values["per_capita_income"]
    assert type(p) is Fraction
    assert p == Fraction(252001, 300)  # 840.00333…
    assert p > 840
    assert r.values["per_capita_income"] == "840.00"  # rounded for display only
    assert "category_2" not in r.categories
    assert r.eligible is False


def test_rounding_for_display_is_half_up(evaluate):
    # 3 people at 1,500.02 → 500.00666… → "500.01"; 2 people at 1,000.01 → 500.005 → "500.01"
    assert evaluate(neutral(income_history=monthly("1500.02"))).values["per_capita_income"] == "500.01"
    r = evaluate(neutral(members=2, income_history=monthly("1000.01")))
    assert r.exact_values["per_capita_income"] == Fraction(100001, 200)
    assert r.values["per_capita_income"] == "500.01"


def test_exact_values_are_fractions_and_never_floats(evaluate, household):
    for doc in (household, neutral(income_history=monthly("2520.01"))):
        r = evaluate(doc, trace=True)
        for name, value in r.exact_values.items():
            assert type(value) is Fraction, name
        numbers = []
        for rt in r.trace.rules:
            for ct in rt.conditions:
                for ev in ct.comparisons:
                    numbers += [ev.left, ev.right]
        numbers += [v for v in r.trace.definitions.values() if not isinstance(v, (frozenset, tuple, Unknown))]
        assert numbers
        for value in numbers:
            if isinstance(value, (str, bool, date, Unknown)):
                continue
            assert isinstance(value, (int, Fraction)), (type(value), value)


def test_the_mean_is_of_the_monthly_per_capita_values(evaluate):
    income = {"2019-03": 1000, "2019-04": 1000, "2019-05": 1000, "2019-06": 2000, "2019-07": 2000, "2019-08": 2001}
    r = evaluate(neutral(income_history=income))
    assert r.exact_values["per_capita_income"] == Fraction(9001, 18)
    assert r.categories == []  # months of 2,000+/3 ≥ 560: not every month below the standard


def test_months_outside_the_window_are_ignored(evaluate):
    income = {**monthly(1500), "2019-02": 999999, "2019-09": 999999, "2018-08": 1}
    r = evaluate(neutral(income_history=income))
    assert r.exact_values["per_capita_income"] == Fraction(500)


# ---------------------------------------------------------------- three-valued logic


THREE_VALUED = '''policy tv
  in force from 2019-01-01 to 2020-12-31
parameter std "标准" : money per month
  from 2019-01-01 = 560 confirmed "x"
input known_false "假" : boolean
input known_true "真" : boolean
input unknown "未知" : boolean
category and_ab "且" requires known_false and unknown
category and_ba "且" requires unknown and known_false
category req_ab "两行" requires known_false requires unknown
category req_ba "两行" requires unknown requires known_false
category or_ab "或" requires known_true or unknown
category or_ba "或" requires unknown or known_true
category not_u "非" requires not unknown
measure m_always "总是" always
measure m_false "假" requires known_false
status s_u "未知" requires unknown
status s_other "其他" otherwise
report std
'''


@pytest.fixture(scope="module")
def three_valued():
    pol = check(parse(THREE_VALUED, "tv.policy"))
    ev = Evaluator(pol)
    return lambda doc, trace=False: ev.evaluate(read_household(pol, doc), date(2019, 9, 15), trace)


@pytest.mark.parametrize("trace", [False, True])
def test_false_and_unknown_is_false_in_either_order(three_valued, trace):
    r = three_valued({"known_false": False, "known_true": True}, trace)
    assert r.categories == ["or_ab", "or_ba"]  # true ∨ unknown = true, both orders
    assert r.undetermined[:1] == ["not_u"]  # not unknown = unknown
    for rule in ("and_ab", "and_ba", "req_ab", "req_ba"):  # false ∧ unknown = false, both orders
        assert rule not in r.undetermined
        assert rule not in r.categories
    assert r.eligible is True
    assert r.measures == ["m_always"]
    assert r.undetermined == ["not_u", "s_u", "s_other"]
    assert r.status is None
    assert r.missing == ["unknown"]  # needed by not_u and the statuses only


def test_unknown_alone_is_undetermined_and_listed_as_missing(three_valued):
    r = three_valued({"known_false": True, "known_true": False})
    assert r.categories == []
    assert r.eligible is None
    assert r.undetermined == ["and_ab", "and_ba", "req_ab", "req_ba", "or_ab", "or_ba", "not_u", "m_always",
                              "m_false", "s_u", "s_other"]
    assert r.missing == ["unknown"]


def test_eligibility_undetermined_makes_always_measures_undetermined(evaluate):
    r = evaluate(neutral(applicant={}))
    assert r.eligible is None
    assert r.categories == []  # category_1's own rule holds, but the precondition is undetermined
    assert r.measures == []
    assert r.undetermined == ["category_1", "archive", "medical.supplementary_insurance", "safety_net.dibao",
                              "safety_net.warmth"]
    assert r.missing == ["applicant.urban_worker"]


def test_a_measure_whose_own_condition_is_false_stays_out_when_eligibility_is_undetermined(evaluate):
    r = evaluate(neutral(district=None))
    assert r.eligible is None
    assert "housing.security" not in r.undetermined
    assert "housing.security" not in r.measures
    assert r.missing == ["district"]


def test_a_failed_precondition_decides_everything_without_the_missing_facts(evaluate):
    r = evaluate(neutral(district="射洪市", members=None, housing={}))
    assert (r.eligible, r.categories, r.measures, r.undetermined, r.missing) == (False, [], [], [], [])


def test_a_missing_fact_whose_absence_changes_nothing_is_not_listed(evaluate):
    # No cause at all: categories 2-4 are false whatever the members; category_1 still needs them.
    r = evaluate(neutral(members=None))
    assert r.undetermined[0] == "category_1"
    assert {"category_2", "category_3", "category_4"}.isdisjoint(r.undetermined)
    assert r.missing == ["members"]
    assert "per_capita_income" not in r.values and r.values["dibao_standard"] == "560.00"


def test_a_missing_month_is_named_by_its_json_path(evaluate):
    income = monthly(1500)
    del income["2019-05"]
    r = evaluate(neutral(income_history=income))
    assert r.missing == ["income_history.2019-05"]
    assert r.eligible is None


def test_status_needs_only_the_filed_archive_not_eligibility(evaluate):
    r = evaluate(neutral(income_history=monthly(1800), archive={"filed": True}))
    assert r.eligible is False
    assert r.status == "lifted"


def test_status_relieved_and_undetermined(evaluate):
    archive = {"filed": True, "hard_to_lift": True, "receives_dibao": True,
               "assisted_income_history": monthly(1680)}
    assert evaluate(neutral(hardship_causes=["illness"], archive=archive)).status == "relieved"
    archive["assisted_income_history"] = monthly("1679.99")
    assert evaluate(neutral(hardship_causes=["illness"], archive=archive)).status == "in_assistance"
    del archive["assisted_income_history"]
    r = evaluate(neutral(hardship_causes=["illness"], archive=archive))
    assert r.status is None
    assert r.undetermined[-2:] == ["relieved", "in_assistance"]
    assert r.missing == [f"archive.assisted_income_history.{m}" for m in WINDOW]


# ---------------------------------------------------------------- dates


def test_the_2020_standard_applies_from_2020(evaluate):
    doc = neutral(income_history=monthly(1740, WINDOW_2020))  # P = 580: below 600, not below 560
    r = evaluate(doc, as_of=date(2020, 3, 15))
    assert r.values["dibao_standard"] == "600.00"
    assert r.parameters["dibao_standard"].start == date(2020, 1, 1)
    assert r.categories == ["category_1"]
    r2019 = evaluate(neutral(income_history=monthly(1740)))
    assert r2019.values["dibao_standard"] == "560.00"
    assert r2019.categories == []


def test_the_last_day_of_2019_still_uses_560(evaluate):
    r = evaluate(neutral(), as_of=date(2019, 12, 31))
    assert r.values["dibao_standard"] == "560.00"


@pytest.mark.parametrize("day", [date(2021, 1, 1), date(2019, 8, 11), date(2019, 1, 1)])
def test_as_of_outside_the_force_window_is_evaluated_but_not_in_force(evaluate, day):
    first = (day.year * 12 + day.month - 1) - 6
    months = [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(first, first + 6)]
    r = evaluate(neutral(income_history=monthly(1500, months)), as_of=day)
    assert r.in_force is False
    assert r.as_of == day
    assert r.categories == ["category_1"]
    assert r.to_json()["in_force"] is False


def test_the_force_window_includes_both_ends(evaluate):
    assert evaluate(neutral(), as_of=date(2019, 8, 12)).in_force is True
    assert evaluate(neutral(), as_of=date(2020, 12, 31)).in_force is True


def test_as_of_before_the_first_parameter_value_is_a_usage_error(evaluate):
    with pytest.raises(UsageError) as info:
        evaluate(neutral(), as_of=date(2018, 12, 31))
    assert "2018-12-31" in str(info.value)
    assert "2019-01-01" in str(info.value)
    assert info.value.exit_code == 2


def test_the_as_of_argument_wins_over_the_household(evaluate):
    doc = neutral(income_history={**monthly(1500), **monthly(9000, WINDOW_2020)})
    assert evaluate(doc).as_of == date(2019, 9, 15)
    r = evaluate(doc, as_of=date(2020, 3, 1))
    assert r.as_of == date(2020, 3, 1)
    assert r.categories == []  # the 2020 window is used


def test_the_window_crosses_a_year(evaluate):
    r = evaluate(neutral(income_history=monthly(1500, WINDOW_2020)), as_of=date(2020, 3, 1))
    assert r.missing == []
    assert r.categories == ["category_1"]


# ---------------------------------------------------------------- the trace


def rule_ids(policy) -> list[str]:
    return [r.id for r in (policy.precondition, *policy.categories, *policy.measures, policy.status_precondition,
                           *policy.statuses)]


@pytest.mark.parametrize("doc", [neutral(), neutral(district="射洪市")], ids=["eligible", "not eligible"])
def test_every_rule_appears_in_the_trace(evaluate, policy, doc):
    r = evaluate(doc, trace=True)
    assert [rt.rule.id for rt in r.trace.rules] == rule_ids(policy)
    for rt in r.trace.rules:
        assert len(rt.conditions) == len(rt.rule.conditions)
        assert rt.outcome in (True, False) or isinstance(rt.outcome, Unknown)
        assert rt.result in (True, False) or isinstance(rt.result, Unknown)


def test_the_trace_shows_comparisons_with_both_sides(evaluate):
    r = evaluate(neutral(income_history=monthly(2520), hardship_causes=["illness"], disposable_income=30240,
                         hardship_expenses=10080), trace=True)
    rules = {rt.rule.id: rt for rt in r.trace.rules}
    cat1 = rules["category_1"]
    assert cat1.result is False
    events = cat1.conditions[0].comparisons
    assert [e.bindings["m"] for e in events] == WINDOW
    assert all((e.left, e.right, e.outcome) == (840, 560, False) for e in events)
    assert all(e.node.word == "低于" for e in events)
    cat2 = rules["category_2"]
    assert cat2.result is True
    bound = cat2.conditions[0].comparisons[0]
    assert (bound.left, bound.right, bound.outcome, bound.node.word) == (840, 840, True, "以内")
    share = cat2.conditions[2].comparisons[0]
    assert (share.left, share.right, share.outcome) == (6720, 6720, True)
    assert cat2.conditions[1].values["hardship_causes"] == frozenset({"illness"})


def test_trace_json_names_outcomes_and_values(evaluate):
    r = evaluate(neutral(applicant={}), trace=True)
    data = trace_json(r)
    rules = {x["id"]: x for x in data["rules"]}
    assert rules["precondition"]["result"] is None
    assert rules["precondition"]["missing"] == ["applicant.urban_worker"]
    assert rules["category_1"]["own"] is True and rules["category_1"]["result"] is None
    cond = rules["category_1"]["conditions"][0]
    assert cond["outcome"] is True
    assert cond["comparisons"][0]["left"] == "500" and cond["comparisons"][0]["right"] == "560"
    assert cond["comparisons"][0]["bindings"] == {"m": "2019-03"}
    assert cond["span"]["line"] > 0
    assert data["parameters"]["dibao_standard"] == {
        "value": "560.00", "from": "2019-01-01", "confirmed": False, "note": "占位值, 待安居区民政局确认",
        "unit": "元/人·月", "source": "安居区城市居民最低生活保障标准 (民政部门公布); 本文所用数值为占位值"}


def test_the_text_trace_explains_every_rule(evaluate, policy):
    text = render_text(evaluate(neutral(), trace=True), trace=True)
    assert "Why 判定过程:" in text
    for rule_id in rule_ids(policy)[1:]:
        if rule_id != "status_precondition":
            assert f" {rule_id} " in text, rule_id
    assert "income_history[m] / members (500) 低于 dibao_standard (560) [m=2019-03]" in text \
        or "income_history[m] / members (500.00) 低于 dibao_standard (560.00) [m=2019-03]" in text
    assert "UNCONFIRMED" in text  # the placeholder standard is marked where it is used


def _case_households() -> list[Any]:
    root = Path(__file__).resolve().parent.parent / "policies" / "tests"
    return [c for c in iter_cases(root) if "error" not in c.expect]


def test_trace_on_and_off_give_identical_results_on_every_case_household(policy, evaluator):
    cases = _case_households()
    assert len(cases) > 100
    compared = 0
    for case in cases:
        try:
            hh = read_household(policy, case.household)
        except HouseholdError:
            continue
        plain = evaluator.evaluate(hh, case.as_of, trace=False)
        traced = evaluator.evaluate(hh, case.as_of, trace=True)
        assert plain.to_json() == traced.to_json(), case.id
        assert plain.exact_values == traced.exact_values, case.id
        assert plain.trace is None and traced.trace is not None
        compared += 1
    assert compared == len(cases)


def test_the_result_names_the_policy_it_came_from(evaluate, policy):
    out = evaluate(neutral()).to_json()
    assert out["policy"]["id"] == "anju_2019"
    assert out["policy"]["title"] == policy.policy.header.title
    assert out["policy"]["sha256"] == policy.sha256
    assert len(out["policy"]["sha256"]) == 64


def test_load_policy_by_path_is_the_default_policy(policy):
    same = load_policy(Path(__file__).resolve().parent.parent / "policies" / "anju_2019.policy")
    assert same.sha256 == policy.sha256
