"""Policy analysis (issue #4): overlaps, unreachable rules, redundant conditions, stated properties, bounds.

Every finding that claims a household exists is checked here again: its witness, written as JSON, is read
and evaluated by the ordinary engine and must show what the finding says.
"""

from __future__ import annotations

import json
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest

pytest.importorskip("z3")

from click.testing import CliRunner

from cli.main import main
from policydsl import CheckedPolicy, check, evaluate, load_json, load_policy, parse
from policydsl.analysis import Report, analyze, render_text
from policydsl.diagnostics import PolicyError

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "anju_2019.policy"
P2019, P2020 = date(2019, 8, 12), date(2020, 1, 1)

SMALL = '''policy small
  title "分析测试"
  in force from 2020-01-01 to 2020-12-31
parameter std "标准" : money per month
  from 2020-01-01 = 500 confirmed "test value"
input members "家庭总人口" : count >= 1
input income "家庭月收入" : money per month >= 0
input disabled "有残疾人" : boolean

category poor "低收入"
  clause "一是人均收入低于标准"
  requires income / members 低于 std

category dead "矛盾的类别"
  clause "二是"
  requires income / members 低于 std
  requires income / members 超过 std * 2

category disabled_rich "残疾且收入较高"
  clause "三是"
  requires disabled
  requires income / members 超过 std * 2
  requires income / members 超过 std

property disabled_covered "有残疾人的家庭都属于低收入类"
  assuming disabled
  expect poor

property never_dead "矛盾的类别不成立"
  expect not dead
'''


@pytest.fixture(scope="module")
def anju() -> tuple[CheckedPolicy, Report]:
    policy = load_policy(POLICY)
    return policy, analyze(policy, str(POLICY))


@pytest.fixture(scope="module")
def small() -> tuple[CheckedPolicy, Report]:
    policy = check(parse(SMALL, "small.policy"))
    return policy, analyze(policy, "small.policy")


def evaluated(policy: CheckedPolicy, witness: dict):
    """The witness as `policy eval` reads it: JSON text, then the ordinary evaluation."""
    return evaluate(policy, load_json(json.dumps(witness, ensure_ascii=False)))


def finding(report: Report, fid: str):
    found = [f for f in report.findings if f.id == fid]
    assert found, f"no finding {fid}; found: {[f.id for f in report.findings]}"
    return found[0]


# ---------------------------------------------------------------- anju_2019


@pytest.mark.parametrize("day", [P2019, P2020])
@pytest.mark.parametrize("pair", [("category_1", "category_2"), ("category_2", "category_3")])
def test_anju_overlaps_have_witnesses_the_evaluator_confirms(anju, pair, day):
    policy, report = anju
    f = finding(report, f"overlap.{pair[0]}.{pair[1]}@{day}")
    assert f.kind == "overlap" and f.witness is not None
    result = evaluated(policy, f.witness)
    assert result.as_of == day
    assert set(pair) <= set(result.categories)


@pytest.mark.parametrize("day", [P2019, P2020])
def test_anju_category_3_and_4_never_overlap(anju, day):
    _, report = anju
    f = finding(report, f"never_overlap.category_3.category_4@{day}")
    assert f.kind == "never_overlap" and f.witness is None
    assert not [g for g in report.by_kind("overlap") if set(g.rules) == {"category_3", "category_4"}]


def test_anju_has_no_dead_rule_redundant_condition_or_violated_property(anju):
    _, report = anju
    assert report.by_kind("unreachable", "redundant", "property_violated", "undecided") == []
    assert report.notes == []


