"""The compiled batch path (batch_read + batch_eval) against the reference reader and evaluator.

The compiled path may decline a household (the reference then answers) but every row it gives must be
exactly the reference's row: same categories, measures, status, values to the cent, warnings.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import load_policy
from policydsl.batch import Item, Worker, jsonl_line
from policydsl.batch_eval import BatchEvaluator, compile_batch
from policydsl.batch_read import parse_units
from tests.test_properties import households_near_bounds, mutated_households

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy()
POLICY_2020 = load_policy(ROOT / "policies" / "anju_2020.policy")
BASE = json.loads((ROOT / "examples" / "household.json").read_text(encoding="utf-8"))
SETTINGS = settings(max_examples=60, deadline=None, database=None)


def both(policy, texts: list[str], as_of: date | None = None) -> tuple[list, list, list]:
    """(compiled answers, rows through the compiled path with fallback, rows of the reference alone)."""
    items = [Item(f"line {i + 1}", t) for i, t in enumerate(texts)]
    answers = BatchEvaluator(policy).rows(texts, [i.source for i in items], as_of)
    return answers, Worker(policy, as_of).rows(items), Worker(policy, as_of, compiled=False).rows(items)


def as_numbers(text: str) -> str:
    """Amounts written as JSON numbers ("560.05" → 560.05), as most writers send them."""
    return re.sub(r'"(-?\d+\.\d+)"', r"\1", text)


@st.composite
def chunks(draw: st.DrawFn) -> list[str]:
    texts = []
    for _ in range(draw(st.integers(1, 8))):
        doc, _removed = draw(households_near_bounds())
        if draw(st.integers(0, 3)) == 0:
            doc["as_of"] = draw(st.sampled_from(["2019-09-15", "2020-03-01", "2020-12-31", "2021-06-30", "2018-05-01"]))
        if draw(st.integers(0, 4)) == 0:
            doc["id"] = draw(st.one_of(st.integers(-10**16, 10**16), st.text(max_size=5), st.booleans()))
        text = json.dumps(doc, ensure_ascii=draw(st.booleans()),
                          separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")])))
        texts.append(as_numbers(text) if draw(st.integers(0, 3)) else text)
    return texts


@SETTINGS
@given(chunks(), st.sampled_from([None, date(2019, 9, 15), date(2020, 6, 1), date(2018, 1, 1)]))
def test_compiled_rows_equal_the_reference_rows(texts, as_of):
    for policy in (POLICY, POLICY_2020):
        _, rows, reference = both(policy, texts, as_of)
        assert rows == reference
        # and the rows written straight as JSON text are the bytes of the reference rows encoded
        items = [Item(f"line {i + 1}", t) for i, t in enumerate(texts)]
        text, summary = Worker(policy, as_of).render(items, "jsonl")
        assert text == "".join(map(jsonl_line, reference))
        assert summary.total == len(texts)


@SETTINGS
@given(st.lists(mutated_households(), min_size=1, max_size=6))
def test_compiled_rows_equal_the_reference_rows_for_odd_households(docs):
    texts = [as_numbers(json.dumps(d, ensure_ascii=False)) for d in docs]
    _, rows, reference = both(POLICY, texts)
    assert rows == reference


def test_the_compiled_path_answers_for_complete_households():
    texts = [json.dumps(BASE), as_numbers(json.dumps({**BASE, "savings": "1234.56", "members": 2}))]
    answers, rows, reference = both(POLICY, texts)
    assert all(a is not None for a in answers)
    assert rows == reference
    assert answers[0]["values"] == {"dibao_standard": "560.00", "per_capita_income": "500.00"}


DECLINED = {
    "a key given twice": '{"members": 2, "members": 3}',
    "a month given twice": '"income_history": {"2019-03": 1, "2019-03": 2}',
    "an amount as text": '"savings": "1e3"',
    "an exponent": '"savings": 1e3',
    "three places": '"savings": 1.005',
    "a negative amount": '"savings": -1',
    "a stray space": '"district": "安居区 "',
    "an unknown key": '"saving": 0',
    "an unknown field": '"housing": {"difficulty": false, "public_rental": false, "size": 3}',
    "a huge count": '"members": 10000000000000000',
    "a fraction of a person": '"members": 2.5',
    "not a month": '"income_history": {"2019-13": 1}',
    "not a date": '"as_of": "2019-02-30"',
    "too long an amount": '"savings": 12345678901234.56',
}


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_what_the_reference_must_judge_is_declined(name):
    change = DECLINED[name]
    base = json.dumps(BASE, ensure_ascii=False, separators=(", ", ": "))
    if change.startswith("{"):
        text = change
    else:
        key = change.split(":")[0]
        text = re.sub(re.escape(key) + r': (\{[^}]*\}|"[^"]*"|[^,}]+)', lambda m: change, base, count=1)
        assert text != base or key not in base, name
        if key not in base:
            text = base[:-1] + ", " + change + "}"
    answers, rows, reference = both(POLICY, [text])
    assert answers == [None]
    assert rows == reference


def test_missing_facts_are_listed_as_the_reference_lists_them():
    without_members = {**BASE, "members": None}
    without_months = {**BASE, "income_history": {"2019-03": 1500}, "archive": None}
    answers, rows, reference = both(POLICY, [json.dumps(without_members), json.dumps(without_months)])
    assert None not in answers
    assert rows == reference
    assert answers[0]["missing"] == ["members"] and answers[0]["eligible"] is None
    assert "income_history.2019-04" in answers[1]["missing"]


def test_a_missing_fact_that_changes_nothing_is_answered():
    doc = {**BASE, "savings": None}  # category 4 is decided without it: income is not above 3 × the standard
    del doc["investment_assets"]
    answers, rows, reference = both(POLICY, [json.dumps(doc)])
    assert answers[0] is not None and answers[0]["missing"] == []
    assert rows == reference


def test_large_amounts_stay_exact():
    doc = {**BASE, "members": 7, "disposable_income": "999999999999.99", "hardship_expenses": "0.01",
           "income_history": {m: "999999999999.97" for m in BASE["income_history"]}}
    answers, rows, reference = both(POLICY, [as_numbers(json.dumps(doc))])
    assert answers[0] is not None
    assert rows == reference
    assert answers[0]["values"]["per_capita_income"] == "142857142857.14"


def test_stale_parameter_warnings_are_kept():
    doc = {**BASE, "as_of": "2022-03-15", "income_history": {f"2021-{m:02d}": 1000 for m in range(1, 13)}
           | {"2022-01": 1000, "2022-02": 1000}}
    answers, rows, reference = both(POLICY_2020, [json.dumps(doc)])
    assert answers[0] is not None and answers[0]["warnings"]
    assert rows == reference


def test_parse_units_reads_plain_numbers_only():
    values, known, bad = parse_units([b"1500", b"2520.01", b"-0.5", b"0", b"null", b"", b'"12"', b"1E3", b"1.005",
                                      b"12345678901234567"], 2)
    assert values.tolist()[:4] == [150000, 252001, -50, 0]
    assert known.tolist() == [True] * 4 + [False] * 6
    assert bad.tolist() == [False] * 6 + [True] * 4


def test_a_policy_the_compiler_cannot_handle_falls_back_to_the_reference(tmp_path):
    text = (ROOT / "policies" / "anju_2019.policy").read_text(encoding="utf-8")
    text = text.replace("requires count of students 达到 1",
                        "requires any s in students: s.stage = primary")
    path = tmp_path / "p.policy"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    assert compile_batch(policy) is None
    items = [Item("line 1", json.dumps(BASE))]
    assert Worker(policy, None).rows(items) == Worker(policy, None, compiled=False).rows(items)


def test_the_bundled_policies_compile():
    for policy in (POLICY, POLICY_2020):
        assert compile_batch(policy) is not None, policy.id
