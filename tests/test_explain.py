"""Citizen explanations: numbers only from the trace, no internal names, golden letters, a safe sandbox."""

from __future__ import annotations

import json
import os
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from policydsl import Evaluator, read_household
from policydsl.explain import Explainer, TemplateError
from policydsl.testing import iter_cases
from policydsl.values import RecordValue, Series, format_amount
from tests.test_cli import EXAMPLE, POLICY, run

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
VALID_CASES = [c for c in iter_cases(ROOT / "policies" / "tests")
               if "error" not in c.expect and c.policy_path.name == "anju_2019.policy"]
AMOUNT = re.compile(r"(-?\d+\.\d{2}) 元")


@pytest.fixture(scope="module")
def explainer(policy) -> Explainer:
    return Explainer(policy)


def traced(evaluator: Evaluator, doc: dict, as_of=None):
    return evaluator.evaluate(read_household(evaluator.policy, doc), as_of, trace=True)


def trace_amounts(result) -> set[str]:
    """Every amount the evaluation computed or read, formatted as a letter shows it."""
    found: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, (int, Fraction)) and not isinstance(value, bool):
            found.add(format_amount(value))
        elif isinstance(value, (Series, RecordValue)):
            for v in value.data.values():
                add(v)

    for rt in result.trace.rules:
        for ct in rt.conditions:
            for v in ct.values.values():
                add(v)
            for e in ct.comparisons:
                add(e.left)
                add(e.right)
    for v in result.trace.definitions.values():
        add(v)
    for pv in result.trace.parameters.values():
        add(pv.value)
    return found


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("case", VALID_CASES, ids=lambda c: c.id)
def test_every_amount_in_a_letter_is_one_of_the_traces_values(evaluator, explainer, case, lang):
    result = traced(evaluator, case.household, case.as_of)
    letter = explainer.render(result, lang, "text")
    # what-if lines show amounts the policy's expressions yield for a changed fact; they are tested below
    facts = "\n".join(line for line in letter.splitlines()
                      if not line.lstrip().startswith(("如果", "You would meet it")))
    shown = set(AMOUNT.findall(facts))
    assert shown <= trace_amounts(result), f"amounts not in the trace: {shown - trace_amounts(result)}\n{letter}"


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("case", VALID_CASES[::7], ids=lambda c: c.id)
def test_a_letter_shows_no_internal_ids_or_names(policy, evaluator, explainer, case, lang):
    letter = explainer.render(traced(evaluator, case.household, case.as_of), lang, "text")
    internal = [r.id for r in policy.rules if r.kind in ("category", "measure", "status")]
    internal += [name for name, sym in policy.symbols.items() if sym.kind in ("input", "definition", "parameter")]
    if lang == "en":  # plain English words such as 'district' or 'savings' may appear as words
        internal = [name for name in internal if "_" in name or "." in name]
    assert [name for name in internal if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", letter)] == []


# ---------------------------------------------------------------- golden letters

GOLDEN_HOUSEHOLDS = {
    "example": {},  # examples/household.json: categories 1 and 2
    "not_category_2_by_a_cent": {"income_history": {f"2019-{m:02d}": "2520.03" for m in range(3, 9)},
                                 "disposable_income": 30240, "hardship_expenses": 10080},
    "other_district": {"district": "射洪市"},
    "facts_missing": {"income_history": {"2019-03": 1500, "2019-04": 1500}, "students": None},
    "filed_in_assistance": {"archive": {"filed": True, "hard_to_lift": False, "receives_dibao": False,
                                        "assisted_income_history": {}}},
    "category_4": {"members": 2, "income_history": {f"2019-{m:02d}": 4000 for m in range(3, 9)},
                   "hardship_causes": ["major_illness"], "disposable_income": 48000, "savings": 10000,
                   "investment_assets": 0, "accident_expenses": 45000},
}


def golden_household(name: str) -> dict:
    doc = json.loads(Path(EXAMPLE).read_text(encoding="utf-8"))
    for key, value in GOLDEN_HOUSEHOLDS[name].items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(("name", "lang", "fmt"), [
    *[(name, lang, "text") for name in GOLDEN_HOUSEHOLDS for lang in ("zh", "en")],
    ("example", "zh", "html"), ("example", "en", "markdown"),
])
def test_golden_letters(evaluator, explainer, name, lang, fmt):
    letter = explainer.render(traced(evaluator, golden_household(name)), lang, fmt)
    path = GOLDEN / f"{name}.{lang}.{ {'text': 'txt', 'html': 'html', 'markdown': 'md'}[fmt] }"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(letter, encoding="utf-8")
    assert letter == path.read_text(encoding="utf-8"), f"{path} differs; review and rerun with UPDATE_GOLDEN=1"


def test_the_cent_over_letter_says_what_would_change(evaluator, explainer):
    zh = explainer.render(traced(evaluator, golden_household("not_category_2_by_a_cent")), "zh", "text")
    assert "家庭人均月收入为 840.01 元，超过了最低生活保障标准 560.00 元上浮50%（840.00 元）" in zh
    assert "如果家庭人均收入不超过 840.00 元，则可符合这一类。" in zh
    en = explainer.render(traced(evaluator, golden_household("not_category_2_by_a_cent")), "en", "text")
    assert "You would meet it if the average monthly income per person were at most 840.00 元." in en


def test_a_what_if_amount_really_changes_the_outcome(evaluator, explainer):
    doc = golden_household("not_category_2_by_a_cent")
    doc["disposable_income"] = "30240.01"  # (30240.01 − 10080) / 3 = 6720.0033… > 6720
    doc["income_history"] = {f"2019-{m:02d}": 2520 for m in range(3, 9)}
    zh = explainer.render(traced(evaluator, doc), "zh", "text")
    assert "= 6720.003333… 元，超过了全年最低生活保障标准 6720.00 元" in zh  # more digits where two would hide it
    assert "如果家庭可支配收入(前12个月)不超过 30240.00 元，则可符合这一类。" in zh
    doc["disposable_income"] = "30240.00"
    assert "category_2" in traced(evaluator, doc).categories
    # category_1 fails on every month: the monthly total that would have met it
    assert "如果每个月的家庭月收入低于 1680.00 元，则可符合这一类。" in zh
    doc["income_history"] = {f"2019-{m:02d}": "1679.99" for m in range(3, 9)}
    assert "category_1" in traced(evaluator, doc).categories


def test_missing_facts_become_one_question_each(evaluator, explainer):
    result = traced(evaluator, golden_household("facts_missing"))
    zh = explainer.render(result, "zh", "text")
    questions = re.findall(r"^\d+\. (.*)$", zh, flags=re.M)
    assert len(questions) == len(result.missing)
    assert "请问2019年5月的家庭月收入是多少？" in questions
    assert "请问家庭的在学子女有哪些？（如没有，请回答“无”）" in questions


def test_an_unconfirmed_standard_is_marked(evaluator, explainer):
    zh = explainer.render(traced(evaluator, golden_household("example")), "zh", "text")
    assert "尚未经主管部门确认" in zh


# ---------------------------------------------------------------- HTML


def test_html_is_one_standalone_accessible_page(evaluator, explainer):
    page = explainer.render(traced(evaluator, golden_household("example")), "zh", "html")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in page
    assert "<h1>" in page and "<main>" in page and "<script" not in page and 'href="http' not in page


def test_html_escapes_the_households_own_text(evaluator, explainer):
    doc = golden_household("example")
    doc["district"] = "<script>alert(1)</script>"
    page = explainer.render(traced(evaluator, doc), "zh", "html")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ---------------------------------------------------------------- the command line


def test_policy_explain_command():
    out = run("explain", EXAMPLE, "--lang", "en").stdout
    assert out.startswith("Anju District: helping urban hardship workers out of hardship (2019)\n")
    assert "Assessment date: 15 September 2019" in out
    assert "category_1" not in out


def test_eval_json_with_explain_adds_the_letter():
    out = json.loads(run("eval", EXAMPLE, "--format", "json", "--explain").stdout)
    assert out["explanation"].startswith("安居区城镇困难职工解困脱困工作相关要求 (2019)\n评估日期：2019年9月15日")
    assert "trace" not in out


# ---------------------------------------------------------------- the sandbox

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ title.__class__ }}",
    "{{ title['__class__'] }}",
]


