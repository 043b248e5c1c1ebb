"""Shared fixtures: the bundled policy, an evaluator, the example household, and small throw-away policies."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from policydsl import CheckedPolicy, Evaluator, Result, load_json, load_policy, read_household

# the tests keep parsed policies in a cache folder of their own (subprocesses too), not the user's
if "POLICYDSL_CACHE_DIR" not in os.environ:  # (this module is also imported as tests.conftest)
    os.environ["POLICYDSL_CACHE_DIR"] = tempfile.mkdtemp(prefix="policydsl-test-cache-")

ROOT = Path(__file__).resolve().parent.parent
POLICY_FILE = ROOT / "policies" / "anju_2019.policy"
POLICY_TESTS = ROOT / "policies" / "tests"
EXAMPLE_HOUSEHOLD = ROOT / "examples" / "household.json"

# The start of a small, valid policy; tests append rules to it. Every input is used by BODY.
MINI_HEADER = '''policy mini
  title "迷你政策"
  in force from 2019-01-01 to 2020-12-31
parameter std "标准" : money per month
  from 2019-01-01 = 560 confirmed "test value"
input members "家庭总人口" : count >= 1
input income "月收入" : money per month >= 0
input yearly "年收入" : money per year >= 0
input flag "标志" : boolean
'''
MINI_BODY = '''category c1 "一" clause "第一条"
  requires income 低于 std
  requires members >= 1
  requires yearly >= 0
  requires flag
'''


@pytest.fixture(scope="session", autouse=True)
def _test_cache() -> Iterator[None]:
    yield
    if Path(os.environ["POLICYDSL_CACHE_DIR"]).name.startswith("policydsl-test-cache-"):
        shutil.rmtree(os.environ["POLICYDSL_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def policy() -> CheckedPolicy:
    """The bundled anju_2019 policy, as ``policydsl.load_policy()`` loads it by default."""
    return load_policy()


@pytest.fixture(scope="session")
def evaluator(policy: CheckedPolicy) -> Evaluator:
    return Evaluator(policy)


@pytest.fixture(scope="session")
def example_text() -> str:
    return EXAMPLE_HOUSEHOLD.read_text(encoding="utf-8")


@pytest.fixture
def household(example_text: str) -> dict[str, Any]:
    """A fresh copy of examples/household.json (read exactly: decimals never become floats)."""
    return copy.deepcopy(load_json(example_text))


@pytest.fixture
def evaluate(policy: CheckedPolicy, evaluator: Evaluator) -> Callable[..., Result]:
    """evaluate(doc, as_of=None, trace=False) on the bundled policy, through the public API."""

    def run(doc: dict[str, Any], as_of: date | None = None, trace: bool = False) -> Result:
        return evaluator.evaluate(read_household(policy, doc), as_of, trace)

    return run


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[..., Path]:
    """write_policy(text, name="p.policy") -> the path of a policy file written under tmp_path."""

    def write(text: str, name: str = "p.policy") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def mini() -> Callable[..., str]:
    """mini(extra="", body=MINI_BODY, header=MINI_HEADER): the text of a small valid policy plus ``extra``."""

    def build(extra: str = "", body: str = MINI_BODY, header: str = MINI_HEADER) -> str:
        return header + body + extra

    return build
