"""Every rule of the bundled policy quotes its clause from the notice it encodes, word for word."""

import re
from pathlib import Path

import pytest

from policydsl import load_policy

ROOT = Path(__file__).resolve().parent.parent
NOTICE = re.sub(r"\s+", "", (ROOT / "policies" / "sources" / "anju_2019_notice.txt").read_text(encoding="utf-8"))
POLICY = load_policy(ROOT / "policies" / "anju_2019.policy")


@pytest.mark.parametrize("rule", POLICY.rules, ids=lambda r: r.id)
def test_clause_is_quoted_from_the_notice(rule):
    assert rule.clause, f"{rule.id} has no clause: every rule must name the text it encodes"
    for part in rule.clause.split("……"):  # an ellipsis marks words left out of the quotation
        assert re.sub(r"\s+", "", part) in NOTICE, f"{rule.id}: not in the notice: {part}"


def test_the_unconfirmed_standard_is_marked():
    values = POLICY.parameters["dibao_standard"].values
    assert [(str(v.start), v.value, v.confirmed) for v in values] == [
        ("2019-01-01", 560, False), ("2020-01-01", 600, False)]
