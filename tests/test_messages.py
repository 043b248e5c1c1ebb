"""Messages for the mistakes a policy officer or a caseworker actually makes, and the help they give.

Each case comes from trying the tool as a new user would (see the issue notes).
"""

from __future__ import annotations

import json

import pytest
import yaml

from policydsl import PolicyError, check, parse
from policydsl.schema import household_schema
from tests.test_cli import EXAMPLE, POLICY, run


def diagnostics(text: str) -> list:
    try:
        return check(parse(text, "t.policy")).warnings
    except PolicyError as exc:
        return exc.diagnostics


def one(text: str, code: str):
    found = [d for d in diagnostics(text) if d.code == code]
    assert len(found) >= 1, [d.render(text) for d in diagnostics(text)]
    return found[0]


# ---------------------------------------------------------------- policy check


def test_a_rule_cannot_name_another_rule(mini):
    d = one(mini('measure m1 "措施" clause "x"\n  requires c1\n'), "E100")
    assert d.message == "'c1' is not defined"
    assert "'c1' is a category, and a rule cannot use another rule's outcome" in d.hint


def test_times_12_points_at_the_line_that_multiplies(mini):
    text = mini('define yearly_std "年标准" = std * 12\ncategory c2 "二" clause "x"\n  requires yearly <= yearly_std\n')
    d = one(text, "E102")
    assert str(d.span) == "t.policy:17:12"
    assert d.hint.startswith("line 15 multiplies a monthly amount by 12, which keeps it a monthly amount")
    assert "annual(…)" in d.hint


def test_annual_is_the_fix_for_times_12(mini):
    text = mini('define yearly_std "年标准" = annual(std)\n'
                'category c2 "二" clause "x"\n  requires yearly <= yearly_std\n')
    assert not [d for d in diagnostics(text) if d.severity == "error"]


def test_a_quoted_enum_value_gets_told_to_drop_the_quotes(mini):
    text = mini('enum colour "颜色"\n  red "红"\ninput c "c" : colour\ncategory c2 "二" clause "x"\n'
                '  requires c = "red"\n')
    d = one(text, "E101")
    assert d.hint == "values of colour are written without quotes: red"


@pytest.mark.parametrize(("wrong", "advice"), [
    ("高于", "write 超过 (more than, >) or 'a 在 b 以上' (at least, ≥)"),
    ("小于", "write 低于 (less than, <) or 'a 在 b 以下' (at most, ≤)"),
    ("等于", "write '=' (or 达到 for 'at least')"),
])
def test_chinese_near_misses_of_boundary_words(mini, wrong, advice):
    d = one(mini(f'category c2 "二" clause "x"\n  requires income {wrong} std\n'), "E001")
    assert (d.message, d.hint) == (f"'{wrong}' is not a word of the language", advice)
    assert str(d.span) == "t.policy:16:19"


def test_an_ideographic_comma_in_a_set(mini):
    text = mini('enum e "e"\n  a "A"\n  b "B"\ninput es "es" : set of e\ncategory c2 "二" clause "x"\n'
                '  requires es has any of {a、b}\n')
    d = one(text, "E001")
    assert d.message == "unexpected character '、'"
    assert d.hint == "separate the items of a set with ',' (a half-width comma)"


def test_a_glued_zai_gets_a_spacing_hint(mini):
    d = one(mini('category c2 "二" clause "x"\n  requires income在 std 以内\n'), "E001")
    assert d.hint == "put a space before '在': boundary words stand apart, e.g. 'a 在 b 以内'"


def test_yiwai_excludes_the_bound(mini, write_policy, tmp_path):
    path = write_policy(mini('category c2 "二" clause "x"\n  requires income 在 std 以外\n'))
    for income, held in ((560, False), (561, True)):
        household = {"as_of": "2019-09-15", "members": 1, "income": income, "yearly": 0, "flag": False}
        out = json.loads(run("eval", "-", "--policy", str(path), "--format", "json",
                             input=json.dumps(household)).stdout)
        assert ("c2" in out["categories"]) is held


