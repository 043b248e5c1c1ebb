"""The checker: every diagnostic code from a minimal policy, with its location, wording and hint.

The policies are the small valid policy of conftest.MINI_HEADER + MINI_BODY (lines 1-14) with one
mistake added from line 15 on (or edited into the header).
"""

from __future__ import annotations

import pytest

from policydsl import PolicyError, check, load_policy, parse
from policydsl.diagnostics import Diagnostic


def diagnostics(text: str) -> list[Diagnostic]:
    """Every diagnostic of an invalid policy (the checker must refuse it), but for W206 (clause missing):
    the small test rules cite no clause, and W206 has its own tests."""
    with pytest.raises(PolicyError) as info:
        check(parse(text, "t.policy"))
    return [d for d in info.value.diagnostics if d.code != "W206"]


def only(text: str, code: str) -> Diagnostic:
    """The single error of ``text``, which must carry ``code``."""
    found = [d for d in diagnostics(text) if d.severity == "error"]
    assert [d.code for d in found] == [code], "\n".join(d.render(text) for d in found)
    return found[0]


def warnings(text: str) -> list[Diagnostic]:
    return [w for w in check(parse(text, "t.policy")).warnings if w.code != "W206"]


def test_the_mini_policy_is_clean(mini):
    assert warnings(mini()) == []


def test_the_bundled_policy_checks_clean_with_zero_warnings(policy):
    assert policy.warnings == []
    assert policy.id == "anju_2019"
    assert load_policy(policy.policy.header.span.file).warnings == []


# ---------------------------------------------------------------- E100 names


def test_undefined_name_with_did_you_mean(mini):
    d = only(mini('category c2 "二"\n  requires incme 低于 std\n'), "E100")
    assert str(d.span) == "t.policy:16:12"
    assert (d.span.end_line, d.span.end_column) == (16, 17)
    assert d.message == "'incme' is not defined"
    assert d.hint == "did you mean 'income'?"


def test_chinese_label_used_as_a_name_names_the_id(mini):
    d = only(mini('category c2 "二"\n  requires 家庭总人口 >= 2\n'), "E100")
    assert str(d.span) == "t.policy:16:12"
    assert d.message == "'家庭总人口' is not defined"
    assert "label of 'members'" in d.hint
    assert "write the name 'members'" in d.hint


def test_boundary_word_without_spaces(mini):
    d = only(mini('category c2 "二"\n  requires income低于std\n'), "E100")
    assert str(d.span) == "t.policy:16:12"
    assert d.hint == "put spaces around the boundary word: 'income 低于 std'"


def test_unknown_record_field_lists_the_fields(mini):
    text = mini('category c2 "二"\n  requires rr.y\n', header=mini(body='record r "r"\n  x "x" : boolean\n'
                                                                  'input rr "rr" : r\n'))
    d = only(text, "E100")
    assert d.message == "record 'r' has no field 'y'"
    assert d.hint == "its fields are: x"


def test_unknown_function_suggests_the_right_one(mini):
    d = only(mini('category c2 "二"\n  requires anual(std) > 1\n'), "E100")
    assert d.message == "there is no function 'anual'"
    assert d.hint == "did you mean 'annual'?"


# ---------------------------------------------------------------- E101 types


def test_money_compared_with_a_count(mini):
    d = only(mini('category c2 "二"\n  requires income > members\n'), "E101")
    assert str(d.span) == "t.policy:16:12"
    assert d.message == "cannot compare ('>') a monthly amount (元 per month) and a count"


def test_money_added_to_a_count(mini):
    d = only(mini('category c2 "二"\n  requires income + members > 1\n'), "E101")
    assert str(d.span) == "t.policy:16:12"
    assert "cannot add a monthly amount (元 per month) and a count" in d.message


def test_boolean_in_arithmetic(mini):
    d = only(mini('category c2 "二"\n  requires flag + 1 > 2\n'), "E101")
    assert str(d.span) == "t.policy:16:12"
    assert (d.span.end_line, d.span.end_column) == (16, 16)  # the span covers 'flag' only
    assert d.message == "'+' needs an amount or a number, but this is a yes/no fact"


def test_condition_that_is_not_a_yes_no_test(mini):
    d = only(mini('category c2 "二"\n  requires income\n'), "E101")
    assert str(d.span) == "t.policy:16:12"
    assert d.message == "a condition must be a yes/no test, but this is a monthly amount (元 per month)"
    assert "compare it with something" in d.hint


def test_two_amounts_of_money_cannot_be_multiplied(mini):
    d = only(mini('category c2 "二"\n  requires income * std > 1\n'), "E101")
    assert d.message == "two amounts of money cannot be multiplied"


# ---------------------------------------------------------------- E102 periods


