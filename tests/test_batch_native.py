"""The native reader (``policydsl/_fastread.c``) against the msgspec reader it stands in front of.

Reading a chunk with the native reader first must give exactly the columns the msgspec reader gives
alone, whatever the texts, for every household the msgspec reader reads: what the native reader
declines is read by the msgspec reader, so any difference is a household the native reader accepted
wrongly. Households only the native reader reads must get the reference's rows. (The msgspec reader
itself is held to the reference reader by test_batch_compiled.py.) Skipped where the native reader is
not built, except in CI, which sets POLICYDSL_REQUIRE_NATIVE=1 so that a failed build cannot pass
unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl import load_policy
from policydsl.batch import Item, Worker
from policydsl.batch_read import ColumnReader, Columns, _fastread, split_lines
from tests.test_batch_compiled import (
    BROAD,
    GENERIC,
    POLICY,
    POLICY_2020,
    broad_households,
    chunks,
    generic_households,
)
from tests.test_properties import mutated_households

ROOT = Path(__file__).resolve().parent.parent
BASE_TEXT = (ROOT / "examples" / "household.json").read_text(encoding="utf-8")

pytestmark = pytest.mark.skipif(_fastread is None and not os.environ.get("POLICYDSL_REQUIRE_NATIVE"),
                                reason="the native reader is not built here")


def test_the_native_reader_is_built_where_it_is_required():
    if os.environ.get("POLICYDSL_REQUIRE_NATIVE"):
        assert _fastread is not None, "the native reader failed to build (see the install's warnings)"
    assert ColumnReader(POLICY, native=True).native is not None


def same(a: Columns, b: Columns) -> None:
    assert a.rows == b.rows
    assert a.ids == b.ids and [type(i) for i in a.ids] == [type(i) for i in b.ids]
    assert a.warnings == b.warnings
    assert a.as_of.tolist() == b.as_of.tolist()
    assert a.leaves.keys() == b.leaves.keys()
    for path, x in a.leaves.items():
        y = b.leaves[path]
        assert (x.kind, x.den) == (y.kind, y.den), path
        assert x.known.tolist() == y.known.tolist(), path
        if x.kind == "series":
            assert x.values[0].tolist() == y.values[0].tolist(), path
            assert x.values[1].tolist() == y.values[1].tolist(), path
        else:
            assert x.values.tolist() == y.values.tolist(), path


def compare(policy: Any, texts: list[str]) -> np.ndarray:
    """Both readers on ``texts``: the same columns for every household both read. The native reader may
    also read some the msgspec reader declines (it declines a text holding a colon, for one, to be sure
    no key was given twice): their rows must then be the reference's. Returns which texts the native
    reader read itself."""
    native, alone = ColumnReader(policy, native=True), ColumnReader(policy, native=False)
    assert native.native is not None
    first, only = native.read(texts), alone.read(texts)
    assert set(only.rows) <= set(first.rows)
    same(first.take(np.array([at for at, row in enumerate(first.rows) if row in set(only.rows)], dtype=np.int64)),
         only)
    extra = [Item(f"line {row + 1}", texts[row]) for row in first.rows if row not in set(only.rows)]
    if extra:
        assert Worker(policy, None).rows(extra) == Worker(policy, None, compiled=False).rows(extra)
    in_place = read_in_place(native, texts)
    if in_place is not None:
        same(in_place, first)
    return np.frombuffer(native.native.read(texts)[0], dtype=bool)


def read_in_place(reader: ColumnReader, texts: list[str]) -> Columns | None:
    """The texts as lines of one block, split by the native ``lines`` and read where they lie
    (``read_spans``), as a batch reads a file; None for texts that are not one line each."""
    try:
        raw = [t.encode("utf-8") for t in texts]
    except UnicodeEncodeError:  # a lone surrogate: no file holds it
        return None
    if any(b"\n" in r or r != r.rstrip(b"\r") or not r.strip(b" \t\r\x0b\x0c") for r in raw) or \
            raw[0].startswith(b"\xef\xbb\xbf"):
        return None
    sources, spans = split_lines(b"\n".join(raw) + b"\n", 0)
    assert list(sources) == [f"line {n}" for n in range(1, len(raw) + 1)] and list(spans) == raw
    return reader.read(spans)


PIECES = ['"', "\\", "\\u0041", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\n", "{", "}", "[", "]", ":", ",", " ",
          "\t", "\r", ".", "-", "0", "1", "9", "e", "E", "+", "null", "true", "false", '"x"', "\x00", "\x1f", "é",
          "安", "\u3000", "2019-13", "1e2", "00", "0.001", "12345678901234567", '"members": 2, ']


@st.composite
def edited(draw: st.DrawFn, texts: list[str]) -> str:
    """One of ``texts`` with a few characters inserted, removed or replaced anywhere."""
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(PIECES))
        cut = draw(st.integers(0, 2))
        text = text[:at] + piece + text[at + cut:]
    return text


SHAPES = [json.dumps(json.loads(BASE_TEXT), ensure_ascii=a, separators=s)
          for a in (True, False) for s in ((",", ":"), (", ", ": "))] + [BASE_TEXT]


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(edited(SHAPES), min_size=1, max_size=6))
def test_edited_texts_are_read_alike(texts):
    compare(POLICY, texts)


@settings(max_examples=100, deadline=None, database=None)
@given(chunks())
def test_generated_households_are_read_alike_and_mostly_natively(texts):
    for policy in (POLICY, POLICY_2020):
        compare(policy, texts)


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(mutated_households(), min_size=1, max_size=6), st.booleans())
def test_odd_households_are_read_alike(docs, ascii_only):
    compare(POLICY, [json.dumps(d, ensure_ascii=ascii_only) for d in docs])


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(broad_households(), min_size=1, max_size=10))
def test_a_broad_policy_is_read_alike(texts):
    compare(BROAD, texts)


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(generic_households(), min_size=1, max_size=8))
def test_dates_numbers_and_record_texts_are_read_alike(tmp_path_factory, texts):
    path = tmp_path_factory.mktemp("generic") / "generic.policy"
    path.write_text(GENERIC, encoding="utf-8")
    compare(load_policy(path), texts)


def test_plain_households_are_read_natively():
    texts = [*SHAPES, json.dumps({**json.loads(BASE_TEXT), "id": "h-1"}), '{"id": 510904199001011234}', "{}",
             '{"id": "a:b", "district": "x: y"}']  # colons in texts: the msgspec reader declines these
    assert compare(POLICY, texts).all()


@pytest.mark.parametrize("text", [
    '{"members": 2, "members": 3}',  # a key twice
    '{"income_history": {"2019-03": 1, "2019-03": null}}',  # a month twice
    '{"savings": 1e3}', '{"savings": 1.005}', '{"savings": -1}', '{"savings": "5"}', '{"savings": 01}',
    '{"members": 2.0}', '{"members": 0}', '{"members": 1000000000000000}', '{"saving": 1}',
    '{"as_of": "2019-02-29"}', '{"as_of": "2019-9-1"}', '{"district": "\\ud800"}', '{"id": 1.5}', '{"id": true}',
    '{"id": ' + "1" * 41 + "}", '{"hardship_causes": ["sick"]}', '{"students": [{"stage": "primary", "x": 1}]}',
    '{"income_history": {"2019-3": 1}}', '{"income_history": {"2019-00": 1}}', '{"members": 2} x', "[1]",
    '{"members": 2,}', "\ufeff{}", '{"district": "a\tb"}',
])
def test_what_is_not_plain_is_left_to_the_msgspec_reader(text):
    assert not compare(POLICY, [text]).any()


def test_escapes_are_read_natively_as_msgspec_reads_them():
    texts = ['{"district": "\\u5b89\\u5c45\\u533a", "income_history": {"\\u0032019-03": 1}}',
             '{"district": "a\\"b\\\\c\\/\\n\\ud83d\\ude00"}', '{"\\u006dembers": 2}']
    assert compare(POLICY, texts).all()


def test_without_the_native_reader_a_batch_says_so_and_gives_the_same_rows(tmp_path, monkeypatch):
    import policydsl.batch_read as batch_read
    from tests.test_cli import run

    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(SHAPES) + "\n", encoding="utf-8")
    with_native = run("eval", str(path), "-j", "1")
    assert "note:" not in with_native.stderr
    monkeypatch.setattr(batch_read, "_fastread", None)
    without = run("eval", str(path), "-j", "1")
    assert without.stdout == with_native.stdout
    assert "note: this installation has no native batch reader" in without.stderr
    monkeypatch.setenv("POLICYDSL_NATIVE", "0")  # turned off on purpose: nothing to say
    assert "note:" not in run("eval", str(path), "-j", "1").stderr


@pytest.mark.parametrize("tier", ["1", "0"])
def test_bytes_that_are_not_utf8_get_the_references_error_row(tmp_path, monkeypatch, tier):
    from tests.test_cli import run

    base = SHAPES[2].encode()  # compact, not ASCII-escaped
    lines = [base.replace("安居区".encode(), b"\xff\xfe"), base.replace(b'"2019-03"', b'"2019-0\xff"'),
             base.replace(b'"illness"', b'"ill\xffness"'), base[:-1] + b', "id": "\xff"}', base[:-1] + b', "\xff": 1}',
             base.replace(b'"members":3', b'"members":3 \xff'), base]
    assert len(set(lines)) == len(lines)
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setenv("POLICYDSL_NATIVE", tier)
    rows = run("eval", str(path), "-j", "1").stdout
    assert rows == run("eval", str(path), "-j", "1", "--engine", "reference").stdout
    assert rows.count("{\"source\"") == 7 and rows.count("\"error\"") == 6


def _write_policy(tmp_path: Path, body: str) -> Any:
    path = tmp_path / "p.policy"
    path.write_text('policy p\n  title "p"\n' + body, encoding="utf-8")
    return load_policy(path)


def test_a_policy_wider_than_the_native_reader_is_read_by_msgspec(tmp_path):  # found by review: a traceback
    inputs = "".join(f'input f{i} "f{i}" : boolean\n' for i in range(300))
    policy = _write_policy(tmp_path, inputs + 'category c "c"\n  clause "x"\n  requires f0\n')
    assert ColumnReader(policy, native=True).native is None
    items = [Item("line 1", '{"f0": true, "f299": false}')]
    assert Worker(policy, None).rows(items) == Worker(policy, None, compiled=False).rows(items)


def test_a_set_of_more_members_than_bits_is_left_to_the_reference(tmp_path):  # found by review: a crash
    members = "".join(f'  m{i} "m{i}"\n' for i in range(64))
    policy = _write_policy(tmp_path, f'enum big "big"\n{members}input ks "ks" : set of big\n'
                                     'category c "c"\n  clause "x"\n  requires ks has any of {m63}\n')
    items = [Item("line 1", '{"ks": ["m63", "m0"]}')]
    rows = Worker(policy, None).rows(items)
    assert rows == Worker(policy, None, compiled=False).rows(items) and rows[0]["categories"] == ["c"]


def test_months_in_any_order_are_read_natively_and_a_month_twice_is_not():
    months = [f"{y}-{m:02d}" for y in range(1700, 2040) for m in range(1, 13)][:4000]
    texts = [json.dumps({"income_history": {k: 1 for k in reversed(months)}}),
             '{"income_history": {"2019-05": 1, "2019-03": 2, "2019-04": null}}']
    assert compare(POLICY, texts).all()
    assert not compare(POLICY, ['{"income_history": {"2019-03": 1, "2019-01": 2, "2019-03": null}}']).any()


def test_the_version_says_whether_the_native_reader_is_built():
    from tests.test_cli import run

    assert "native batch reader: built" in run("--version").stdout


def test_spans_outside_the_block_are_refused():
    reader = ColumnReader(POLICY, native=True).native
    block = BASE_TEXT.replace("\n", " ").encode("utf-8")
    at = np.array([0], dtype=np.int64).tobytes()
    for starts, ends in [(at, np.array([len(block) + 1], dtype=np.int64).tobytes()),
                         (np.array([-1], dtype=np.int64).tobytes(), at), (at, b"\0" * 4)]:
        with pytest.raises(ValueError, match="read_spans"):
            reader.read_spans(block, starts, ends)
    assert reader.read_spans(block, at, np.array([len(block)], dtype=np.int64).tobytes())[0] == b"\x01"


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(0, 6).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.one_of(
    st.text(max_size=4),
    st.lists(st.text(max_size=3), min_size=n, max_size=n),
    st.tuples(st.just("pick"), st.lists(st.text(max_size=3), min_size=1, max_size=3)).flatmap(
        lambda p: st.tuples(st.just(p[0]), st.just(p[1]),
                            st.lists(st.integers(0, len(p[1]) - 1), min_size=n, max_size=n))),
    st.tuples(st.just("int"), st.lists(st.integers(-2**63, 2**63 - 1), min_size=n, max_size=n))), max_size=6))))
def test_rows_are_written_as_the_python_writer_writes_them(case):
    """_fastread.rows (the native tier's row writer) against batch_eval._rows (the other tier's)."""
    from policydsl.batch_eval import _int64, _rows

    n, parts = case
    parts = [_int64(part) for part in parts
             if not isinstance(part, str) or "\ud800" not in part]  # texts are UTF-8 (no lone surrogates)
    positions = list(range(n))[::-1]
    native, python = [None] * n, [None] * n
    _fastread.rows(parts, native, positions)
    _rows(parts, python, positions)
    assert [row.decode("utf-8") for row in native] == python


@pytest.mark.parametrize(("parts", "error"), [
    ([["a"]], ValueError),  # a list of another length
    ([("pick", ["a"], np.array([0, 1], dtype=np.int64).tobytes())], IndexError),
    ([("int", b"12345")], ValueError),
    ([("int", [1, 2])], TypeError),
    ([("other", b"")], TypeError),
    ([3], TypeError),
    ([[b"a", 3]], TypeError),
])
def test_rows_refuses_what_it_cannot_write(parts, error):
    target = [None, None]
    with pytest.raises(error):
        _fastread.rows(parts, target, [0, 1])
    with pytest.raises(IndexError):
        _fastread.rows(["a"], target, [0, 5])


def test_a_batch_process_keeps_the_memory_it_frees_for_its_next_block():
    # three blocks' worth of buffers made and freed again and again: without hold_memory, glibc hands the
    # freed top of the heap back to the system each time and the next round faults every page in anew
    script = textwrap.dedent("""
        import resource, sys
        from policydsl.batch_read import _fastread
        held = sys.argv[1] == "hold" and _fastread.hold_memory()
        def faults():
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        bufs = [bytearray(8 << 20) for _ in range(3)]
        del bufs
        before = faults()
        for _ in range(4):
            bufs = [bytearray(8 << 20) for _ in range(3)]
            del bufs
        print(held, faults() - before)
    """)
    def run(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True,
                             cwd=ROOT).stdout.split()
        return out[0], int(out[1])

    held, with_it = run("hold")
    if held != "True":
        pytest.skip("this C library takes no such setting (not glibc)")
    _, without = run("no")
    assert with_it < 500 < without  # 24 MB a round: about 6,000 pages faulted in again without it