def test_anju_thresholds_per_parameter_period(anju):
    _, report = anju
    bounds = {(b.rule, b.word): dict(b.values) for b in report.bounds}
    assert bounds[("category_1", "低于")] == {P2019: 560, P2020: 600}
    assert bounds[("category_2", "以内")] == {P2019: 840, P2020: 900}
    assert bounds[("category_3", "以内")] == {P2019: 1680, P2020: 1800}
    assert bounds[("category_4", "超过")] == {P2019: 1680, P2020: 1800}
    annual = [b for b in report.bounds if b.rule == "category_2" and b.word is None]
    assert dict(annual[0].values) == {P2019: Fraction(6720), P2020: Fraction(7200)}


def test_anju_stated_properties_are_proved(anju):
    policy, report = anju
    names = {p.name for p in policy.properties}
    assert {"covered_when_poor", "no_3_and_4"} <= names
    proved = {(f.detail["property"], f.as_of) for f in report.by_kind("property_holds") if not f.detail["vacuous"]}
    assert {(name, day) for name in ("covered_when_poor", "no_3_and_4") for day in (P2019, P2020)} <= proved


# ---------------------------------------------------------------- planted problems


def test_planted_dead_rule_is_found(small):
    policy, report = small
    f = finding(report, "unreachable.dead@2020-01-01")
    assert f.span is not None and f.span.line == SMALL.splitlines().index('category dead "矛盾的类别"') + 1
    assert len(f.detail["conflicting_lines"]) == 2
    assert f.witness is not None  # a near miss: every condition but one holds, and the rule does not
    result = evaluated(policy, f.witness)
    assert "dead" not in result.categories
    assert not [g for g in report.by_kind("unreachable") if g.rules != ["dead"]]


def test_planted_redundant_condition_is_found_with_a_valid_witness(small):
    policy, report = small
    line = SMALL.splitlines().index("  requires income / members 超过 std") + 1
    f = finding(report, f"redundant.disabled_rich.line{line}@2020-01-01")
    assert f.witness is not None
    result = evaluated(policy, f.witness)
    assert "disabled_rich" in result.categories
    household = f.witness
    assert Fraction(str(household["income"])) / household["members"] > 500
    others = [g for g in report.by_kind("redundant") if g is not f]
    assert others == []  # the stronger bound (超过 std * 2) is not redundant


def test_planted_violated_property_is_found_with_a_counterexample(small):
    policy, report = small
    f = finding(report, "property.disabled_covered@2020-01-01")
    assert f.kind == "property_violated" and f.witness is not None
    assert f.witness["disabled"] is True
    assert "poor" not in evaluated(policy, f.witness).categories
    holds = finding(report, "property.never_dead@2020-01-01")
    assert holds.kind == "property_holds"


def test_check_analyze_reports_findings_as_warnings(tmp_path):
    path = tmp_path / "small.policy"
    path.write_text(SMALL, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(path), "--analyze", "--format", "json"])
    assert result.exit_code == 0, result.output
    codes = sorted(d["code"] for d in json.loads(result.stdout)["diagnostics"])
    assert codes == ["W301", "W302", "W303"]
    plain = CliRunner().invoke(main, ["check", str(path)])
    assert "0 warnings" in plain.stdout


