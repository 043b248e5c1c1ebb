"""Policy test cases: YAML files of households with their expected outcome (docs/formats.md).

Used by ``policy test`` and by the engine's pytest suite; YAML numbers are read exactly (never float).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from . import load_policy
from .checker import CheckedPolicy
from .diagnostics import HouseholdError, PolicyDslError, UsageError
from .evaluator import Evaluator
from .household import NonFinite, read_decimal, read_household, read_int


class _ExactLoader(yaml.SafeLoader):
    """SafeLoader whose floats are exact Decimals, and NaN/Infinity reach the validator as such."""


def _float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")
    lowered = text.lower().lstrip("+-")
    if lowered in (".nan", ".inf"):
        return NonFinite("NaN" if lowered == ".nan" else ("-" if text.startswith("-") else "") + "Infinity")
    return read_decimal(text)


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text.lstrip("+-").isdigit():
        return read_int(text)
    return loader.construct_yaml_int(node)  # 0x…, 0o…: YAML's other spellings


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _float)
_ExactLoader.add_constructor("tag:yaml.org,2002:int", _int)


@dataclass
class Case:
    """One test case, ready to run."""

    file: Path
    index: int
    name: str
    household: dict[str, Any]
    as_of: date | None
    expect: dict[str, Any]
    policy_path: Path

    @property
    def id(self) -> str:
        return f"{self.file.name}::{self.index + 1}"


@dataclass
class Outcome:
    case: Case
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _merge(base: Any, over: Any) -> Any:
    """Deep-merge ``over`` onto ``base``: objects merge key by key, null removes a key, lists replace."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        key = str(k)
        if v is None:
            out.pop(key, None)
        elif isinstance(v, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], v)
        else:
            out[key] = copy.deepcopy(v)
    return out


def _stringify_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_keys(v) for v in value]
    return value


def _policy_for(test_file: Path, named: str | None) -> Path:
    test_file = test_file.resolve()
    if named:
        return (test_file.parent / named).resolve()
    candidates = sorted(test_file.parent.parent.glob("*.policy"))
    if len(candidates) != 1:
        raise UsageError(f"{test_file}: say which policy it tests with 'policy: <file>' "
                         f"(found {len(candidates)} .policy files next to its folder)")
    return candidates[0]


def load_cases(path: Path) -> list[Case]:
    """The cases of one YAML file; a malformed file is a UsageError naming the file and the problem."""
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_ExactLoader)
    except (yaml.YAMLError, ValueError) as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise UsageError(f"{path}: a test file needs a 'cases:' list (see docs/formats.md)")
    if doc.get("policy") is not None and not isinstance(doc["policy"], str):
        raise UsageError(f"{path}: 'policy:' names a policy file, e.g. policy: ../anju_2019.policy")
    policy_path = _policy_for(path, doc.get("policy"))
    base = doc.get("base") if doc.get("base") is not None else {}
    if not isinstance(base, dict):
        raise UsageError(f"{path}: 'base:' is a household (an object of facts), not {type(base).__name__}")
    base = _stringify_keys(base)
    default_as_of = _date(doc.get("as_of"), f"{path}")
    cases = []
    for i, raw in enumerate(doc["cases"]):
        where = f"{path}: case {i + 1}"
        if not isinstance(raw, dict) or not isinstance(raw.get("expect"), dict):
            raise UsageError(f"{where} needs an 'expect:' with the outcome to check (and usually a 'name:' and "
                             "a 'household:'); see docs/formats.md")
        as_of = _date(raw["as_of"], where) if "as_of" in raw else default_as_of
        household = raw.get("household") if raw.get("household") is not None else {}
        if not isinstance(household, dict):
            raise UsageError(f"{where}: 'household:' is an object of facts, not {type(household).__name__}")
        if "values" in raw["expect"] and not isinstance(raw["expect"]["values"], (dict, type(None))):
            raise UsageError(f"{where}: 'values:' maps names to amounts, e.g. values: {{per_capita_income: "
                             '"500.00"}')
        household = _merge(base, _stringify_keys(household))
        cases.append(Case(path, i, str(raw.get("name", f"case {i + 1}")), household, as_of,
                          dict(raw["expect"]), policy_path))
    return cases


