"""Policy years: a policy that extends another, replace/remove by id, dated values with an end, and diff."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from policydsl import PolicyError, load_policy, read_household
from policydsl.batch import Item
from policydsl.diff import compare, impact, render_html, render_text
from policydsl.evaluator import Evaluator
from policydsl.household import load_json
from tests.test_cli import run

ROOT = Path(__file__).resolve().parent.parent
OLD = ROOT / "policies" / "anju_2019.policy"
NEW = ROOT / "policies" / "anju_2020.policy"
BASE = json.loads((ROOT / "examples" / "household.json").read_text(encoding="utf-8"))


def amendment(tmp_path: Path, body: str, header: str = "") -> Path:
    (tmp_path / "anju_2019.policy").write_text(OLD.read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "child.policy"
    path.write_text(f'policy child\n  extends "anju_2019.policy"\n{header}\n{body}', encoding="utf-8")
    return path


def errors(path: Path) -> list:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return [d for d in info.value.diagnostics if d.severity == "error"]


def test_the_2020_amendment_inherits_everything_but_what_it_changes():
    old, new = load_policy(OLD), load_policy(NEW)
    assert new.id == "anju_2020" and new.policy.header.in_force == (date(2020, 1, 1), date(2021, 12, 31))
    assert [r.id for r in new.categories] == [r.id for r in old.categories]
    assert new.categories[0].label == "近12个月中累计6个月家庭人均收入低于最低生活保障标准"
    assert new.categories[1] is not None and new.categories[1].clause == old.categories[1].clause
    values = [(str(v.start), v.value, str(v.until)) for v in new.parameters["dibao_standard"].values]
    assert values == [("2019-01-01", 560, "None"), ("2020-01-01", 600, "2020-12-31"),
                      ("2021-01-01", 640, "2021-12-31")]
    assert new.sha256 != old.sha256 and new.warnings == []


def test_replacing_an_id_that_does_not_exist_lists_the_ids_that_do(tmp_path):
    path = amendment(tmp_path, 'replace category category_9 "x" clause "x"\n  requires members 达到 1\n')
    (e,) = errors(path)
    assert (e.code, str(e.span)) == ("E130", f"{path}:4:1")
    assert e.message == "'anju_2019' has no category 'category_9' to replace"
    assert e.hint == ("did you mean 'category_4'? its category ids are: category_1, category_2, category_3, "
                      "category_4")


def test_removing_a_measure_by_id(tmp_path):
    policy = load_policy(amendment(tmp_path, "remove measure housing.rent_reduction\n"))
    assert "housing.rent_reduction" not in [m.id for m in policy.measures]
    (e,) = errors(amendment(tmp_path, "remove measure housing.nothing\n"))
    assert e.message == "'anju_2019' has no measure 'housing.nothing' to remove"


def test_a_new_category_joins_the_categories(tmp_path):
    policy = load_policy(amendment(tmp_path, 'category category_5 "五" clause "x"\n  requires members 达到 9\n'))
    assert [c.id for c in policy.categories][-1] == "category_5"


def test_a_parameter_redeclared_with_a_type_is_an_error(tmp_path):
    (e,) = errors(amendment(tmp_path, 'parameter dibao_standard : money per month\n  from 2021-01-01 = 1 confirmed\n'))
    assert e.code == "E103" and "leave out its type" in e.hint


def test_an_amendment_without_extends_is_an_error(tmp_path):
    path = tmp_path / "p.policy"
    path.write_text('policy p\nremove measure archive\n', encoding="utf-8")
    (e,) = errors(path)
    assert e.code == "E130" and "does not extend any" in e.message


def test_extending_a_missing_file_or_itself(tmp_path):
    path = tmp_path / "p.policy"
    path.write_text('policy p\n  extends "nowhere.policy"\n', encoding="utf-8")
    assert "does not exist" in errors(path)[0].message
    path.write_text('policy p\n  extends "p.policy"\n', encoding="utf-8")
    assert "extends, directly or not, this very policy" in errors(path)[0].message


def test_an_error_in_the_extended_policy_points_into_its_file(tmp_path):
    path = amendment(tmp_path, "")
    parent = tmp_path / "anju_2019.policy"
    parent.write_text(parent.read_text(encoding="utf-8").replace(
        "requires per_capita_income 低于 dibao_standard", "requires per_capita_incme 低于 dibao_standard"),
        encoding="utf-8")
    result = run("check", str(path), code=1)
    assert f"{parent}:" in result.stderr and "   | " in result.stderr
    assert "requires per_capita_incme 低于 dibao_standard" in result.stderr  # the excerpt of the right file


def test_a_value_used_past_its_end_is_reused_with_a_warning():
    policy = load_policy(NEW)
    household = read_household(policy, load_json(json.dumps(BASE, ensure_ascii=False)))
    result = Evaluator(policy).evaluate(household, date(2022, 2, 1))
    assert result.values["dibao_standard"] == "640.00"
    assert any("meant to apply until 2021-12-31; 2022-02-01 is later" in w for w in result.warnings)
    assert not Evaluator(policy).evaluate(household, date(2021, 6, 1)).warnings


def test_an_end_before_the_start_is_an_error(tmp_path):
    path = tmp_path / "p.policy"
    path.write_text('policy p\nparameter s "s" : money\n  from 2020-01-01 until 2019-01-01 = 1 confirmed\n'
                    'category c "c" clause "x"\n  requires s > 0\n', encoding="utf-8")
    assert errors(path)[0].code == "E106"


# ---------------------------------------------------------------- diff


def test_diff_names_the_changed_rule_and_values():
    text = render_text(compare(load_policy(OLD), load_policy(NEW)))
    assert "changed  category category_1\n" in text
    # the rule in words (its label), then its conditions and clause, before and after
    assert "before: 「家庭人均收入连续6个月低于最低生活保障标准」\n" in text
    assert "after : 「近12个月中累计6个月家庭人均收入低于最低生活保障标准」\n" in text
    assert "        requires every m in window: income_history[m] / members 低于 dibao_standard" in text
    assert "        requires low_months 达到 6" in text
    assert "added    dibao_standard 「安居区城市居民最低生活保障标准」: from 2021-01-01 until 2021-12-31 = 640" in text
    assert "category_2" not in text.split("Rules 规则")[1]  # unchanged rules are not listed


def test_a_policy_compared_with_itself_has_no_differences():
    assert compare(load_policy(OLD), load_policy(OLD)).empty


def households_for_2020() -> list[Item]:
    """Alternating low and ordinary months: category 1 only under the 2020 rule; and one household that
    is category 1 under both."""
    alternating = json.loads(json.dumps(BASE))
    alternating.update(as_of="2020-07-15", members=2, hardship_causes=[],
                       income_history={f"{y}-{m:02d}": (1000 if i % 2 == 0 else 1400) for i, (y, m) in enumerate(
                           [(2019, 7), (2019, 8), (2019, 9), (2019, 10), (2019, 11), (2019, 12),
                            (2020, 1), (2020, 2), (2020, 3), (2020, 4), (2020, 5), (2020, 6)])})
    always_low = json.loads(json.dumps(alternating))
    always_low["income_history"] = {k: 1000 for k in alternating["income_history"]}
    return [Item("line 1", json.dumps(alternating, ensure_ascii=False)),
            Item("line 2", json.dumps(always_low, ensure_ascii=False)), Item("line 3", "oops")]


def test_impact_counts_transitions_with_examples():
    result = impact(load_policy(OLD), load_policy(NEW), households_for_2020())
    assert (result.total, result.invalid, result.moved, result.gained, result.lost) == (3, 1, 1, 1, 0)
    assert result.transitions == {("—", "category_1"): 1, ("category_1", "category_1"): 1}
    (example,) = result.examples[("—", "category_1")]
    assert example.source == "line 1"
    assert example.why.startswith("符合「近12个月中累计6个月家庭人均收入低于最低生活保障标准」：近12个月中有 6 个月")


def test_diff_with_households_on_the_command_line(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(i.text for i in households_for_2020()) + "\n", encoding="utf-8")
    out = json.loads(run("diff", str(OLD), str(NEW), "--households", str(path), "--format", "json").stdout)
    assert out["impact"]["households"] == 3 and out["impact"]["became_eligible"] == 1
    page = render_html(compare(load_policy(OLD), load_policy(NEW)),
                       impact(load_policy(OLD), load_policy(NEW), households_for_2020()))
    assert "<svg" in page and "— → category_1" in page and '<html lang="zh-CN">' in page and "<script" not in page
    # the renamed category is counted under both names, the new one first
    assert "近12个月中累计6个月家庭人均收入低于最低生活保障标准（原：家庭人均收入连续6个月低于最低生活保障标准）" \
        in page


def test_screenshot_of_the_impact_report(tmp_path):
    from tests.test_doc import png_pixels, screenshot

    page = tmp_path / "diff.html"
    page.write_text(render_html(compare(load_policy(OLD), load_policy(NEW)),
                                impact(load_policy(OLD), load_policy(NEW), households_for_2020())), encoding="utf-8")
    shot = tmp_path / "diff.png"
    screenshot(page, shot, "1000,1600")
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1000, 1600)
    bpp = len(rows[0]) // width
    colours = {row[x:x + 3] for row in rows[::4] for x in range(0, len(row), bpp * 2)}
    assert len(colours) > 50, "the report looks blank"
    # the chart's bar for a household that moved is drawn in #2f6fb0
    assert any(abs(p[0] - 0x2F) < 6 and abs(p[1] - 0x6F) < 6 and abs(p[2] - 0xB0) < 6 for p in colours)


def test_a_removed_definition_still_used_says_where_it_was_removed(tmp_path):
    path = amendment(tmp_path, "remove define has_sudden_cause\n")
    found = errors(path)
    assert found and all(e.code == "E100" for e in found)
    assert found[0].hint.startswith(f"'has_sudden_cause' was removed by the amendment at {path}:4:1")


def test_a_property_can_be_removed(tmp_path):
    policy = load_policy(amendment(tmp_path, "remove property no_3_and_4\nremove category category_4\n"))
    assert [p.name for p in policy.properties] == ["covered_when_poor"]
    assert "category_4" not in [c.id for c in policy.categories]


def test_redeclaring_an_inherited_category_suggests_replace(tmp_path):
    (e,) = errors(amendment(tmp_path, 'category category_1 "x" clause "x"\n  requires members 达到 1\n'))
    assert e.message.startswith(f"the id 'category_1' is used twice (first at {tmp_path / 'anju_2019.policy'}:")
    assert e.hint == "to change the inherited one, write 'replace category category_1 …'"


def test_a_misspelt_extends_points_at_the_line_and_suggests_the_file(tmp_path):
    (tmp_path / "anju_2019.policy").write_text(OLD.read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "p.policy"
    path.write_text('policy p\n  extends "anju_2109.policy"\n', encoding="utf-8")
    (e,) = errors(path)
    assert str(e.span) == f"{path}:2:3" and e.hint == "did you mean 'anju_2019.policy'?"


def test_a_gap_between_dated_values_is_warned_about(tmp_path):
    policy = load_policy(amendment(tmp_path, "parameter dibao_standard\n"
                                             "  from 2021-01-01 until 2021-06-30 = 650 confirmed\n"
                                             "  from 2021-09-01 = 700 confirmed\n"))
    (w,) = [w for w in policy.warnings if w.code == "W208"]
    assert w.message == "'dibao_standard' has no value from 2021-07-01 to 2021-08-31: the value from 2021-01-01 " \
                        "ends on 2021-06-30"
    household = read_household(policy, load_json(json.dumps(BASE, ensure_ascii=False)))
    result = Evaluator(policy).evaluate(household, date(2021, 7, 15))
    assert any("the next value starts on 2021-09-01" in w for w in result.warnings)


def test_impact_keeps_undecided_apart_from_losses():
    undecided = json.loads(json.dumps(BASE))  # category_1 under 2019 (its 6 months given), 12 months unknown
    undecided["as_of"] = "2019-09-15"
    undecided["hardship_causes"] = []  # so category_1 is its only category
    result = impact(load_policy(OLD), load_policy(NEW), [Item("line 1", json.dumps(undecided, ensure_ascii=False))])
    assert (result.lost, result.became_undecided) == (0, 1)
    assert result.transitions == {("category_1", "?"): 1}
    assert not result.measures_lost
    (example,) = result.examples[("category_1", "?")]
    assert "需要补充信息：请问" in example.why and "\n" not in example.why  # which facts to ask for, on one line


def test_impact_counts_households_that_can_now_be_decided():
    open_then = json.loads(json.dumps(BASE))  # 3 people, illness
    open_then["as_of"] = "2019-09-15"
    del open_then["disposable_income"]  # category_2 cannot be decided, under either policy
    # August is above the standard, so not "6 months in a row" (2019), but 11 of the last 12 (2020)
    open_then["income_history"] = {f"2018-{m:02d}": 1500 for m in range(9, 13)} | \
        {f"2019-{m:02d}": 1500 for m in range(1, 8)} | {"2019-08": 2000}
    result = impact(load_policy(OLD), load_policy(NEW), [Item("line 1", json.dumps(open_then, ensure_ascii=False))])
    assert result.became_decided == 1 and result.gained == 0
    assert result.transitions == {("?", "category_1"): 1}
    assert "1 can now be decided" in render_text(compare(load_policy(OLD), load_policy(NEW)), result)
