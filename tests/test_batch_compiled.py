"""The compiled batch path (batch_read + batch_eval) against the reference reader and evaluator.

The compiled path may decline a household (the reference then answers) but every row it gives must be
exactly the reference's row: same categories, measures, status, values to the cent, warnings. Every
test runs twice: with the native reader first (as installed) and with the msgspec reader alone.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import batch_eval, load_policy
from policydsl.batch import Item, Worker, jsonl_line
from policydsl.batch_eval import BatchEvaluator, compile_batch, compiled_or_why
from policydsl.batch_read import ColumnReader, _fastread, parse_units
from tests.test_cli import run
from tests.test_properties import households_near_bounds, mutated_households

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy()
POLICY_2020 = load_policy(ROOT / "policies" / "anju_2020.policy")
BASE = json.loads((ROOT / "examples" / "household.json").read_text(encoding="utf-8"))
SETTINGS = settings(max_examples=60, deadline=None, database=None)


@pytest.fixture(autouse=True, scope="module", params=["native", "msgspec"])
def reader_tier(request: pytest.FixtureRequest):
    """Which reader tier reads first: the native one (skipped where it is not built) or msgspec alone."""
    if request.param == "native" and _fastread is None:
        pytest.skip("the native reader is not built here")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLICYDSL_NATIVE", "1" if request.param == "native" else "0")
        yield request.param


def both(policy, texts: list[str], as_of: date | None = None) -> tuple[list, list, list]:
    """(compiled answers, rows through the compiled path with fallback, rows of the reference alone)."""
    items = [Item(f"line {i + 1}", t) for i, t in enumerate(texts)]
    answers = BatchEvaluator(policy).rows(texts, [i.source for i in items], as_of)
    with pytest.MonkeyPatch.context() as patch:  # months found by a sorted search instead of a table: the same
        patch.setattr(batch_eval, "_TABLE_MONTHS", 0)
        assert BatchEvaluator(policy).rows(texts, [i.source for i in items], as_of) == answers
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
        if draw(st.integers(0, 5)) == 0:
            doc["district"] = draw(st.sampled_from(["安居区 ", " 安居区", "\t安居区"]))
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
        assert text.decode("utf-8") == "".join(map(jsonl_line, reference))
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
    "an unknown key": '"saving": 0',
    "an unknown field": '"housing": {"difficulty": false, "public_rental": false, "size": 3}',
    "a huge count": '"members": 10000000000000000',
    "a fraction of a person": '"members": 2.5',
    "not a month": '"income_history": {"2019-13": 1}',
    "not a date": '"as_of": "2019-02-30"',
    "too long an amount": '"savings": 12345678901234.56',
    "16 whole digits": '"savings": 1000000000000000',
    "16 whole digits in a month": '"income_history": {"2019-03": 9999999999999999}',
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


def test_a_stray_space_is_answered_with_the_references_warning():
    answers, rows, reference = both(POLICY, [json.dumps({**BASE, "district": "安居区 "}, ensure_ascii=False)])
    assert answers[0] is not None
    assert answers[0]["warnings"] == ['district: "安居区 " begins or ends with spaces, which count when it is compared']
    assert answers[0]["eligible"] is False  # "安居区 " is not 安居区
    assert rows == reference


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
    assert "quantifiers and aggregates over something other than a window" in compiled_or_why(policy)[1]
    many = tmp_path / "h.jsonl"  # a batch (one household alone is given to the reference evaluator anyway)
    many.write_text((json.dumps(BASE) + "\n") * 2, encoding="utf-8")
    result = run("eval", "--policy", str(path), str(many))
    assert result.exit_code == 0 and "note: the compiled batch path does not handle" in result.stderr
    items = [Item("line 1", json.dumps(BASE))]
    assert Worker(policy, None).rows(items) == Worker(policy, None, compiled=False).rows(items)


def test_the_bundled_policies_compile():
    for policy in (POLICY, POLICY_2020):
        assert compile_batch(policy) is not None, policy.id


GENERIC = """policy generic
  title "用来检验编译路径的政策"
  in force from 2019-01-01 to 2020-12-31
parameter std "标准" : money per month
  from 2019-01-01 = 560.5 confirmed "test"
enum kind "种类"
  a "甲"
  b "乙"
record person "户主"
  name "姓名" : text
  born "出生" : date
input city "城市" : text
input street "街道" : text
input head "户主" : person
input kind "种类" : kind
input ratio "比例" : number >= 0
input members "人数" : count >= 1
input income "收入" : money per month >= 0
input since "起始" : date
report std
category c1 "一" clause "x"
  requires city = "安居" or street = "中路"
  requires kind = a
  requires income / members * ratio <= std
  requires since < as_of
  requires head.born < 2000-01-01
