"""Reading a household (spec §3): every bad input is refused with its JSON path; absent or null is missing."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from typing import Any

import pytest

from policydsl import HouseholdError, PolicyDslError, load_json, load_policy, read_household

WINDOW = ["2019-03", "2019-04", "2019-05", "2019-06", "2019-07", "2019-08"]


def refused(policy, doc: Any) -> HouseholdError:
    with pytest.raises(HouseholdError) as info:
        read_household(policy, doc, "hh.json")
    return info.value


def one_problem(policy, doc: Any) -> tuple[str, str]:
    err = refused(policy, doc)
    assert len(err.problems) == 1, str(err)
    p = err.problems[0]
    where = p.path or "(the document)"
    shown = f"{where} ({p.label}): {p.message}" if p.label else f"{where}: {p.message}"
    assert str(err) == f"hh.json: invalid household (1 problem)\n  {shown}"
    assert err.exit_code == 2
    return p.path, p.message


def with_text(example_text: str, old: str, new: str) -> Any:
    """The example household with one piece of its JSON text replaced (for values Python cannot build)."""
    assert old in example_text
    return load_json(example_text.replace(old, new, 1), "hh.json")


# ---------------------------------------------------------------- the example is valid


def test_the_example_household_is_valid(policy, household):
    hh = read_household(policy, household)
    assert hh.warnings == []
    assert str(hh.as_of) == "2019-09-15"
    assert hh.values["members"] == 3


# ---------------------------------------------------------------- not JSON


def test_not_json_is_located_at_file_line_col():
    with pytest.raises(PolicyDslError) as info:
        load_json('{\n  "members": 3,\n  "savings": \n}\n', "hh.json")
    text = str(info.value)
    assert text.startswith("hh.json:4:1: not valid JSON: Expecting value")
    assert "    4 | }" in text
    assert "      | ^" in text
    assert info.value.exit_code == 2


def test_not_json_with_a_trailing_comma():
    with pytest.raises(PolicyDslError) as info:
        load_json('{"members": 3,}', "x.json")
    assert str(info.value).startswith("x.json:1:15: not valid JSON")


def test_json_nested_too_deeply_is_refused_not_crashing():
    with pytest.raises(HouseholdError) as info:
        load_json("[" * 100_000 + "]" * 100_000, "hh.json")
    assert "nested too deeply" in str(info.value)


def test_a_huge_integer_is_refused_as_bad_input():
    policy = load_policy()
    with pytest.raises(HouseholdError) as info:
        read_household(policy, load_json('{"members": 1' + "0" * 5000 + "}", "hh.json"))
    assert "members (家庭总人口): 10000000000000000000… is too large (5001 digits; at most 15)" in str(info.value)


HUGE_EXPONENT = r"""
from policydsl import load_json, load_policy, read_household
from policydsl.diagnostics import PolicyDslError
policy = load_policy()
try:
    read_household(policy, load_json('{"savings": 1e999999999}'))
except PolicyDslError:
    pass  # refused as bad input: fine
