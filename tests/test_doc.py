"""``policy doc``: the policy as a readable document (HTML and Markdown), and a screenshot of the page."""

from __future__ import annotations

import html
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from markupsafe import escape

from policydsl import load_policy
from policydsl.literate import render_doc
from tests.conftest import MINI_HEADER
from tests.test_cli import POLICY, run

TAG = re.compile(r"<[^>]+>")


def page_text(page: str) -> str:
    """What a reader of the HTML sees: tags dropped, entities decoded, whitespace folded."""
    return " ".join(html.unescape(TAG.sub("", page)).split())


@pytest.fixture(scope="module")
def page(policy) -> str:
    return render_doc(policy, "html")


@pytest.fixture(scope="module")
def markdown(policy) -> str:
    return render_doc(policy, "markdown")


def all_rules(policy):
    return [policy.precondition, *policy.categories, *policy.measures, policy.status_precondition, *policy.statuses]


# ---------------------------------------------------------------- content


def test_html_is_a_standalone_printable_page(page):
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "src=" not in page
    assert "@page" in page and "size: A4" in page
    assert "break-inside: avoid" in page
    assert "<h1>" in page and "<h2>" in page


def test_header(policy, page, markdown):
    h = policy.policy.header
    for doc in (page_text(page), markdown):
        assert h.title in doc and h.jurisdiction in doc and h.source in doc
        assert policy.sha256 in doc
        assert "anju_2019.policy" in doc
        assert str(h.in_force[0]) in doc and str(h.in_force[1]) in doc


def test_every_rule_and_its_clause_in_order(policy, page):
    text = page_text(page)
    positions = []
    for rule in all_rules(policy):
        assert f'id="rule-{rule.id.replace(".", "-")}"' in page
        assert rule.id in text and rule.label in text and rule.label_en in text
        assert rule.clause in text
        positions.append(text.index(rule.clause))
    assert positions == sorted(positions)


def test_clauses_are_quoted_in_chinese(policy, page):
    clauses = re.findall(r'<blockquote class="clause" lang="zh-CN"><q>(.*?)</q></blockquote>', page, re.S)
    assert [html.unescape(c) for c in clauses] == [r.clause for r in all_rules(policy)]


def test_every_condition_in_monospace_with_its_phrase_raw(policy, page):
    text = page_text(page)
    for rule in all_rules(policy):
        for c in rule.conditions:
            code = "requires " + " ".join(policy.policy.source[c.expr.span.start:c.expr.span.end].split())
            assert f'<code class="code">{escape(code)}</code>' in page
            if c.phrase_zh:
                assert " ".join(c.phrase_zh.split()) in text  # the Jinja text as written, not rendered
    assert "{% if holds %}" in page and "{{ window }}" in page


def test_group_rules_are_stated(page):
    text = page_text(page)
    for words in ("第一个成立的为主类别", "仅适用于属于帮扶对象的家庭", "取第一个成立的状态"):
        assert words in text


def test_every_parameter_value_with_date_and_mark(policy, page, markdown):
    rows = re.findall(r'<tr class="(\w+)">(.*?)</tr>', page, re.S)
    md_rows = [line for line in markdown.splitlines() if line.startswith("| 20")]
    for param in policy.policy.parameters:
        assert param.name in page and param.label in page_text(page)
        for v in param.values:
            row = next(r for r in rows if str(v.start) in r[1])
            assert v.text in row[1] and param.unit in row[1] and v.note in row[1]
            md_row = next(r for r in md_rows if r.startswith(f"| {v.start} |"))
            assert v.text in md_row and v.note in md_row
            if v.confirmed is False:
                assert row[0] == "unconfirmed" and "⚠ 未确认" in row[1]
                assert "**⚠ 未确认**" in md_row


def test_inputs_and_definitions(policy, page):
    text = page_text(page)
    english = page_text(render_doc(policy, "html", "en"))
    for i in policy.policy.inputs:
        assert i.name in text and i.label in text
        assert policy.symbols[i.name].type.describe() in english
    assert "≥ 1" in text  # members >= 1
    assert "患病、子女上学" in text  # the values a set of causes may take
    for d in policy.policy.definitions:
        assert d.label in text
        assert f'<code class="code">{escape(d.name)} = ' in page


def test_properties_at_the_end(policy, page):
    text = page_text(page)
    for prop in policy.properties:
        assert prop.name in text
        assert text.index(prop.name) > text.index(policy.statuses[-1].clause)


def test_types_are_described_in_the_pages_language(policy, page):
    text = page_text(page)
    assert "申请人（记录）" in text and "12个月合计金额（元）" in text and "致困原因（可多选）" in text
    assert "record" not in text and "amount of money" not in text
    english = page_text(render_doc(policy, "html", "en"))
    assert "an applicant_facts record" in english and "a 12-month amount (元 per year)" in english


