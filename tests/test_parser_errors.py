"""Syntax errors: located at file:line:col, worded for a policy officer, shown with the line and a caret.

Columns in ``file:line:col`` count characters; the caret line counts terminal columns, where a CJK or
full-width character takes two.
"""

from __future__ import annotations

import re

import pytest

from policydsl import PolicyError, check, parse, parse_file

HEAD = '''policy p
  in force from 2019-01-01 to 2020-12-31
parameter std "标准" : money per month
  from 2019-01-01 = 560 confirmed "test"
input members "家庭总人口" : count >= 1
input income "月收入" : money per month >= 0
'''  # 6 lines; the statements under test start on line 7


def syntax_error(text: str, file: str = "t.policy") -> PolicyError:
    with pytest.raises(PolicyError) as info:
        check(parse(text, file))
    return info.value


def excerpt_at(rendered: str, line: int) -> tuple[str, int, int]:
    """(source line shown, caret offset in columns, number of carets) of the excerpt of ``line``."""
    lines = rendered.splitlines()
    i = next(i for i, text in enumerate(lines) if re.match(rf"^ *{line} \| ", text))
    source = lines[i].split(" | ", 1)[1]
    marker = lines[i + 1]
    assert re.match(r"^ +\| ", marker), rendered
    marker = marker.split("| ", 1)[1]
    assert set(marker.strip()) == {"^"}, rendered
    return source, len(marker) - len(marker.lstrip(" ")), marker.count("^")


def assert_error(err: PolicyError, *, at: str, code: str, message: str, line_text: str, caret: int,
                 width: int = 1, hint: str | None = None) -> None:
    assert len(err.diagnostics) == 1, str(err)
    d = err.diagnostics[0]
    assert (d.code, d.severity) == (code, "error")
    assert str(d.span) == at
    assert message in d.message
    if hint is not None:
        assert d.hint is not None and hint in d.hint, d.hint
    text = str(err)
    assert text.startswith(f"{at}: error[{code}]: "), text
    assert text.endswith("1 error in the policy")
    shown, offset, carets = excerpt_at(text, d.span.line)
    assert shown == line_text
    assert (offset, carets) == (caret, width), text


def test_missing_expression_after_a_boundary_word_at_the_end_of_a_line():
    text = HEAD + 'category c1 "一"\n  requires income 低于\nmeasure m "措施"\n  always\n'
    err = syntax_error(text)
    # The parser only notices at the next statement's keyword; the help names the incomplete line.
    assert_error(err, at="t.policy:9:1", code="E001", message="expected an expression before 'measure'",
                 line_text='measure m "措施"', caret=0, width=7,
                 hint="line 8 ends before its expression is complete: 'requires income 低于'")


def test_missing_expression_after_a_boundary_word_at_the_end_of_the_file():
    err = syntax_error(HEAD + 'category c1 "一"\n  requires income 低于\n')
    # "  requires income " is 18 columns, 低于 two wide characters: the caret stands just after it.
    assert_error(err, at="t.policy:8:21", code="E001", message="the file ends in the middle of a statement",
                 line_text="  requires income 低于", caret=22, hint="an expression")


def test_unclosed_quote():
    err = syntax_error(HEAD + 'category c1 "一\n  requires income 低于 std\n')
    assert_error(err, at="t.policy:7:13", code="E001", message="this quoted text is not closed",
                 line_text='category c1 "一', caret=12, hint='add the closing "')


def test_curly_quotes():
    err = syntax_error(HEAD + 'category c1 “一”\n  requires income 低于 std\n')
    assert_error(err, at="t.policy:7:13", code="E001", message="unexpected character '“'",
                 line_text="category c1 “一”", caret=12, hint='straight double quotes: "…"')


def test_curly_closing_quote_is_an_unclosed_text():
    err = syntax_error(HEAD + 'category c1 "一”\n  requires income 低于 std\n')
    assert_error(err, at="t.policy:7:13", code="E001", message="this quoted text is not closed",
                 line_text='category c1 "一”', caret=12)


