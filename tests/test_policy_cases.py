"""Every case of policies/tests/*.yaml, one pytest item each, run through policydsl.testing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from policydsl.testing import Case, Runner, iter_cases

POLICY_TESTS = Path(__file__).resolve().parent.parent / "policies" / "tests"
CASES = list(iter_cases(POLICY_TESTS))


# pytest escapes non-ASCII characters in test ids; spell the usual symbols in ASCII so ids stay readable.
_ASCII = str.maketrans({"§": "S", "×": "x", "—": "-", "−": "-", "…": "...", "→": "->", "∧": "and", "∨": "or",
                        "≤": "<=", "≥": ">="})


def _case_id(case: Case) -> str:
    name = " ".join(case.name.translate(_ASCII).split())
    return f"{case.id} {name[:70]}{'...' if len(name) > 70 else ''}"


@pytest.fixture(scope="module")
def runner() -> Runner:
    return Runner()


def test_the_case_files_are_found():
    files = {c.file.name for c in CASES}
    assert files == {p.name for p in POLICY_TESTS.glob("*.yaml")}
    assert len(CASES) >= 100


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_policy_case(case: Case, runner: Runner):
    outcome = runner.run(case)
    if not outcome.ok:
        pytest.fail(f"{case.id}  {case.name}\n" + "\n".join(outcome.failures), pytrace=False)


def test_a_wrong_expectation_is_reported_with_a_diff(runner: Runner):
    """The items above can fail: a case whose expectation is wrong gives a readable difference."""
    case = next(c for c in CASES if c.expect.get("categories") == ["category_1"])
    wrong = dataclasses.replace(case, expect={**case.expect, "categories": ["category_2"], "eligible": False})
    outcome = runner.run(wrong)
    assert not outcome.ok
    text = "\n".join(outcome.failures)
    assert "categories: expected [category_2]" in text
    assert "got      [category_1]" in text
    assert "eligible: expected False, got True" in text


def test_an_expected_error_that_does_not_happen_fails(runner: Runner):
    case = next(c for c in CASES if c.expect.get("categories") == ["category_1"])
    outcome = runner.run(dataclasses.replace(case, expect={"error": "members"}))
    assert not outcome.ok
    assert "expected the household to be refused" in outcome.failures[0]
