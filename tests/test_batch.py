"""Many households: JSON Lines, folders and standard input in; JSONL or CSV rows out, in order, never stopping
on a bad household."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from policydsl.batch import CSV_COLUMNS
from tests.test_cli import EXAMPLE, run

BASE = json.loads(Path(EXAMPLE).read_text(encoding="utf-8"))


def households(n: int) -> list[dict]:
    out = []
    for i in range(n):
        doc = json.loads(json.dumps(BASE))
        doc["id"] = f"h{i}"
        doc["members"] = 1 + i % 6
        out.append(doc)
    return out


def write_jsonl(path: Path, docs: list, broken: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(d, ensure_ascii=False) for d in docs]
    for index, text in (broken or {}).items():
        lines.insert(index, text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_jsonl_file_gives_one_row_per_household_in_order(tmp_path):
    docs = households(7)
    path = write_jsonl(tmp_path / "h.jsonl", docs)
    result = run("eval", str(path), "--jobs", "1")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == [d["id"] for d in docs]
    assert [r["source"] for r in rows] == [f"line {i}" for i in range(1, 8)]
    single = json.loads(run("eval", EXAMPLE, "--format", "json").stdout)
    third = rows[2]  # members 3: the example household itself
    assert {k: v for k, v in third.items() if k not in ("source", "id")} == single
    assert result.stderr.startswith("7 households: ")


def test_broken_lines_get_their_own_rows_and_do_not_stop_the_run(tmp_path):
    path = write_jsonl(tmp_path / "h.jsonl", households(4),
                       {1: "not json", 3: '{"members": 0, "savings": -1}'})
    rows = [json.loads(line) for line in run("eval", str(path), "--jobs", "1").stdout.splitlines()]
    assert [r["source"] for r in rows] == ["line 1", "line 2", "line 3", "line 4", "line 5", "line 6"]
    assert rows[1]["error"] == {"path": "", "message": "not valid JSON at line 1, column 1: Expecting value",
                                "problems": [{"path": "", "message": "not valid JSON at line 1, column 1: "
                                              "Expecting value"}]}
    assert rows[3]["error"]["path"] == "members"
    assert [p["path"] for p in rows[3]["error"]["problems"]] == ["members", "savings"]
    assert [("error" in r) for r in rows] == [False, True, False, True, False, False]


def test_the_summary_counts_and_fail_on_invalid(tmp_path):
    path = write_jsonl(tmp_path / "h.jsonl", households(6), {0: "[1, 2]"})
    result = run("eval", str(path), "--jobs", "1")
    assert "7 households: 5 eligible, 1 not eligible, 0 undetermined, 1 invalid" in result.stderr
    assert "  category_1: 4 (primary for 4)" in result.stderr
    run("eval", str(path), "--jobs", "1", "--fail-on-invalid", code=2)


def test_csv_rows(tmp_path):
    path = write_jsonl(tmp_path / "h.jsonl", households(3), {3: '{"members": 2.5}'})
    rows = list(csv.reader(io.StringIO(run("eval", str(path), "--format", "csv", "-j", "1").stdout)))
    assert rows[0] == [*CSV_COLUMNS[:7], "dibao_standard", "per_capita_income", *CSV_COLUMNS[7:]]
    assert rows[3][:9] == ["line 3", "h2", "true", "category_1", "category_1;category_2",
                           "archive;employment.training;medical.supplementary_insurance;education.aid;"
                           "safety_net.dibao;safety_net.warmth", "", "560.00", "500.00"]
    assert rows[4][0] == "line 4" and rows[4][-2].startswith("members: expected a whole number, got 2.5")


def test_output_file_and_several_processes_keep_input_order(tmp_path):
    docs = households(4500)  # more than two chunks, so that workers really share the work
    path = write_jsonl(tmp_path / "h.jsonl", docs)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    run("eval", str(path), "--output", str(one), "--jobs", "1")
    run("eval", str(path), "--output", str(two), "--jobs", "2")
    assert one.read_bytes() == two.read_bytes()
    assert [json.loads(line)["id"] for line in one.read_text(encoding="utf-8").splitlines()][-1] == "h4499"


def test_a_folder_of_json_files(tmp_path):
    for i, doc in enumerate(households(3)):
        (tmp_path / f"{i:02d}.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "03.json").write_text("{", encoding="utf-8")
    rows = [json.loads(line) for line in run("eval", str(tmp_path), "-j", "1").stdout.splitlines()]
    assert [r["source"] for r in rows] == ["00.json", "01.json", "02.json", "03.json"]
    assert "error" in rows[3]


def test_json_lines_on_standard_input(tmp_path):
    text = "\n".join(json.dumps(d, ensure_ascii=False) for d in households(3)) + "\n"
    rows = [json.loads(line) for line in run("eval", "-", "-j", "1", input=text).stdout.splitlines()]
    assert [r["id"] for r in rows] == ["h0", "h1", "h2"]


def test_one_pretty_printed_household_on_standard_input_is_still_one_household():
    out = run("eval", "-", "--format", "json", input=Path(EXAMPLE).read_text(encoding="utf-8")).stdout
    assert json.loads(out)["primary_category"] == "category_1"


@pytest.mark.parametrize("flags", [["--format", "text"], ["--format", "json"], ["--trace"]])
def test_many_households_are_written_as_rows(tmp_path, flags):
    path = write_jsonl(tmp_path / "h.jsonl", households(2))
    assert "one row each: use --format jsonl or csv" in run("eval", str(path), *flags, code=2).stderr


def test_one_household_as_a_row():
    rows = list(csv.reader(io.StringIO(run("eval", EXAMPLE, "--format", "csv").stdout)))
    assert rows[1][:4] == [EXAMPLE, "", "true", "category_1"]


def test_one_household_as_a_row_starts_no_process_and_compiles_nothing():
    import subprocess
    import sys

    script = ("import sys, os\nfrom cli.main import main\n"
              "try:\n    main(['eval', sys.argv[1], '--format', 'jsonl'])\nexcept SystemExit:\n    pass\n"
              "print('numpy' in sys.modules, 'concurrent.futures' in sys.modules, flush=True)\n")
    out = subprocess.run([sys.executable, "-c", script, EXAMPLE], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent).stdout.splitlines()
    assert json.loads(out[0])["eligible"] is True and out[-1] == "False False"  # 0.07 s instead of 0.12


def test_a_forced_progress_display_does_not_disturb_the_rows(tmp_path):
    path = write_jsonl(tmp_path / "h.jsonl", households(3))
    result = run("eval", str(path), "--progress", "-j", "1")
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["h0", "h1", "h2"]
    assert "evaluating" in result.stderr and "3 households: " in result.stderr


def test_worker_processes_reading_blocks_of_the_file_give_the_same_rows(tmp_path, monkeypatch):
    from policydsl import load_policy
    from policydsl.batch import JsonlFile, Slots, Spooled, render_all

    docs = households(40)
    lines = [json.dumps(d, ensure_ascii=False) for d in docs]
    lines[3], lines[17] = "{not json", ""  # a broken line and a blank one keep their numbers
    path = tmp_path / "h.jsonl"
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))  # a BOM, Windows line ends
    monkeypatch.setattr(JsonlFile, "BLOCK", 500)  # many small blocks, each cut after a newline
    monkeypatch.setattr(JsonlFile, "PER_PROCESS", 1)  # and processes for them, small as the file is
    policy = load_policy()
    handed: list[type] = []
    def run(jobs, views=False):  # the rows of each chunk read before asking for the next (which reuses them)
        chunks = []
        for t, s, size in render_all(policy, JsonlFile(path), "jsonl", jobs=jobs, spool=str(tmp_path), views=views):
            handed.append(type(t))
            chunks.append((t.read() if isinstance(t, Spooled) else bytes(t), s, size))
        return chunks

    one = run(1)
    handed.clear()
    two = run(2)
    assert set(handed) == {bytes}  # copied out of the memory shared with the processes
    assert len(two) > 5
    assert b"".join(t for t, _, _ in one) == b"".join(t for t, _, _ in two)
    handed.clear()
    assert run(2, views=True) == two and set(handed) == {memoryview}  # or lent, as the CLI takes them
    handed.clear()
    three = run(3)  # each process counts its blocks' lines, adding up those before (line numbers in rows)
    assert b"".join(t for t, _, _ in three) == b"".join(t for t, _, _ in one)
    handed.clear()
    monkeypatch.setattr(Slots, "SIZE", 600)  # rows larger than their slot: through spool files instead
    spooled = run(2, views=True)
    assert memoryview in handed and Spooled in handed
    assert b"".join(t for t, _, _ in spooled) == b"".join(t for t, _, _ in one)
    assert sum(s.total for _, s, _ in two) == 39 and sum(size for _, _, size in two) == path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.jsonl"]  # nothing left behind
    rows = [json.loads(line) for line in b"".join(t for t, _, _ in two).splitlines()]
    assert rows[3]["source"] == "line 4" and "error" in rows[3]
    assert rows[17]["source"] == "line 19" and rows[0]["id"] == "h0"


def test_a_date_no_household_can_use_is_one_error(tmp_path):
    path = write_jsonl(tmp_path / "h.jsonl", households(3))
    result = run("eval", str(path), "--as-of", "2018-01-01", code=2)
    assert "before the first value of 'dibao_standard'" in result.stderr and not result.stdout


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line_not_a_traceback(tmp_path):
    path = write_jsonl(tmp_path / "h.jsonl", households(3))
    for fmt in ("jsonl", "csv"):
        result = run("eval", str(path), "--output", "/dev/full", "--format", fmt, code=2)
        assert "/dev/full: cannot write the rows (No space left on device)" in result.stderr


def test_a_file_name_that_is_not_utf8_is_shown_escaped(tmp_path):
    folder = tmp_path / "hh"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(BASE), encoding="utf-8")
    odd = os.fsdecode(b"bad\xff.json")
    (folder / odd).write_text(json.dumps(BASE), encoding="utf-8")
    out = tmp_path / "rows.jsonl"
    run("eval", str(folder), "--output", str(out), "--jobs", "1")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["source"] for r in rows] == ["a.json", "bad\\xff.json"] and rows[1]["eligible"] is True
    out = tmp_path / "rows.csv"
    run("eval", str(folder), "--format", "csv", "--output", str(out), "--jobs", "1")
    assert "\nbad\\xff.json," in out.read_text(encoding="utf-8")


def test_a_csv_row_names_every_problem_of_a_household(tmp_path):
    path = write_jsonl(tmp_path / "h.jsonl", [{**BASE, "members": 0, "savings": "12,000"}])
    (row,) = list(csv.DictReader(io.StringIO(run("eval", str(path), "--format", "csv").stdout)))
    assert row["error"] == ('members: must be at least 1, got 0 | '
                            'savings: expected an amount in 元, got the text "12,000"')


_LINE_PIECES = [b'{"members": 2}', b"", b" ", b"\t", b"\r", b"\x0b", b"\x0c", b"\x1c", "\u3000".encode(), b"\xff",
                "\ufeff".encode(), b"{not json", "安居区".encode(), b"\r\r"]


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize("before", [0, 7])
def test_a_block_read_at_once_gives_what_reading_line_by_line_gives(before, native):
    """``block_lines``, and the native reader's ``lines`` (which a Worker reading natively uses instead),
    number, skip and strip lines as reading the file line by line does."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from policydsl.batch import as_text, items_from_lines
    from policydsl.batch import block_lines as python_block_lines
    from policydsl.batch_read import _fastread, split_lines

    if native and _fastread is None:
        pytest.skip("the native reader is not built here")

    def native_block_lines(data: bytes, rest: bytes, before: int):
        sources, texts = split_lines(data + rest, before)
        return list(sources), list(texts), {}

    block_lines = native_block_lines if native else python_block_lines

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.lists(st.lists(st.sampled_from(_LINE_PIECES), max_size=3).map(b"".join), max_size=6),
           st.booleans(), st.integers(0, 1000))
    def check(lines, ended, cut):
        data = b"".join(line + b"\n" for line in lines)
        if not ended:  # the last line of a file need not end with a newline
            data = data.removesuffix(b"\n")
        head = data[:cut]  # a block as JsonlFile.block_data cuts it: bytes, then the rest of the last line
        rest = data[len(head):]
        rest = rest[:rest.index(b"\n") + 1] if b"\n" in rest else rest
        items = list(items_from_lines(io.BytesIO(head + rest), before=before))
        expected = ([i.source for i in items], [i.text for i in items],
                    {n: i.problem for n, i in enumerate(items) if i.problem is not None})
        sources, texts, problems = block_lines(head, rest, before)
        read = [as_text(t, problems.get(n)) for n, t in enumerate(texts)]
        assert (sources, [t for t, _ in read], {n: p for n, (_, p) in enumerate(read) if p}) == expected

    check()