def test_a_rule_without_its_clause_is_warned_about(mini):
    d = one(mini('category c2 "二"\n  requires flag\n'), "W206")
    assert (str(d.span), d.message) == ("t.policy:15:10", "category 'c2' does not cite the clause it encodes")


def test_dividing_by_a_count_that_can_be_zero_is_warned_about(mini):
    text = mini('input kids "子女数" : count >= 0\ncategory c2 "二" clause "x"\n  requires income / kids > 1\n')
    d = one(text, "W207")
    assert d.message == "this divides by 'kids', which can be 0 for some households"
    assert str(d.span) == "t.policy:17:21"
    assert not [d for d in diagnostics(mini('category c2 "二" clause "x"\n  requires income / members > 1\n'))
                if d.code == "W207"]  # members is declared >= 1


# ---------------------------------------------------------------- policy eval


def test_not_eligible_says_which_part_of_the_precondition_failed(tmp_path, household):
    household["district"] = "射洪市"
    path = tmp_path / "h.json"
    path.write_text(json.dumps(household, ensure_ascii=False, default=str), encoding="utf-8")
    out = run("eval", str(path)).stdout
    assert 'Why not 原因: the precondition "安居区城镇职工" does not hold\n  ✗ district (射洪市) = "安居区"\n' in out


def test_not_eligible_says_why_each_category_failed(tmp_path, household):
    household["income_history"] = {k: 3000 for k in household["income_history"]}
    path = tmp_path / "h.json"
    path.write_text(json.dumps(household, ensure_ascii=False, default=str), encoding="utf-8")
    out = run("eval", str(path)).stdout
    assert "Why not 原因: no category holds" in out
    assert "category_2  人均收入在低保标准上浮50%以内, 因病、因学、因残、单亲等致困: ✗ per_capita_income (1000.00) " \
           "在 dibao_standard * 150% (840.00) 以内" in out


def test_the_text_output_names_the_policy_it_applied():
    assert f"(policy: {POLICY})" in run("eval", EXAMPLE, "--policy", POLICY).stdout


def test_the_trace_shows_more_digits_when_two_would_hide_the_decision(tmp_path, household):
    household["income_history"] = {k: "1679.99" for k in household["income_history"]}
    path = tmp_path / "h.json"
    path.write_text(json.dumps(household, ensure_ascii=False, default=str), encoding="utf-8")
    out = run("eval", str(path), "--trace").stdout
    assert "income_history[m] / members (559.996667…) 低于 dibao_standard (560.000000) [m=2019-03]" in out


def test_a_gbk_household_is_told_to_be_saved_as_utf8(tmp_path):
    path = tmp_path / "h.json"
    path.write_bytes('{"district": "安居区"}'.encode("gbk"))
    result = run("eval", str(path), code=2)
    assert "is not UTF-8 text; save it as UTF-8" in result.stderr


def test_a_district_with_stray_spaces_is_warned_about(tmp_path, household):
    household["district"] = "安居区 "
    path = tmp_path / "h.json"
    path.write_text(json.dumps(household, ensure_ascii=False, default=str), encoding="utf-8")
    result = run("eval", str(path))
    assert 'district: "安居区 " begins or ends with spaces, which count when it is compared' in result.stderr


def test_a_sets_repeats_are_allowed_by_the_schema(policy):
    causes = household_schema(policy)["properties"]["hardship_causes"]["anyOf"][0]
    assert "uniqueItems" not in causes


# ---------------------------------------------------------------- policy test


def _run_case(tmp_path, case: dict) -> str:
    doc = {"policy": POLICY, "as_of": "2019-09-15", "cases": [case]}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return run("test", str(path), code=1).stdout


def test_a_scalar_where_a_list_is_expected_is_explained(tmp_path):
    out = _run_case(tmp_path, {"name": "scalar", "household": {"members": 3}, "expect": {"categories": "category_1"}})
    assert "categories: write a list, e.g. categories: [category_1]" in out


def test_a_misspelt_household_key_fails_the_case(tmp_path):
    out = _run_case(tmp_path, {"name": "typo", "household": {"membres": 3}, "expect": {"eligible": None}})
    assert "household: membres: not an input of this policy, ignored (did you mean 'members'?)" in out
