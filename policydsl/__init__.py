"""policydsl: social-assistance policy as readable, checked, exactly evaluated code.

The stages, each in its own module: ``parser`` (text → AST in ``nodes``), ``checker`` (AST → CheckedPolicy),
``household`` (JSON → validated inputs), ``evaluator`` (→ Result with Trace), ``render`` (→ text/JSON),
``testing`` (policy test cases), ``schema`` (JSON Schema of the household).
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from .checker import CheckedPolicy, check
from .diagnostics import HouseholdError, PolicyDslError, PolicyError, UsageError
from .evaluator import Evaluator, Result
from .household import Household, load_json, read_household
from .parser import parse, parse_file

__version__ = "0.1.0"
DEFAULT_POLICY = "anju_2019.policy"


def default_policy_path() -> Path:
    """The bundled anju_2019 policy: inside the installed package, or in the source checkout."""
    bundled = resources.files("policydsl").joinpath("_bundled", "policies", DEFAULT_POLICY)
    if bundled.is_file():
        return Path(str(bundled))
    return Path(__file__).resolve().parent.parent / "policies" / DEFAULT_POLICY


def load_policy(path: str | Path | None = None) -> CheckedPolicy:
    """Parse and check a policy file (the bundled default when ``path`` is None), merged with the policy
    it extends, if any."""
    from .amend import resolve

    return check(resolve(parse_file(path or default_policy_path()), parse_file))


def evaluate(policy: CheckedPolicy, household: dict[str, Any] | str, as_of: date | None = None,
             trace: bool = False) -> Result:
    """Evaluate one household given as a dict or JSON text; convenient, but builds an Evaluator each call."""
    doc = load_json(household) if isinstance(household, str) else household
    return Evaluator(policy).evaluate(read_household(policy, doc), as_of, trace)


__all__ = ["CheckedPolicy", "Evaluator", "Household", "HouseholdError", "PolicyDslError", "PolicyError",
           "Result", "UsageError", "check", "default_policy_path", "evaluate", "load_json", "load_policy", "parse",
           "parse_file", "read_household"]