def test_a_small_file_is_evaluated_in_one_process(tmp_path, monkeypatch):
    from policydsl import batch, load_policy

    path = write_jsonl(tmp_path / "h.jsonl", households(30))

    def no_processes(*args, **kwargs):
        raise AssertionError("processes started for a 30-household file")

    monkeypatch.setattr(batch, "_parallel", no_processes)
    rendered = list(batch.render_all(load_policy(), batch.JsonlFile(path), "jsonl", jobs=4))
    assert sum(summary.total for _, summary, _ in rendered) == 30


def test_spooled_rows_are_appended_to_a_file_a_pipe_or_a_stream_in_order(tmp_path):
    from policydsl.batch import Spooled

    spooled = tmp_path / "rows.jsonl"
    spooled.write_bytes(b'{"a":1}\n' * 1000)
    out = tmp_path / "out.jsonl"
    with open(out, "wb") as stream:  # a file: copied in the kernel
        stream.write(b"first\n")
        Spooled(str(spooled)).write_to(stream)
        stream.write(b"last\n")
    assert out.read_bytes() == b"first\n" + spooled.read_bytes() + b"last\n"
    memory = io.BytesIO()  # no file descriptor: copied by Python
    Spooled(str(spooled)).write_to(memory)
    assert memory.getvalue() == spooled.read_bytes()
    read, write = os.pipe()  # a pipe, as standard output often is
    with open(write, "wb") as stream:
        Spooled(str(spooled)).write_to(stream)
    with open(read, "rb") as stream:
        assert stream.read() == spooled.read_bytes()