"""

texts_ = st.sampled_from(["安居", "中路", " 安居", "中路 ", "别处", ""])
dates_ = st.sampled_from(["1999-12-31", "2000-01-01", "2019-02-30", "2019-9-1", "2019-06-01\n"])
numbers_ = st.sampled_from(["0.5", "0.123456", "0.1234567", "1e-1", "2", '"0.5"', "-1", "null", "1.0"])
amounts_ = st.sampled_from(["1121", "1121.01", "1120.99", "0", "1121.005", '"1121"', "-0.01", "null"])


@st.composite
def generic_households(draw: st.DrawFn) -> str:
    fields = {
        "city": json.dumps(draw(texts_), ensure_ascii=False), "street": json.dumps(draw(texts_), ensure_ascii=False),
        "head": "{" + ", ".join(draw(st.lists(st.sampled_from([
            f'"name": {json.dumps(draw(texts_), ensure_ascii=False)}', f'"born": {json.dumps(draw(dates_))}']),
            unique=True))) + "}",
        "kind": draw(st.sampled_from(['"a"', '"b"', '"c"', "1"])), "ratio": draw(numbers_),
        "members": draw(st.sampled_from(["1", "2", "3", "0", "2.0"])), "income": draw(amounts_),
        "since": json.dumps(draw(dates_)), "as_of": '"2019-09-15"'}
    keys = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, min_size=3))
    return "{" + ", ".join(f'"{k}": {fields[k]}' for k in keys) + "}"


@SETTINGS
@given(st.lists(generic_households(), min_size=1, max_size=8))
def test_compiled_rows_equal_the_reference_rows_for_another_policy(tmp_path_factory, texts):
    path = tmp_path_factory.mktemp("generic") / "generic.policy"
    path.write_text(GENERIC, encoding="utf-8")
    policy = load_policy(path)
    assert compile_batch(policy) is not None
    _, rows, reference = both(policy, texts)
    assert rows == reference


def test_the_compiled_path_reads_dates_numbers_enums_and_record_texts(tmp_path):
    path = tmp_path / "generic.policy"
    path.write_text(GENERIC, encoding="utf-8")
    policy = load_policy(path)
    doc = ('{"city": "安居", "street": "中路 ", "head": {"name": " 张三", "born": "1999-12-31"}, "kind": "a", '
           '"ratio": 0.123456, "members": 2, "income": 1121.01, "since": "2019-06-01", "as_of": "2019-09-15"}')
    answers, rows, reference = both(policy, [doc, doc.replace('"kind": "a"', '"kind": "b"')])
    assert answers[0] is None  # two warnings (street, head.name): their order is the reference's to give
    assert rows == reference
    single = doc.replace('"name": " 张三"', '"name": "张三"')
    answers, rows, reference = both(policy, [single, single.replace("0.123456", "2")])
    assert answers[0]["categories"] == ["c1"] and answers[1]["categories"] == []
    assert answers[0]["warnings"] == ['street: "中路 " begins or ends with spaces, which count when it is compared']
    assert rows == reference


def test_a_null_series_is_a_missing_one():
    doc = {**BASE, "income_history": None}
    answers, rows, reference = both(POLICY, [json.dumps(doc)])
    assert answers[0] is not None and "income_history.2019-03" in answers[0]["missing"]
    assert rows == reference


@pytest.mark.parametrize("ident", ['510904199001011234', '"h-1"', "-7", "true", "1.5", "null", "[1]", "1" * 41])
def test_ids_are_carried_or_warned_about_alike(ident):
    text = json.dumps(BASE)[:-1] + f', "id": {ident}}}'
    _, rows, reference = both(POLICY, [text])
    assert rows == reference
    row = reference[0]
    if ident in ("true", "1.5", "[1]", "1" * 41):
        assert "id" not in row and row["warnings"][0].startswith("id: expected a text or a whole number")
    elif ident == "null":
        assert "id" not in row and "warnings" not in row
    else:
        assert row["id"] == json.loads(ident) and "warnings" not in row


def test_a_line_that_cannot_be_read_is_an_error_row_with_its_problems(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_bytes(json.dumps(BASE).encode() + b"\n\x00\n\xff\xfe\n")
    result = run("eval", str(path), "--jobs", "1")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[1]["source"] == "line 2" and rows[1]["error"]["message"].startswith("not valid JSON")
    assert rows[2]["error"]["message"] == "is not UTF-8 text; save the file as UTF-8"
    assert all(row["error"]["problems"] for row in rows[1:])


BROAD = load_policy(ROOT / "tests" / "policies" / "broad.policy")
def _mostly(good: list[str], odd: list[str]) -> Any:
    """Usually a valid value, sometimes one the reader must refuse or read differently."""
    return st.one_of(st.sampled_from(good), st.sampled_from(odd)) if odd else st.sampled_from(good)


_good_months = ["2019-05", "2019-06", "2019-07", "2019-08", "2019-09", "2019-03"]
_odd_months = ["2019-13", "2019-3", "2019-06\n", "２０１９-06", "0000-10"]
_good_amounts = ["0", "5", "-5", "100.25", "-50.5", "1500", "999999999999999"]
_odd_amounts = ["-100", "1e2", '"7"', "null", "0.001", "1000000000000000"]


@st.composite
def broad_households(draw: st.DrawFn) -> str:
    def pick(strategy: Any) -> Any:
        return draw(strategy)

    def amount() -> str:
        return pick(st.sampled_from(_odd_amounts)) if pick(st.integers(0, 9)) == 0 else \
            pick(st.sampled_from(_good_amounts))

    def series() -> str:
        months = pick(st.lists(st.sampled_from(_good_months), max_size=6, unique=True))
        if pick(st.integers(0, 9)) == 0:
            months.append(pick(st.sampled_from(_odd_months)))
        return "{" + ", ".join(f"{json.dumps(m)}: {amount()}" for m in months) + "}"

    def often(good: list[str], odd: list[str]) -> str:
        return pick(st.sampled_from(odd)) if pick(st.integers(0, 9)) == 0 else pick(st.sampled_from(good))

    fields = {
        "as_of": json.dumps(pick(st.sampled_from(["2019-09-15", "2020-02-29", "2018-06-01"]))),
        "start": json.dumps(often(["2019-05-01", "2019-09-30"], ["2019-02-30", "2019-06-01T00:00"])),
        "n": often(["1", "3"], ["0", "-1", "2.0"]), "m": often(["-3", "2"], ["0", "-4"]),
        "share": often(["0.5", "1.25", "-1", "0.123456"], ["0", '"0.5"']),
        "cash": amount(), "yearly": amount(), "inc": series(),
        "k": json.dumps(often(["alpha", "beta", "gamma"], ["delta"])),
        "ks": json.dumps(pick(st.lists(st.sampled_from(["alpha", "beta", "gamma"]), max_size=3))),
        "flag": often(["true", "false"], ["1"]), "name": json.dumps(often(["x", "y"], [" y"])),
        "rec": "{" + ", ".join(pick(st.lists(st.sampled_from([
            f'"start": {json.dumps(pick(st.sampled_from(["2019-07-01", "2019-10-01"])))}',
            f'"grade": {often(["-2.5", "1", "0.5"], ["-3"])}', f'"tag": {json.dumps(often(["t", "u"], [" t"]))}',
            f'"k": {json.dumps(pick(st.sampled_from(["alpha", "gamma"])))}', f'"hist": {series()}']),
            unique=True))) + "}",
    }
    keys = [k for k in fields if pick(st.integers(0, 9)) or k == "as_of"]
    return "{" + ", ".join(f'"{k}": {"null" if pick(st.integers(0, 30)) == 0 else fields[k]}' for k in keys) + "}"


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(broad_households(), min_size=1, max_size=10), st.sampled_from([None, date(2019, 9, 15)]))
def test_compiled_rows_equal_the_reference_rows_for_a_broad_policy(texts, as_of):
    assert compile_batch(BROAD) is not None
    _, rows, reference = both(BROAD, texts, as_of)
    assert rows == reference
    items = [Item(f"line {i + 1}", t) for i, t in enumerate(texts)]
    assert Worker(BROAD, as_of).render(items, "jsonl")[0].decode("utf-8") == "".join(map(jsonl_line, reference))


@pytest.mark.parametrize("key", ["2019-03\\n", "\\uff12\\uff10\\uff11\\uff19-03", "2019-0\\u0663"])
def test_month_keys_the_reference_reads_differently_are_declined(key):
    text = json.dumps(BASE).replace('"2019-03"', f'"{key}"', 1)
    answers, rows, reference = both(POLICY, [text])
    assert answers == [None] and rows == reference
    assert reference[0]["eligible"] is None and "income_history.2019-03" in reference[0]["missing"]


def test_half_a_character_is_an_error_row_not_a_crash(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(BASE)[:-1] + ', "id": "\\ud800"}\n' + json.dumps(BASE) + "\n", encoding="utf-8")
    rows = [json.loads(line) for line in run("eval", str(path)).stdout.splitlines()]
    assert rows[0]["error"]["path"] == "id" and "half of a character" in rows[0]["error"]["message"]
    assert rows[1]["eligible"] is True


def _policy(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "p.policy"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    assert compile_batch(policy) is not None
    return policy


def test_sets_written_in_the_policy(tmp_path):  # found by review: 'alpha in {alpha}' crashed the compiled path
    policy = _policy(tmp_path, """policy setlit
  title "set literals"
