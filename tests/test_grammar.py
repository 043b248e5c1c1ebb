"""The grammar itself: LALR(1) without conflicts or ambiguous terminals, so every policy reads one way only."""

from importlib import resources

import pytest
from lark import Lark

from policydsl.parser import reserved_words


def test_grammar_has_no_conflicts_in_strict_mode():
    pytest.importorskip("interegular")  # strict mode needs it to compare the terminals' regular expressions
    grammar = resources.files("policydsl").joinpath("grammar.lark").read_text(encoding="utf-8")
    Lark(grammar, parser="lalr", strict=True)  # raises GrammarError on any shift/reduce conflict


def test_keywords_are_reserved_words():
    words = reserved_words()
    for keyword in ("requires", "category", "measure", "every", "mean", "and", "或", "在"):
        assert keyword in words
    assert "dibao_standard" not in words