def test_monthly_amount_compared_with_a_12_month_amount(mini):
    d = only(mini('category c2 "二"\n  requires yearly <= std\n'), "E102")
    assert str(d.span) == "t.policy:16:12"
    assert d.message == ("cannot compare ('<=') a 12-month amount (元 per year) and a monthly amount "
                         "(元 per month)")
    assert "annual(x)" in d.hint


@pytest.mark.parametrize("condition", ["yearly <= annual(std)", "monthly(yearly) <= std",
                                       "yearly - annual(std) <= 0"])
def test_annual_and_monthly_fix_the_period_mismatch(mini, condition):
    assert warnings(mini(f'category c2 "二"\n  requires {condition}\n')) == []


def test_annual_of_a_12_month_amount_is_refused(mini):
    d = only(mini('category c2 "二"\n  requires annual(yearly) > 1\n'), "E101")
    assert str(d.span) == "t.policy:16:19"
    assert "annual(…) converts a monthly amount" in d.message


def test_period_mismatch_inside_a_definition(mini):
    d = only(mini('category c2 "二"\n  requires total > 0\ndefine total "合计" = yearly + std\n'), "E102")
    assert str(d.span) == "t.policy:17:21"
    assert d.message.startswith("cannot add a 12-month amount")


# ---------------------------------------------------------------- E103 duplicates


def test_duplicate_rule_id(mini):
    d = only(mini('category c1 "二"\n  requires flag\n'), "E103")
    assert str(d.span) == "t.policy:15:10"  # the id itself
    assert d.message == "the id 'c1' is used twice (first at line 10)"


def test_duplicate_name(mini):
    d = only(mini('input flag "又一个标志" : boolean\n'), "E103")
    assert str(d.span) == "t.policy:15:1"
    assert d.message == "'flag' is already declared as input flag (line 9)"


def test_duplicate_enum_member_is_one_error(mini):
    text = mini('enum e "e"\n  a "A"\n  a "B"\ninput es "es" : set of e\ncategory c2 "二"\n  requires a in es\n')
    d = only(text, "E103")
    assert str(d.span) == "t.policy:17:3"
    assert d.message == "'a' is listed twice in enum 'e'"


def test_duplicate_record_field(mini):
    text = mini('record r "r"\n  x "x" : boolean\n  x "y" : boolean\ninput rr "rr" : r\n'
                'category c2 "二"\n  requires rr.x\n')
    d = only(text, "E103")
    assert str(d.span) == "t.policy:17:3"
    assert d.message == "field 'x' is declared twice in record 'r'"


def test_duplicate_type_name(mini):
    text = mini('enum e "e"\n  a "A"\nenum e "e2"\n  b "B"\ninput es "es" : set of e\n'
                'category c2 "二"\n  requires a in es\n')
    d = only(text, "E103")
    assert str(d.span) == "t.policy:17:1"
    assert "the first declaration is at line 15" in d.hint


def test_a_builtin_name_cannot_be_declared(mini):
    d = only(mini('input as_of "日期" : date\n'), "E103")
    assert "'as_of' is a built-in name" in d.message


# ---------------------------------------------------------------- E104 cycles


def test_cycle_among_definitions_is_reported_once(mini):
    text = mini('define a "a" = b + 1\ndefine b "b" = c + 1\ndefine c "c" = a + 1\n'
                'category c2 "二"\n  requires a > 1\n  requires b > 1\n  requires c > 1\n')
    d = only(text, "E104")
    assert str(d.span) == "t.policy:15:1"
    assert d.message == "these definitions depend on each other in a circle: a → b → c → a"


def test_a_definition_using_itself(mini):
    d = only(mini('define a "a" = a + 1\ncategory c2 "二"\n  requires a > 1\n'), "E104")
    assert d.message.endswith("a → a")


# ---------------------------------------------------------------- E105 / E106 parameter values


def test_parameter_without_a_value_on_a_day_in_force(mini):
    text = mini(header=mini(body="").replace("from 2019-01-01 = 560", "from 2019-06-01 = 560"))
    d = only(text, "E105")
    assert str(d.span) == "t.policy:4:1"
    assert d.message == ("parameter 'std' has no value from 2019-01-01 to 2019-05-31, while the policy is in "
                         "force")
    assert "from 2019-01-01 = …" in d.hint


def test_parameter_with_no_value_at_all(mini):
    text = mini(header=mini(body="").replace('  from 2019-01-01 = 560 confirmed "test value"\n', ""))
    d = only(text, "E105")
    assert str(d.span) == "t.policy:4:1"
    assert d.message == "parameter 'std' has no value"