def test_analyze_out_writes_witnesses_policy_eval_accepts(tmp_path):
    path = tmp_path / "small.policy"
    path.write_text(SMALL, encoding="utf-8")
    out = tmp_path / "witnesses"
    result = CliRunner().invoke(main, ["analyze", str(path), "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    files = sorted(out.glob("*.json"))
    assert {p.name for p in files} == {f["witness"]["file"] for f in report["findings"] if "witness" in f}
    assert files
    for p in files:
        ev = CliRunner().invoke(main, ["eval", str(p), "--policy", str(path), "--format", "json"])
        assert ev.exit_code == 0, ev.output
        assert "eligible" in json.loads(ev.stdout)


def test_analyze_text_report_on_anju():
    result = CliRunner().invoke(main, ["analyze", str(POLICY)])
    assert result.exit_code == 0, result.output
    for text in ("重叠 Overlaps", "category_3 + category_4: never", "不可达规则", "冗余条件", "声明的性质", "阈值",
                 "以内 1680 (from 2019-08-12), 1800 (from 2020-01-01)"):
        assert text in result.stdout


# ---------------------------------------------------------------- the language


def test_outcome_names_only_inside_properties():
    bad = SMALL.replace("  requires disabled\n", "  requires disabled and poor\n")
    with pytest.raises(PolicyError) as exc:
        check(parse(bad, "bad.policy"))
    assert any(d.code == "E100" and "'poor'" in d.message for d in exc.value.diagnostics)


def test_a_property_must_be_a_yes_no_test():
    bad = SMALL + 'property p "x"\n  expect members\n'
    with pytest.raises(PolicyError) as exc:
        check(parse(bad, "bad.policy"))
    assert any(d.code == "E101" for d in exc.value.diagnostics)


def test_evaluation_ignores_properties(small):
    policy, _ = small
    result = evaluate(policy, {"as_of": "2020-03-01", "members": 2, "income": 600, "disabled": True})
    assert result.categories == ["poor"]


def test_amounts_finer_than_a_fen_are_not_called_unreachable():
    text = SMALL + '''category narrow "窄" clause "四是"
  requires income 超过 100.001
  requires income 低于 100.009
'''
    policy = check(parse(text, "narrow.policy"))
    report = analyze(policy)
    assert not [f for f in report.by_kind("unreachable") if f.rules == ["narrow"]]
    assert [f for f in report.by_kind("undecided") if f.rules == ["narrow"]]


def test_analyze_without_the_solver_says_how_to_install_it(monkeypatch):
    from policydsl import analysis

    monkeypatch.setattr(analysis, "z3", None)
    result = CliRunner().invoke(main, ["analyze", str(POLICY)])
    assert result.exit_code == 2
    assert "pip install 'policydsl[analysis]'" in result.stderr


LISTS = '''policy lists
  title "lists"
  in force from 2019-01-01 to 2020-12-31
record student "学生"
  age "年龄" : count >= 0
input students "学生" : list of student
input flag "f" : boolean
category many "多" clause "x"
  requires count of students 达到 4
category tautology "t" clause "x"
  requires flag or not flag
'''


def test_a_rule_beyond_the_list_size_analysed_is_undecided_not_unreachable():
    report = analyze(check(parse(LISTS, "lists.policy")))
    assert not [f for f in report.by_kind("unreachable", "never_overlap") if "many" in f.rules]
    assert [f for f in report.by_kind("undecided") if "many" in f.rules]
    assert any("lists are analysed with at most 3 items" in note for note in report.notes)
    four = {"as_of": "2019-06-01", "flag": True, "students": [{"age": 7}] * 4}
    assert "many" in evaluate(check(parse(LISTS, "lists.policy")), four).categories  # it can be met


PERIODS = '''policy periods
  title "periods"
  in force from 2019-01-01 to 2020-12-31
parameter std "标准" : money per month
  from 2019-01-01 = 500 confirmed
  from 2020-07-01 = 700 confirmed
input income "收入" : money per month >= 0
category dead_early "x" clause "x"
  requires income 低于 std
  requires income 超过 600
category fine_bound "y" clause "y"
  requires income 超过 std - 0.001
'''


def test_a_rule_dead_in_one_period_says_which():
    report = analyze(check(parse(PERIODS, "periods.policy")))
    (w301,) = [d for d in report.diagnostics() if d.code == "W301"]
    assert w301.message.endswith("— only for the period(s) from 2019-01-01")


def test_bounds_are_exact_not_rounded():
    report = analyze(check(parse(PERIODS, "periods.policy")))
    bound = next(b for b in report.bounds if "0.001" in b.text)
    assert [v for _, v in bound.values] == [Fraction("499.999"), Fraction("699.999")]
    assert "超过 499.999 (from 2019-01-01), 699.999 (from 2020-07-01)" in render_text(report)