# ---------------------------------------------------------------- a run that fails or is stopped

def test_the_output_cannot_be_the_input_or_inside_the_folder_read(tmp_path):  # found by review: data loss
    path = write_jsonl(tmp_path / "h.jsonl", households(3))
    before = path.read_bytes()
    assert "is the input itself" in run("eval", str(path), "--output", str(path), code=2).stderr
    assert path.read_bytes() == before
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(BASE), encoding="utf-8")
    result = run("eval", str(folder), "--output", str(folder / "rows.json"), "--format", "jsonl", code=2)
    assert "would be read as a household" in result.stderr and not (folder / "rows.json").exists()


def _failing_after_one_chunk(error):
    from policydsl import batch

    real = batch.render_all

    def render_all(*args, **kwargs):
        chunks = real(*args, **kwargs)
        yield next(chunks)
        raise error
    return render_all


@pytest.mark.parametrize("error, code, message", [
    (OSError(28, "No space left on device"), 2, "cannot write the rows (No space left on device)"),
    (KeyboardInterrupt(), 130, "interrupted"),
    ("broken pool", 2, "a worker process stopped before its households were done"),
])
def test_a_run_that_fails_midway_leaves_the_earlier_output_as_it_was(tmp_path, monkeypatch, error, code, message):
    from policydsl import batch
    from policydsl.forked import WorkerStopped

    path = write_jsonl(tmp_path / "h.jsonl", households(3))
    out = tmp_path / "rows.jsonl"
    out.write_text("the rows of last month\n", encoding="utf-8")
    monkeypatch.setattr(batch, "render_all", _failing_after_one_chunk(
        WorkerStopped() if error == "broken pool" else error))
    result = run("eval", str(path), "--output", str(out), code=code)
    assert message in result.stderr and "left as it was" in result.stderr
    assert out.read_text(encoding="utf-8") == "the rows of last month\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.jsonl", "rows.jsonl"]  # no partial file left