enum kind "kind"
  alpha "a"
  beta "b"
input flag "flag" : boolean
input ks "ks" : set of kind
define D "D" = {alpha}
category c1 "c1"
  clause "x"
  requires alpha in {alpha} and not (beta in D)
  requires {alpha} is empty or flag
  requires count of {alpha, beta} = 2 and ks has any of {alpha}
  requires (number of m in last 2 months before as_of where alpha in D) = 2
""")
    texts = ['{"flag": true, "ks": ["alpha"], "as_of": "2019-09-15"}',
             '{"flag": false, "ks": [], "as_of": "2019-09-15"}']
    answers, rows, reference = both(policy, texts)
    assert None not in answers and rows == reference
    assert [r["eligible"] for r in rows] == [True, False]


@pytest.mark.parametrize("kind, value", [("text", '"a"'), ("money", "5"), ("number", "0.5")])
def test_an_input_named_id_is_a_fact_not_the_households_id(tmp_path, kind, value):
    policy = _policy(tmp_path, f"""policy idfact
  title "id"
input id "id" : {kind}
input n "n" : count
category c1 "c1"
  clause "x"
  requires n > 0
""")
    _, rows, reference = both(policy, [f'{{"id": {value}, "n": 1}}'])
    assert rows == reference and "id" not in rows[0]


def test_months_before_year_one_are_never_given(tmp_path):
    policy = _policy(tmp_path, """policy early
  title "early"