def _date(value: Any, where: str) -> date | None:
    """An assessment date from YAML (a date, or a YYYY-MM-DD text); anything else is the writer's mistake."""
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise UsageError(f"{where}: as_of '{value}' is not a date (YYYY-MM-DD)")


def discover(path: Path) -> list[Path]:
    """Test files under ``path`` (a file or a folder searched recursively)."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise UsageError(f"{path}: no such test file or folder")
    return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


_LIST_KEYS = ("categories", "measures", "missing", "undetermined")
_LIST_EXPECTATIONS = (*_LIST_KEYS, "measures_include", "measures_exclude")
_SCALAR_KEYS = ("eligible", "primary_category", "status", "in_force", "as_of")


def compare(expect: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Readable differences between an expectation and a result (empty when they agree)."""
    out: list[str] = []
    for key, want in expect.items():
        if key in _LIST_EXPECTATIONS and not isinstance(want, (list, type(None))):
            out.append(f"{key}: write a list, e.g. {key}: [{want}]")
            continue
        if key in _LIST_KEYS:
            got = actual[key]
            want = [str(w) for w in (want or [])]
            if got != want:
                extra = [g for g in got if g not in want]
                lacking = [w for w in want if w not in got]
                detail = "; ".join(filter(None, [f"not expected: {_list(extra)}" if extra else "",
                                                 f"expected but absent: {_list(lacking)}" if lacking else "",
                                                 "order differs" if not extra and not lacking else ""]))
                out.append(f"{key}: expected {_list(want)}\n{' ' * (len(key) + 2)}got      {_list(got)}   ({detail})")
        elif key in _SCALAR_KEYS:
            want = _plain(want)
            if actual[key] != want:
                out.append(f"{key}: expected {want!r}, got {actual[key]!r}")
        elif key == "values":
            for name, value in (want or {}).items():
                got_value = actual["values"].get(name)
                if got_value != _plain(value):
                    out.append(f"values.{name}: expected {_plain(value)!r}, got {got_value!r}")
        elif key == "measures_include":
            lacking = [m for m in want or [] if m not in actual["measures"]]
            if lacking:
                out.append(f"measures: expected to include {lacking}, got {actual['measures']}")
        elif key == "measures_exclude":
            extra = [m for m in want or [] if m in actual["measures"]]
            if extra:
                out.append(f"measures: expected not to include {extra}, got {actual['measures']}")
        elif key != "error":
            out.append(f"unknown expectation '{key}' (see docs/formats.md)")
    return out


class Runner:
    """Runs cases, loading and compiling each policy once."""

    def __init__(self) -> None:
        self.evaluators: dict[Path, Evaluator] = {}

    def policy(self, path: Path) -> CheckedPolicy:
        return self.evaluator(path).policy

    def evaluator(self, path: Path) -> Evaluator:
        if path not in self.evaluators:
            self.evaluators[path] = Evaluator(load_policy(path))
        return self.evaluators[path]

    def run(self, case: Case) -> Outcome:
        ev = self.evaluator(case.policy_path)
        want_error = case.expect.get("error")
        try:
            household = read_household(ev.policy, case.household, "household")
            result = ev.evaluate(household, case.as_of)
        except HouseholdError as exc:
            if want_error is None:
                return Outcome(case, [f"the household was refused: {exc}"])
            if str(want_error) not in str(exc):
                return Outcome(case, [f"error: expected a message containing {want_error!r}, got:\n{exc}"])
            return Outcome(case)
        except PolicyDslError as exc:
            if want_error is not None and str(want_error) in str(exc):
                return Outcome(case)
            return Outcome(case, [f"evaluation failed: {exc}"])
        if want_error is not None:
            return Outcome(case, [f"error: expected the household to be refused ({want_error!r}), but it was "
                                  f"evaluated: eligible={result.eligible}"])
        # a misspelt key would silently test the base household instead: in a test, that is a failure
        unknown = [f"household: {w}" for w in household.warnings if "ignored" in w]
        return Outcome(case, unknown + compare(case.expect, result.to_json()))


def iter_cases(path: Path) -> Iterator[Case]:
    for f in discover(path):
        yield from load_cases(f)