def test_english_headings(policy):
    page = render_doc(policy, "html", lang="en")
    assert '<html lang="en">' in page
    assert '<blockquote class="clause" lang="zh-CN">' in page  # the notice stays in Chinese
    assert "All that hold are listed, the first is primary." in page
    assert "UNCONFIRMED" in page


def test_markdown_structure(policy, markdown):
    lines = markdown.splitlines()
    assert lines[0] == f"# {policy.policy.header.title}"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[:4] == ["## 参数", "## 家庭信息（输入）", "## 定义", "## 申请条件"]
    assert "## 帮扶对象类别" in headings and "## 帮扶措施" in headings and "## 解困脱困状态" in headings
    rules = all_rules(policy)
    assert sum(line.startswith("### `") for line in lines) == len(rules) + len(policy.policy.parameters)
    quotes = [line for line in lines if line.startswith("> ")]
    assert len(quotes) == len(rules)
    for rule, quote in zip(rules, quotes, strict=True):
        assert rule.clause in quote
        assert f"### `{rule.id}`" in markdown
    assert any(line.startswith("- `requires applicant.urban_worker`") for line in lines)
    assert "| --- | ---: | --- | --- |" in lines
    assert "<" not in re.sub(r"`[^`]*`", "", markdown).replace("<br>", "")  # no HTML outside code spans


HOSTILE = MINI_HEADER.replace('title "迷你政策"', 'title "迷你<script>alert(1)</script>"') + '''\
category c1 "一 <b>粗</b> & *星* | 竖" clause "第一条 <img src=x onerror=alert(1)> & [链接](http://x)"
  requires income 低于 std
    explain "{% if holds %}<i>是</i>{% endif %}" "yes"
  requires members >= 1
  requires yearly >= 0
  requires flag
'''


def test_policy_text_is_escaped(write_policy):
    policy = load_policy(write_policy(HOSTILE))
    page = render_doc(policy, "html")
    assert "<script>" not in page and "<img" not in page and "<b>粗" not in page and "<i>是" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page and "&amp; *星*" in page
    assert "{% if holds %}" in page
    md = render_doc(policy, "markdown")
    assert "<script>" not in md and "<img" not in md
    assert r"\*星\* \| 竖" in md and r"\[链接\](http://x)" in md


def test_unknown_format(policy):
    from policydsl.diagnostics import UsageError

    with pytest.raises(UsageError):
        render_doc(policy, "pdf")


# ---------------------------------------------------------------- the command


def test_cli_doc_default_is_html_of_the_bundled_policy(policy):
    out = run("doc").stdout
    assert out.startswith("<!DOCTYPE html>") and policy.sha256 in out


def test_cli_doc_markdown_to_a_file(tmp_path):
    target = tmp_path / "anju.md"
    result = run("doc", POLICY, "--format", "markdown", "--output", str(target))
    assert result.stdout == ""
    assert target.read_text(encoding="utf-8").startswith("# 安居区")


def test_cli_doc_errors(tmp_path, write_policy):
    assert "no such" in run("doc", str(tmp_path / "missing.policy"), code=2).stderr
    run("doc", str(write_policy("policy broken\n  nonsense here\n")), code=1)
    run("doc", "--format", "pdf", code=2)
    assert "cannot write" in run("doc", "--output", str(tmp_path / "no" / "such" / "dir.html"), code=2).stderr


# ---------------------------------------------------------------- the rendered page


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """A tiny PNG decoder (8-bit RGB or RGBA, not interlaced): width, height and the unfiltered rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unsupported PNG layout"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r) for r in rows]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: Path, shot: Path, size: str) -> None:
    """Render a page with headless Chromium into a PNG (``size`` as WIDTH,HEIGHT); skip without Chromium."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary found: the screenshot test needs headless Chromium")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={shot.parent / 'profile'}", f"--window-size={size}", f"--screenshot={shot}",
           page.as_uri()]
    try:
        subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("headless Chromium did not finish within 120 s")
    assert shot.is_file() and shot.stat().st_size > 0, "Chromium wrote no screenshot"


def test_screenshot_of_the_page(policy, tmp_path):
    page = tmp_path / "anju_2019.html"
    page.write_text(render_doc(policy, "html"), encoding="utf-8")
    shot = tmp_path / "anju_2019.png"
    screenshot(page, shot, "1000,1400")
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1000, 1400)
    bpp = len(rows[0]) // width
    colours: set[bytes] = set()
    ink = 0
    for row in rows[::4]:  # every fourth row is plenty to tell a page from a blank one
        for x in range(0, len(row), bpp * 2):
            pixel = row[x:x + 3]
            colours.add(pixel)
            ink += pixel != b"\xff\xff\xff"
    assert len(colours) > 50, f"the page looks blank: {len(colours)} colours"
    assert ink > (width // 2) * (height // 4) // 50, "less than 2% of the page is not white"
    # the heading is drawn in the accent colour #1f4e79 (give or take anti-aliasing)
    assert any(abs(p[0] - 0x1F) < 8 and abs(p[1] - 0x4E) < 8 and abs(p[2] - 0x79) < 8 for p in colours)