def test_the_output_keeps_its_permissions_and_a_new_one_gets_the_usual_ones(tmp_path):
    path = write_jsonl(tmp_path / "h.jsonl", households(3))
    out = tmp_path / "rows.jsonl"
    run("eval", str(path), "--output", str(out))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    out.chmod(0o640)
    run("eval", str(path), "--output", str(out))
    assert out.stat().st_mode & 0o777 == 0o640 and len(out.read_text().splitlines()) == 3


def test_rows_that_cannot_be_spooled_go_through_the_pipe(tmp_path):
    from policydsl.batch import Summary, _spill

    missing = str(tmp_path / "gone")  # a temporary folder that is full or gone
    assert _spill((b"rows\n", Summary()), 5, missing)[0] == b"rows\n"


def _big_file(tmp_path: Path, lines: int) -> Path:
    line = json.dumps(BASE, ensure_ascii=False).encode("utf-8") + b"\n"
    path = tmp_path / "big.jsonl"
    path.write_bytes(line * lines)
    return path


def _policy_command() -> list[str]:
    import sys
    return [sys.executable, "-c", "from cli.main import run; run()"]  # as the installed `policy` starts


def test_stopping_a_batch_leaves_no_partial_output_and_no_temporary_files(tmp_path):
    import signal
    import subprocess
    import time

    path = _big_file(tmp_path, 60_000)
    out = tmp_path / "out" / "rows.jsonl"
    out.parent.mkdir()
    proc = subprocess.Popen([*_policy_command(), "eval", str(path), "--output", str(out), "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parent.parent)
    deadline = time.monotonic() + 30
    def writing() -> bool:  # rows are being written to the partial file
        for p in out.parent.iterdir():
            try:
                if p.name.startswith(".rows.jsonl.") and p.stat().st_size:
                    return True
            except FileNotFoundError:  # renamed to the output just now: the batch is done
                pass
        return False

    while not writing() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the batch finished before it could be stopped")
    assert proc.returncode == 143 and b"interrupted" in stderr and b"Traceback" not in stderr
    assert list(out.parent.iterdir()) == []  # neither the output, nor its partial file, nor spooled rows


def test_a_reader_that_stops_early_is_not_an_error(tmp_path):
    import subprocess

    path = _big_file(tmp_path, 3000)
    proc = subprocess.Popen([*_policy_command(), "eval", str(path), "--jobs", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=Path(__file__).parent.parent)
    assert proc.stdout is not None
    proc.stdout.readline()  # as `| head -1` does
    proc.stdout.close()
    stderr = proc.stderr.read() if proc.stderr else b""
    assert proc.wait(timeout=60) == 0
    assert b"error" not in stderr and b"Traceback" not in stderr and b"Exception" not in stderr


def test_json_lines_on_standard_input_whose_first_line_is_not_utf8_give_an_error_row_for_it():
    line = json.dumps(BASE, ensure_ascii=False)
    stdin = "\n".join([line.replace("安居区", "\udcff"), line, line]) + "\n"  # \udcff: the byte 0xff, as read
    result = CliRunner().invoke(main, ["eval", "-", "-j", "1"], input=stdin.encode("utf-8", "surrogateescape"))
    rows = [json.loads(row) for row in result.stdout.splitlines()]
    assert result.exit_code == 0 and len(rows) == 3
    assert rows[0]["error"]["message"].startswith("is not UTF-8 text") and "eligible" in rows[1]


def test_a_file_we_may_write_in_a_folder_we_may_not_is_written_directly(tmp_path, monkeypatch):
    import tempfile

    def no_new_files(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    path = write_jsonl(tmp_path / "h.jsonl", households(2))
    out = tmp_path / "rows.jsonl"
    out.write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(tempfile, "mkstemp", no_new_files)
    run("eval", str(path), "--output", str(out), "-j", "1")
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    result = run("eval", str(path), "--output", str(tmp_path / "new.jsonl"), "-j", "1", code=2)
    assert "new.jsonl: cannot write it (Permission denied)" in result.stderr


def test_blocks_cover_the_file_in_whole_lines_and_shrink_towards_its_end(tmp_path, monkeypatch):
    from policydsl.batch import JsonlFile

    lines = [json.dumps({"n": i, "pad": "x" * (i % 97)}).encode() + b"\n" for i in range(20_000)]
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"".join(lines))
    monkeypatch.setattr(JsonlFile, "BLOCK", 64 << 10)
    monkeypatch.setattr(JsonlFile, "SMALLEST", 4 << 10)
    blocks = list(JsonlFile(path).blocks(jobs=2))
    data = path.read_bytes()
    assert [offset for offset, _, _ in blocks] == [0, *(o + n for o, n, _ in blocks[:-1])]
    assert sum(n for _, n, _ in blocks) == len(data)
    for offset, length, before in blocks:
        assert data[offset + length - 1:offset + length] == b"\n"  # whole lines
        assert before == data[:offset].count(b"\n")
    sizes = [n for _, n, _ in blocks]
    assert sizes[0] >= 60 << 10 and sizes[-1] < 8 << 10  # big first, small last: the processes finish together
    for jobs in (1, 2, 3, 7):  # forked processes count their blocks' lines in a table this size
        assert len(list(JsonlFile(path).cuts(jobs))) <= JsonlFile(path).most_blocks()
    path.write_bytes(data + b'{"added": "later"}\n')  # cut as it was when the batch began
    assert list(JsonlFile(path).cuts(2, total=len(data))) == [(o, n) for o, n, _ in blocks]


def test_batches_with_processes_in_two_threads_take_turns_and_both_get_their_rows(tmp_path, monkeypatch):
    import threading

    from policydsl import load_policy
    from policydsl.batch import JsonlFile, render_all

    monkeypatch.setattr(JsonlFile, "BLOCK", 2000)
    monkeypatch.setattr(JsonlFile, "SMALLEST", 500)
    monkeypatch.setattr(JsonlFile, "PER_PROCESS", 1)
    policy = load_policy()
    paths = [write_jsonl(tmp_path / f"h{k}.jsonl", households(30 + 7 * k)) for k in range(2)]
    alone = [b"".join(bytes(t) for t, _, _ in render_all(policy, JsonlFile(p), "jsonl", jobs=1)) for p in paths]
    got: dict[int, bytes] = {}
    def batch(k: int) -> None:
        got[k] = b"".join(bytes(t) for t, _, _ in render_all(policy, JsonlFile(paths[k]), "jsonl", jobs=2))

    threads = [threading.Thread(target=batch, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [got.get(0), got.get(1)] == alone


def test_two_batches_with_processes_taken_turn_about_in_one_thread_are_refused(tmp_path, monkeypatch):
    from policydsl import load_policy
    from policydsl.batch import JsonlFile, render_all
    from policydsl.diagnostics import UsageError

    monkeypatch.setattr(JsonlFile, "PER_PROCESS", 1)
    policy = load_policy()
    path = write_jsonl(tmp_path / "h.jsonl", households(5))
    first = render_all(policy, JsonlFile(path), "jsonl", jobs=2)
    next(first)
    with pytest.raises(UsageError, match="already running in this thread"):
        next(render_all(policy, JsonlFile(path), "jsonl", jobs=2))
    first.close()  # and then another may start
    assert sum(s.total for _, s, _ in render_all(policy, JsonlFile(path), "jsonl", jobs=2)) == 5


def test_rows_kept_by_a_caller_stay_as_they_were(tmp_path, monkeypatch):  # found by review
    from policydsl import load_policy
    from policydsl.batch import JsonlFile, render_all

    monkeypatch.setattr(JsonlFile, "BLOCK", 2000)
    monkeypatch.setattr(JsonlFile, "SMALLEST", 500)
    monkeypatch.setattr(JsonlFile, "PER_PROCESS", 1)
    policy = load_policy()
    path = write_jsonl(tmp_path / "h.jsonl", households(40))
    kept = [rows for rows, _, _ in render_all(policy, JsonlFile(path), "jsonl", jobs=2)]
    alone = b"".join(rows for rows, _, _ in render_all(policy, JsonlFile(path), "jsonl", jobs=1))
    assert len(kept) > 4 and b"".join(kept) == alone  # each chunk its own bytes, not the reused memory
    lent = [rows for rows, _, _ in render_all(policy, JsonlFile(path), "jsonl", jobs=2, views=True)]
    with pytest.raises(ValueError, match="released"):  # a lent view kept past its chunk: an error, not stale rows
        bytes(lent[0])


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_file_that_cannot_be_read_midway_says_so_and_leaves_the_output_as_it_was(tmp_path, monkeypatch, jobs):
    from policydsl import batch

    monkeypatch.setattr(batch.JsonlFile, "BLOCK", 2000)
    monkeypatch.setattr(batch.JsonlFile, "SMALLEST", 500)
    monkeypatch.setattr(batch.JsonlFile, "PER_PROCESS", 1)
    path = write_jsonl(tmp_path / "h.jsonl", households(40))
    out = tmp_path / "rows.jsonl"
    out.write_text("the rows of last month\n", encoding="utf-8")
    real_read = batch._read_block
    real_open = open
    def failing_read(p, offset, length):  # a disk error on the fourth block (in a worker process)
        if offset > 3 * 2000:
            with batch.reading(p):
                raise OSError(5, "Input/output error")
        return real_read(p, offset, length)

    def failing_open(file, *args, **kwargs):  # the same when one process reads the whole file
        stream = real_open(file, *args, **kwargs)
        if str(file) == str(path):
            reads = []
            def read(size=-1):
                reads.append(size)
                if len(reads) > 2:
                    raise OSError(5, "Input/output error")
                return type(stream).read(stream, size)
            stream.read = read  # type: ignore[method-assign]
        return stream

    monkeypatch.setattr(batch, "_read_block", failing_read)
    if jobs == "1":
        monkeypatch.setattr(batch.JsonlFile, "BLOCK", 1000)
        monkeypatch.setattr("builtins.open", failing_open)
    result = run("eval", str(path), "--output", str(out), "--jobs", jobs, code=2)
    assert "h.jsonl: cannot read it (Input/output error)" in result.stderr and "left as it was" in result.stderr
    assert "cannot write" not in result.stderr
    assert out.read_text(encoding="utf-8") == "the rows of last month\n"