input start "start" : date
input inc "inc" : monthly money
define w "w" = last 13 months before start
define tot "tot" = sum of inc[x] for x in w
report tot
category c1 "c1"
  clause "x"
  requires tot > 10
""")
    text = json.dumps({"start": "0001-01-15", "inc": {f"0000-{m:02d}": 1 for m in range(1, 13)}})
    _, rows, reference = both(policy, [text], date(2019, 1, 1))
    assert rows == reference and rows[0]["missing"] == ["inc.-001-12"]


def test_the_month_key_cache_starts_afresh_without_losing_a_chunk(monkeypatch):
    monkeypatch.setattr(ColumnReader, "MONTH_CACHE", 3)
    worker = Worker(POLICY, None)
    for i in range(3):
        worker.rows([Item("a", json.dumps({"income_history": {f"x{i}": 1}}))])
    odd = Item("b", json.dumps({"income_history": {"y1": 1, "y2": 2, "2019-03 ": 3}}))
    assert worker.rows([odd]) == Worker(POLICY, None, compiled=False).rows([odd])


def test_half_a_character_in_a_key_is_named_printably():
    text = '{"archive": {"assisted_income_history": {"\\ud800": 1}}}'
    _, rows, reference = both(POLICY, [text])
    assert rows == reference
    assert rows[0]["error"]["path"] == "archive.assisted_income_history.\\ud800"
    assert jsonl_line(rows[0]).encode("utf-8")


def test_months_too_far_apart_for_a_table_are_searched(monkeypatch):
    """A chunk whose monthly amounts span more than _TABLE_MONTHS is read by a sorted search: same rows."""
    tables: list[Any] = []
    table = batch_eval._table
    monkeypatch.setattr(batch_eval, "_table", lambda k, series: tables.append(table(k, series)) or tables[-1])
    far = json.loads(json.dumps(BASE))
    far["income_history"]["1980-01"] = 1
    texts = [json.dumps(BASE, ensure_ascii=False), json.dumps(far, ensure_ascii=False)]
    evaluator = BatchEvaluator(POLICY)
    answers = evaluator.rows(texts, ["line 1", "line 2"], None)
    assert None not in answers and tables and None in tables
    assert answers == [Worker(POLICY, None, compiled=False).row(Item(f"line {i + 1}", t)) for i, t in enumerate(texts)]


@pytest.mark.parametrize("nested", ['"id":' + "[" * 2000 + "]" * 2000, '"id":' + '{"a":' * 2000 + "1" + "}" * 2000])
def test_an_id_nested_too_deeply_is_an_error_row_not_a_crash(nested):  # found by review: a traceback ended the batch
    text = "{" + nested + "}"
    items = [Item("line 1", text), Item("line 2", json.dumps(BASE, ensure_ascii=False))]
    rows = Worker(POLICY, None).rows(items)
    assert rows == Worker(POLICY, None, compiled=False).rows(items)
    assert "nested too deeply" in rows[0]["error"]["message"] and "error" not in rows[1]