def test_full_width_parenthesis_after_cjk_text():
    line = "  requires 家庭人均收入（元） < std"
    err = syntax_error(HEAD + f'category c1 "一"\n{line}\n')
    # 18th character; 11 columns of "  requires " + 6 CJK characters × 2 = 23 columns before it;
    # the full-width parenthesis itself is two columns wide.
    assert_error(err, at="t.policy:8:18", code="E001", message="unexpected character '（'",
                 line_text=line, caret=23, width=2, hint="half-width")


def test_full_width_colon_in_a_declaration():
    line = 'input flag "标志" ： boolean'
    err = syntax_error(HEAD + line + "\n")
    assert_error(err, at="t.policy:7:17", code="E001", message="unexpected character '：'",
                 line_text=line, caret=18, width=2, hint="half-width")


@pytest.mark.parametrize(("line", "word", "col"), [
    ('input measure "m" : count', "measure", 7),
    ('define every "e" = 1', "every", 8),
    ('input requires "r" : boolean', "requires", 7),
])
def test_keyword_used_as_a_name(line, word, col):
    err = syntax_error(HEAD + line + "\n")
    assert_error(err, at=f"t.policy:7:{col}", code="E001",
                 message=f"'{word}' is a word of the language and cannot be used as a name",
                 line_text=line, caret=col - 1, width=len(word), hint="choose another name")


def test_unexpected_end_of_file_in_an_expression():
    err = syntax_error(HEAD + 'category c1 "一"\n  requires income <\n')
    assert_error(err, at="t.policy:8:20", code="E001", message="the file ends in the middle of a statement",
                 line_text="  requires income <", caret=19, hint="expected an expression")


def test_unexpected_end_of_file_after_a_rule_header():
    err = syntax_error(HEAD + 'category c1 "一"\n')
    assert_error(err, at="t.policy:7:16", code="E001", message="the file ends in the middle of a statement",
                 line_text='category c1 "一"', caret=16, hint="'requires'")


def test_bad_date_literal():
    text = HEAD.replace("from 2019-01-01 = 560", "from 2019-02-30 = 560")
    err = syntax_error(text)
    assert_error(err, at="t.policy:4:8", code="E002", message="'2019-02-30' is not a real date",
                 line_text='  from 2019-02-30 = 560 confirmed "test"', caret=7, width=10, hint="YYYY-MM-DD")


def test_bad_date_in_the_header():
    err = syntax_error(HEAD.replace("to 2020-12-31", "to 2020-13-01"))
    assert_error(err, at="t.policy:2:31", code="E002", message="'2020-13-01' is not a real date",
                 line_text="  in force from 2019-01-01 to 2020-13-01", caret=30, width=10)


def test_boundary_word_glued_to_the_name_before_it():
    line = "  requires income低于 std"
    err = syntax_error(HEAD + f'category c1 "一"\n{line}\n')
    assert_error(err, at="t.policy:8:21", code="E001", message="unexpected 'std'", line_text=line,
                 caret=22, width=3, hint="put a space before '低于'")


def test_an_upper_bound_is_not_an_input_constraint():
    text = HEAD.replace("count >= 1", "count <= 1")
    err = syntax_error(text)
    assert_error(err, at="t.policy:5:31", code="E003", message="'<=' cannot be used as an input constraint",
                 line_text='input members "家庭总人口" : count <= 1', caret=35, width=2, hint=">= 0")


def test_the_file_name_is_the_path_given(write_policy):
    path = write_policy(HEAD + 'category c1 "一\n')
    with pytest.raises(PolicyError) as info:
        parse_file(path)
    assert str(info.value).startswith(f"{path}:7:13: error[E001]: this quoted text is not closed")


def test_parse_reports_only_located_policy_errors():
    """A syntax error is a PolicyError (exit status 1), never a Lark exception leaking out."""
    err = syntax_error("policy p\n  title\n")
    assert err.exit_code == 1
    assert err.diagnostics[0].span.line >= 2


def test_a_number_too_long_to_read_is_a_policy_error():
    err = syntax_error(HEAD + 'category c1 "一"\n  requires members > 1' + "0" * 5000 + "\n")
    assert "this number has 5001 characters; at most 30" in str(err)