"""


def test_a_huge_exponent_is_refused_quickly():
    proc = subprocess.run([sys.executable, "-c", HUGE_EXPONENT], timeout=5, capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (0, "")  # finished, and no other exception


# ---------------------------------------------------------------- the bad inputs of spec §3


def test_a_list_instead_of_an_object(policy):
    assert one_problem(policy, [1, 2]) == ("", "a household must be a JSON object, not a list")


@pytest.mark.parametrize(("field", "value", "path", "message"), [
    ("district", 5, "district", "expected a text, got the number 5"),
    ("members", "3", "members", 'expected a whole number, got the text "3"'),
    ("members", True, "members", "expected a whole number, got true"),
    ("wants_to_start_business", 1, "wants_to_start_business", "expected true or false, got the number 1"),
    ("wants_to_start_business", "yes", "wants_to_start_business", 'expected true or false, got the text "yes"'),
    ("hardship_causes", "illness", "hardship_causes", 'expected a list of cause values, got the text "illness"'),
    ("applicant", [], "applicant", "expected an object (申请人), got a list"),
    ("housing", "none", "housing", "expected an object"),
    ("income_history", [1500], "income_history", "expected an object of monthly amounts"),
    ("students", [{"stage": "primary"}, "primary"], "students[1]", "expected an object (在学子女)"),
    ("savings", "1,500", "savings", 'expected an amount in 元, got the text "1,500"'),
    ("savings", "1500元", "savings", "expected an amount in 元"),
    ("as_of", "2019-02-30", "as_of", '"2019-02-30" is not a real date'),
    ("as_of", "15/09/2019", "as_of", "expected a date written YYYY-MM-DD"),
])
def test_wrong_type(policy, household, field, value, path, message):
    household[field] = value
    got_path, got_message = one_problem(policy, household)
    assert got_path == path
    assert message in got_message


@pytest.mark.parametrize(("field", "value"), [("savings", -1), ("disposable_income", -0.01), ("savings", "-5"),
                                              ("working_age_members", -1)])
def test_negative_amount(policy, household, field, value):
    household[field] = value
    path, message = one_problem(policy, household)
    assert path == field
    assert message.startswith("must be at least 0")


@pytest.mark.parametrize(("change", "path", "label"), [
    (("members", 0), "members", "家庭总人口"),
    (("students", [{"stage": "college"}]), "students[0].stage", "学段"),
    (("income_history", {"2019-13": 1}), "income_history.2019-13", "家庭月收入"),
    (("applicant", {"urban_worker": "yes"}), "applicant.urban_worker", "申请人是城镇职工"),
])
def test_a_problem_names_the_fact_by_its_label(policy, household, change, path, label):
    household[change[0]] = change[1]
    err = refused(policy, household)
    assert (err.problems[0].path, err.problems[0].label) == (path, label)
    assert f"  {path} ({label}): " in str(err)


def test_negative_month(policy, household):
    household["income_history"]["2019-05"] = -1
    assert one_problem(policy, household) == ("income_history.2019-05", "must be at least 0, got -1")


@pytest.mark.parametrize("value", ["2.5", "0.5", "1.0000001"])
def test_a_fraction_of_a_person(policy, example_text, value):
    doc = with_text(example_text, '"members": 3', f'"members": {value}')
    path, message = one_problem(policy, doc)
    assert path == "members"
    assert f"expected a whole number, got {value}" in message


@pytest.mark.parametrize("value", ["3.0", "3e0", "0.3e1"])
def test_a_whole_number_written_with_a_decimal_point_is_a_count(policy, example_text, value):
    hh = read_household(policy, with_text(example_text, '"members": 3', f'"members": {value}'))
    assert hh.values["members"] == 3


@pytest.mark.parametrize(("value", "message"), [(0, "must be at least 1, got 0"), (-1, "must be at least 1, got -1")])
def test_members_below_one(policy, household, value, message):
    household["members"] = value
    assert one_problem(policy, household) == ("members", message)


def test_unknown_cause(policy, household):
    household["hardship_causes"] = ["illness", "illnes"]
    path, message = one_problem(policy, household)
    assert path == "hardship_causes[1]"
    assert message.startswith('unknown cause "illnes" — did you mean \'illness\'?')
    assert "major_illness (重大疾病)" in message  # the allowed values are listed


def test_a_cause_given_by_its_chinese_label_suggests_the_id(policy, household):
    household["hardship_causes"] = ["患病"]
    path, message = one_problem(policy, household)
    assert path == "hardship_causes[0]"
    assert "did you mean 'illness'?" in message


def test_unknown_stage(policy, household):
    household["students"] = [{"stage": "primary"}, {"stage": "college"}]
    path, message = one_problem(policy, household)
    assert path == "students[1].stage"
    assert message.startswith('unknown stage "college"')
    assert "postgraduate (研究生)" in message


@pytest.mark.parametrize("key", ["2019-13", "201903", "2019-00", "2019-3", "March", "2019-03-01"])
def test_month_key_that_is_not_yyyy_mm(policy, household, key):
    household["income_history"][key] = 1500
    path, message = one_problem(policy, household)
    assert path == f"income_history.{key}"
    assert "write months as YYYY-MM" in message


def test_month_key_in_a_nested_series(policy, household):
    household["archive"]["assisted_income_history"] = {"2019-13": 1}
    path, _ = one_problem(policy, household)
    assert path == "archive.assisted_income_history.2019-13"


@pytest.mark.parametrize(("literal", "shown"), [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity")])
def test_nan_and_infinity(policy, example_text, literal, shown):
    doc = with_text(example_text, '"savings": 0', f'"savings": {literal}')
    assert one_problem(policy, doc) == ("savings", f"{shown} is not a number; expected an amount in 元")


def test_nan_in_a_month(policy, example_text):
    doc = with_text(example_text, '"2019-05": 1500', '"2019-05": NaN')
    path, _ = one_problem(policy, doc)
    assert path == "income_history.2019-05"


def test_a_key_given_twice(policy):
    doc = load_json('{"members": 3, "members": 4}')
    assert one_problem(policy, doc) == ("members", "given twice in the same object; keep only one")


def test_several_problems_are_reported_together(policy, household):
    household.update(members=0, savings=-1, district=3, hardship_causes=["flood"])
    household["income_history"]["2019-13"] = 1
    household["students"] = [{"stage": "college"}]
    err = refused(policy, household)
    paths = sorted(p.path for p in err.problems)
    assert paths == ["district", "hardship_causes[0]", "income_history.2019-13", "members", "savings",
                     "students[0].stage"]
    text = str(err)
    assert text.startswith("hh.json: invalid household (6 problems)\n")
    for path in paths:
        assert f"\n  {path} (" in text


# ---------------------------------------------------------------- missing facts, exact numbers, warnings


def test_null_is_the_same_as_absent(policy, evaluator, household):
    with_null = dict(household, members=None)
    absent = {k: v for k, v in household.items() if k != "members"}
    a = evaluator.evaluate(read_household(policy, with_null)).to_json()
    b = evaluator.evaluate(read_household(policy, absent)).to_json()
    assert a == b
    assert a["missing"] == ["members"]
    assert a["eligible"] is None


def test_a_null_month_is_a_missing_month(policy, evaluator, household):
    household["income_history"]["2019-05"] = None
    result = evaluator.evaluate(read_household(policy, household))
    assert result.missing == ["income_history.2019-05"]
    assert "per_capita_income" not in result.values


def test_money_as_a_decimal_string_is_exact(policy, evaluator, household):
    household["income_history"] = {m: "2520.03" for m in WINDOW}
    hh = read_household(policy, household)
    assert hh.values["income_history"].data["2019-03"] == Fraction(252003, 100)
    result = evaluator.evaluate(hh)
    assert result.exact_values["per_capita_income"] == Fraction(84001, 100)
    assert result.values["per_capita_income"] == "840.01"


def test_a_decimal_json_number_is_exact_too(policy, example_text):
    doc = with_text(example_text, '"savings": 0', '"savings": 0.1')
    value = read_household(policy, doc).values["savings"]
    assert value == Fraction(1, 10)
    assert not isinstance(value, float)


def test_load_json_never_makes_a_float(example_text):
    doc = load_json(example_text.replace('"savings": 0', '"savings": 2520.03'))

    def floats(v: Any) -> list[Any]:
        if isinstance(v, dict):
            return [f for x in v.values() for f in floats(x)]
        if isinstance(v, list):
            return [f for x in v for f in floats(x)]
        return [v] if isinstance(v, float) else []

    assert floats(doc) == []


def test_unknown_top_level_field_is_a_warning_with_did_you_mean(policy, household):
    household["member"] = 3
    hh = read_household(policy, household)
    assert hh.warnings == ["member: not an input of this policy, ignored (did you mean 'members'?)"]


def test_unknown_field_of_a_record_is_a_warning(policy, household):
    household["applicant"] = {"urban_workr": True}
    hh = read_household(policy, household)
    assert hh.warnings == ["applicant.urban_workr: not a field of 申请人, ignored "
                           "(did you mean 'urban_worker'?)"]


def test_an_unknown_field_changes_nothing_else(policy, evaluator, household):
    plain = evaluator.evaluate(read_household(policy, household)).to_json()
    household["comment"] = {"anything": [1, 2, None]}
    assert evaluator.evaluate(read_household(policy, household)).to_json() == plain


def test_an_empty_object_is_a_household_with_every_fact_missing(policy, evaluator):
    result = evaluator.evaluate(read_household(policy, {"as_of": "2019-09-15"}))
    assert result.eligible is None
    assert "members" in result.missing
    assert "district" in result.missing