def _policy_with_template(tmp_path: Path, name: str, text: str) -> Path:
    shutil.copy(POLICY, tmp_path / "anju_2019.policy")
    shutil.copytree(ROOT / "policies" / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "zh" / name).write_text(text, encoding="utf-8")
    return tmp_path / "anju_2019.policy"


@pytest.mark.parametrize("payload", ESCAPES)
def test_check_refuses_a_template_that_reaches_for_python_internals(tmp_path, payload):
    path = _policy_with_template(tmp_path, "outcome.j2", f"结论 {payload}\n")
    result = run("check", str(path), code=1)
    assert f"{tmp_path / 'templates' / 'zh' / 'outcome.j2'}:1: error[E121]: the template reaches for '" in result.stderr
    assert "a Python internal" in result.stderr


@pytest.mark.parametrize("payload", [*ESCAPES, "{{ title|attr('__class__') }}"])
def test_rendering_refuses_sandbox_escapes(tmp_path, payload):
    path = _policy_with_template(tmp_path, "outcome.j2", f"结论\n{payload}\n")
    result = run("explain", EXAMPLE, "--policy", str(path), code=1)
    assert "refused by the template sandbox" in result.stderr or "not provided" in result.stderr
    assert "outcome.j2:2" in result.stderr


def test_a_template_syntax_error_names_file_and_line(tmp_path):
    path = _policy_with_template(tmp_path, "measure.j2", "{{ label }}\n{% if clause %}\n")
    result = run("check", str(path), code=1)
    assert f"{tmp_path / 'templates' / 'zh' / 'measure.j2'}:2: error[E120]: template syntax error" in result.stderr