def test_parameter_values_out_of_date_order(mini):
    header = mini(body="").replace('confirmed "test value"\n',
                                   'confirmed "test value"\n  from 2018-01-01 = 500 confirmed "older"\n')
    d = only(mini(header=header), "E106")
    assert str(d.span) == "t.policy:6:3"
    assert "must be in date order" in d.message
    assert d.hint == "list the dated values from the oldest to the newest"


def test_two_values_from_the_same_day(mini):
    header = mini(body="").replace('confirmed "test value"\n',
                                   'confirmed "test value"\n  from 2019-01-01 = 600 confirmed "again"\n')
    d = only(mini(header=header), "E106")
    assert str(d.span) == "t.policy:6:3"


# ---------------------------------------------------------------- E107 otherwise, E110 dates


def test_otherwise_not_last(mini):
    d = only(mini('status s1 "一"\n  otherwise\nstatus s2 "二"\n  requires flag\n'), "E107")
    assert str(d.span) == "t.policy:15:1"
    assert d.message == "status 's1' says 'otherwise' but is not the last status"


def test_otherwise_last_is_fine(mini):
    assert warnings(mini('status s1 "一"\n  requires flag\nstatus s2 "二"\n  otherwise\n')) == []


def test_otherwise_in_a_measure(mini):
    d = only(mini('measure m1 "措施"\n  otherwise\n'), "E107")
    assert str(d.span) == "t.policy:15:1"
    assert "'otherwise' is only for the last status, not for a measure" in d.message


def test_policy_that_ends_before_it_starts(mini):
    d = only(mini().replace("from 2019-01-01 to 2020-12-31", "from 2021-01-01 to 2020-12-31"), "E110")
    assert str(d.span) == "t.policy:1:1"


# ---------------------------------------------------------------- warnings


def test_unused_input_warning(mini):
    ws = warnings(mini(header=mini(body="") + 'input spare "备用" : boolean\n'))
    assert [(w.code, str(w.span), w.message) for w in ws] == [
        ("W201", "t.policy:10:1", "input 'spare' is declared but no rule uses it")]


def test_unused_definition_warning(mini):
    ws = warnings(mini('define double "双倍" = income * 2\n'))
    assert [(w.code, str(w.span), w.message) for w in ws] == [
        ("W202", "t.policy:15:1", "definition 'double' is never used")]


def test_a_reported_definition_is_used(mini):
    assert warnings(mini('define double "双倍" = income * 2\nreport double\n')) == []


def test_unused_parameter_warning(mini):
    ws = warnings(mini('parameter other "其他" : money\n  from 2019-01-01 = 1 confirmed "x"\n'))
    assert [(w.code, str(w.span)) for w in ws] == [("W203", "t.policy:15:1")]


def test_missing_provenance_warning(mini):
    ws = warnings(mini().replace(' confirmed "test value"', ""))
    assert [(w.code, str(w.span)) for w in ws] == [("W204", "t.policy:5:3")]
    assert ws[0].message == "the value 560 of 'std' from 2019-01-01 does not say whether it is confirmed"
    assert "unconfirmed" in ws[0].hint


@pytest.mark.parametrize("mark", ['confirmed "民政局文件"', 'unconfirmed "占位值"', "confirmed", "unconfirmed"])
def test_either_provenance_mark_silences_w204(mini, mark):
    assert warnings(mini().replace('confirmed "test value"', mark)) == []


def test_warnings_ride_along_with_errors(mini):
    text = mini('category c2 "二"\n  requires incme > 1\n', header=mini(body="") + 'input spare "备用" : boolean\n')
    found = diagnostics(text)
    assert [(d.code, d.severity) for d in found] == [("W201", "warning"), ("E100", "error")]
    with pytest.raises(PolicyError) as info:
        check(parse(text, "t.policy"))
    assert str(info.value).endswith("1 error in the policy")


# ---------------------------------------------------------------- several errors


def test_several_errors_are_all_reported_sorted_by_line(mini):
    # The checker meets these in another order (types first, rules, then reports); the output is by line.
    text = mini('report nothing_here\n'                      # 15: E100 (found last)
                'category c2 "二"\n  requires flag + 1 > 2\n'  # 17: E101
                'enum e "e"\n  a "A"\n  a "B"\n'            # 20: E103 (found first)
                'input es "es" : set of e\n'
                'category c3 "三"\n  requires a in es\n'
                '  requires incme > 1\n')                    # 24: E100
    found = diagnostics(text)
    assert [(d.code, d.span.line) for d in found] == [("E100", 15), ("E101", 17), ("E103", 20), ("E100", 24)]
    with pytest.raises(PolicyError) as info:
        check(parse(text, "t.policy"))
    rendered = str(info.value)
    positions = [rendered.index(f"t.policy:{line}:") for line in (15, 17, 20, 24)]
    assert positions == sorted(positions)
    assert rendered.endswith("4 errors in the policy")