def test_an_undefined_name_in_a_template_is_an_error_not_a_blank(tmp_path):
    path = _policy_with_template(tmp_path, "measure.j2", "{{ label }} {{ meaning }}\n")
    result = run("explain", EXAMPLE, "--policy", str(path), code=1)
    assert "measure.j2:1: the template uses something that is not provided: 'meaning' is undefined" in result.stderr


def test_the_bundled_templates_check_clean(policy):
    assert Explainer(policy).check_templates() == []
    with pytest.raises(ValueError):
        Explainer(policy).render(Evaluator(policy).evaluate(read_household(policy, {"members": 1})), "zh")
    assert issubclass(TemplateError, Exception)


def test_check_catches_a_name_a_template_is_not_given(tmp_path):
    path = _policy_with_template(tmp_path, "measure.j2", "{{ label }} {{ meaning }}\n")
    result = run("check", str(path), code=1)
    assert f"{tmp_path / 'templates' / 'zh' / 'measure.j2'}:1: error[E122]: the template uses 'meaning'" \
        in result.stderr


def test_check_catches_a_misspelt_name_in_an_explain_text(tmp_path):
    text = Path(POLICY).read_text(encoding="utf-8").replace("{{ per_capita_income }}，{% if holds %}在",
                                                            "{{ per_capita_incme }}，{% if holds %}在", 1)
    path = tmp_path / "p.policy"
    path.write_text(text, encoding="utf-8")
    result = run("check", str(path), code=1)
    assert "error[E122]: the template uses 'per_capita_incme'" in result.stderr


@pytest.mark.parametrize("payload", ["{% include '/etc/passwd' %}", "{% include '../../x.j2' %}",
                                     "{% extends 'nowhere.j2' %}"])
def test_check_refuses_includes_outside_the_template_folder(tmp_path, payload):
    path = _policy_with_template(tmp_path, "measure.j2", payload + "\n")
    assert "error[E123]: a template may only include another template of its own folder" in \
        run("check", str(path), code=1).stderr


@pytest.mark.parametrize(("payload", "message"), [
    ("{{ ('a' * 100000000)|length }}", "may not build texts longer than 100000 characters"),
    ("{{ range(10**6)|list|length }}", "may not ask for sizes above 100000"),
    ("{{ label.ljust(300000000) }}", "may not ask for sizes above 100000"),
    ("{{ label|center(300000000) }}", "may not ask for sizes above 100000"),
    ("{{ 2 ** 100000 }}", "a power this large is not allowed"),
])
def test_rendering_refuses_resource_exhaustion(tmp_path, payload, message):
    path = _policy_with_template(tmp_path, "measure.j2", "{{ label }}\n" + payload + "\n")
    result = run("explain", EXAMPLE, "--policy", str(path), code=1)
    assert message in result.stderr and "measure.j2:2" in result.stderr


def test_markdown_keeps_the_households_text_as_text(evaluator, explainer):
    doc = golden_household("example")
    doc["district"] = "<b>*x*</b>"
    letter = explainer.render(traced(evaluator, doc), "zh", "markdown")
    assert "<b>" not in letter and "&lt;b&gt;\\*x\\*&lt;/b&gt;" in letter


def test_html_and_markdown_name_the_undecided_categories(evaluator, explainer):
    result = traced(evaluator, golden_household("facts_missing"))
    assert "<h2>还不能确定是否符合</h2>" in explainer.render(result, "zh", "html")
    assert "## Not yet decided" in explainer.render(result, "en", "markdown")


def test_the_status_of_a_filed_household_comes_right_after_the_outcome(evaluator, explainer):
    zh = explainer.render(traced(evaluator, golden_household("filed_in_assistance")), "zh", "text")
    paragraphs = zh.split("\n\n")
    assert paragraphs[2].startswith("您的家庭目前的状态是「帮扶中」")


def test_english_html_marks_the_chinese_clauses(evaluator, explainer):
    page = explainer.render(traced(evaluator, golden_household("example")), "en", "html")
    assert '<html lang="en">' in page and '<blockquote lang="zh-CN">' in page


def test_a_failing_explain_text_is_a_located_error_not_a_traceback(tmp_path):
    text = Path(POLICY).read_text(encoding="utf-8").replace(
        "{{ per_capita_income }}，{% if holds %}在", "{{ per_capita_income / 0 }}，{% if holds %}在", 1)
    path = tmp_path / "p.policy"
    path.write_text(text, encoding="utf-8")
    shutil.copytree(ROOT / "policies" / "templates", tmp_path / "templates")
    result = run("explain", EXAMPLE, "--policy", str(path), code=1)
    assert f"{path}:" in result.stderr and "(explain text): the template failed: TypeError" in result.stderr
