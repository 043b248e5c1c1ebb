"""The ``policy`` command: eval, check, test, schema; exit statuses 0/1/2 and never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from cli.main import main
from policydsl import __version__

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "household.json")
POLICY = str(ROOT / "policies" / "anju_2019.policy")
POLICY_TESTS = ROOT / "policies" / "tests"
RESULT_KEYS = ["policy", "as_of", "in_force", "eligible", "categories", "primary_category", "undetermined",
               "measures", "status", "missing", "values"]


def run(*args: str, input: str | None = None, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), input=input)
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"policy {' '.join(args)} raised {result.exception!r}") from result.exception
    assert result.exit_code == code, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def eval_json(*args: str, input: str | None = None) -> dict:
    return json.loads(run("eval", *args, "--format", "json", input=input).stdout)


# ---------------------------------------------------------------- eval


def test_eval_text(policy):
    out = run("eval", EXAMPLE).stdout
    assert policy.policy.header.title in out
    assert "Eligible 是否属于帮扶对象: yes 是" in out
    assert "category_1" in out and "(primary 主类别)" in out
    assert "safety_net.dibao" in out
    assert "dibao_standard = 560.00 元" in out
    assert "UNCONFIRMED" in out  # the placeholder standard is marked where it is shown
    assert "per_capita_income = 500.00 元" in out
    assert "Why 判定过程" not in out


def test_eval_json_has_the_keys_of_spec_section_9_in_order(policy):
    out = eval_json(EXAMPLE)
    assert list(out) == RESULT_KEYS
    assert list(out["policy"]) == ["id", "title", "sha256"]
    assert out["policy"] == {"id": "anju_2019", "title": policy.policy.header.title, "sha256": policy.sha256}
    assert {k: v for k, v in out.items() if k != "policy"} == {
        "as_of": "2019-09-15", "in_force": True, "eligible": True,
        "categories": ["category_1", "category_2"], "primary_category": "category_1", "undetermined": [],
        "measures": ["archive", "employment.training", "medical.supplementary_insurance", "education.aid",
                     "safety_net.dibao", "safety_net.warmth"],
        "status": None, "missing": [],
        "values": {"dibao_standard": "560.00", "per_capita_income": "500.00"},
    }
    assert list(out["values"]) == ["dibao_standard", "per_capita_income"]


def test_eval_trace_text():
    out = run("eval", EXAMPLE, "--trace").stdout
    assert "Why 判定过程:" in out
    assert "category_4" in out
    assert "income_history[m] / members" in out
    assert "低于 dibao_standard" in out


def test_eval_trace_json_adds_a_trace_after_the_result():
    plain = eval_json(EXAMPLE)
    traced = eval_json(EXAMPLE, "--trace")
    assert list(traced) == [*RESULT_KEYS, "trace"]
    assert {k: v for k, v in traced.items() if k != "trace"} == plain
    ids = [r["id"] for r in traced["trace"]["rules"]]
    assert ids[:5] == ["precondition", "category_1", "category_2", "category_3", "category_4"]
    assert "safety_net.warmth" in ids and "in_assistance" in ids


def test_eval_accepts_a_household_file_with_a_byte_order_mark(tmp_path, example_text):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + example_text.encode("utf-8"))
    assert eval_json(str(path)) == eval_json(EXAMPLE)


def test_eval_reads_standard_input(example_text):
    assert eval_json("-", input=example_text) == eval_json(EXAMPLE)


def test_eval_as_of_overrides_the_household_date():
    out = eval_json(EXAMPLE, "--as-of", "2020-03-15")
    assert out["as_of"] == "2020-03-15"
    assert out["values"]["dibao_standard"] == "600.00"
    assert out["eligible"] is None  # the household has no income for the 2020 window
    assert "income_history.2020-02" in out["missing"]


def test_eval_outside_the_force_window_still_exits_0():
    out = eval_json(EXAMPLE, "--as-of", "2021-06-01")
    assert out["in_force"] is False


def test_eval_with_a_policy_option(tmp_path, example_text):
    assert eval_json(EXAMPLE, "--policy", POLICY)["policy"]["id"] == "anju_2019"


def test_eval_warns_about_an_unknown_field_on_stderr(tmp_path, example_text):
    path = tmp_path / "h.json"
    path.write_text(example_text.replace('"members": 3', '"members": 3, "member": 3'), encoding="utf-8")
    result = run("eval", str(path), "--format", "json")
    assert json.loads(result.stdout)["eligible"] is True
    assert "did you mean 'members'?" in result.stderr


@pytest.mark.parametrize(("change", "where"), [
    (('"members": 3', '"members": 0'), "members (家庭总人口): must be at least 1"),
    (('"savings": 0', '"savings": -1'), "savings"),
    (('"illness"', '"flood"'), "hardship_causes[0]"),
    (('"savings": 0', '"savings": NaN'), "savings"),
])
def test_eval_bad_household_exits_2(tmp_path, example_text, change, where):
    path = tmp_path / "h.json"
    path.write_text(example_text.replace(*change), encoding="utf-8")
    result = run("eval", str(path), code=2)
    assert result.stdout == ""
    assert where in result.stderr
    assert result.stderr.startswith("error: ")


def test_eval_not_json_exits_2_with_its_location(tmp_path):
    path = tmp_path / "h.json"
    path.write_text('{\n  "members": 3,\n}\n', encoding="utf-8")
    result = run("eval", str(path), code=2)
    assert f"{path}:3:1: not valid JSON" in result.stderr


def test_eval_not_json_on_stdin_names_stdin():
    result = run("eval", "-", input="{oops", code=2)
    assert "<stdin>:1:2: not valid JSON" in result.stderr


def test_eval_with_an_invalid_policy_exits_1(tmp_path):
    broken = tmp_path / "broken.policy"
    broken.write_text(Path(POLICY).read_text(encoding="utf-8").replace("annual(dibao_standard)", "dibao_standard"),
                      encoding="utf-8")
    result = run("eval", EXAMPLE, "--policy", str(broken), code=1)
    assert f"{broken}:" in result.stderr
    assert "error[E102]" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (["eval", EXAMPLE, "--bogus"], "No such option"),
    (["eval", EXAMPLE, "--format", "xml"], "Invalid value"),
    (["eval", EXAMPLE, "--as-of", "2019-13-01"], "is not a date"),
    (["eval", EXAMPLE, "--as-of", "2018-06-01"], "before the first value of 'dibao_standard'"),
    (["eval"], "Missing argument"),
    (["eval", "/nonexistent/household.json"], "no such file"),
    (["eval", EXAMPLE, "--policy", "/nonexistent/p.policy"], "no such policy file"),
    (["nosuchcommand"], "No such command"),
])
def test_usage_errors_exit_2(args, message):
    result = run(*args, code=2)
    assert message in result.stderr


def test_eval_of_an_empty_folder_is_an_empty_batch(tmp_path):
    result = run("eval", str(tmp_path))
    assert result.stdout == "" and result.stderr.startswith("0 households: ")


def test_eval_a_huge_integer_exits_2(tmp_path, example_text):
    path = tmp_path / "h.json"
    path.write_text(example_text.replace('"savings": 0', '"savings": 1' + "0" * 5000), encoding="utf-8")
    result = run("eval", str(path), code=2)
    assert "savings (储蓄): 10000000000000000000… is too large" in result.stderr


# ---------------------------------------------------------------- check


def test_check_the_bundled_policy():
    result = run("check")
    assert result.stdout.strip().endswith("ok: 0 errors, 0 warnings")
    assert run("check", POLICY).stdout.strip() == f"{POLICY}: ok: 0 errors, 0 warnings"


def test_check_a_broken_policy(write_policy, mini):
    path = write_policy(mini('category c2 "二" clause "第二条"\n  requires incme 低于 std\n  requires flag + 1 > 2\n'))
    result = run("check", str(path), code=1)
    assert f"{path}:16:12: error[E100]: 'incme' is not defined" in result.stderr
    assert f"{path}:17:12: error[E101]" in result.stderr
    assert "   16 |   requires incme 低于 std" in result.stderr
    assert result.stdout.strip() == f"{path}: invalid: 2 errors, 0 warnings"


def test_check_a_syntax_error(write_policy, mini):
    path = write_policy(mini('category c2 “二”\n'))
    result = run("check", str(path), code=1)
    assert f"{path}:15:13: error[E001]: unexpected character '“'" in result.stderr


def test_check_json(write_policy, mini):
    path = write_policy(mini('category c2 "二" clause "第二条"\n  requires incme 低于 std\n'))
    out = json.loads(run("check", str(path), "--format", "json", code=1).stdout)
    assert (out["file"], out["errors"], out["warnings"]) == (str(path), 1, 0)
    (d,) = out["diagnostics"]
    assert {k: d[k] for k in ("code", "severity", "file", "line", "column", "hint")} == {
        "code": "E100", "severity": "error", "file": str(path), "line": 16, "column": 12,
        "hint": "did you mean 'income'?"}


def test_check_json_of_a_clean_policy():
    out = json.loads(run("check", POLICY, "--format", "json").stdout)
    assert out == {"file": POLICY, "errors": 0, "warnings": 0, "diagnostics": [], "templates": []}


def test_check_warnings_pass_unless_strict(write_policy, mini):
    path = write_policy(mini('define spare "备用" = income * 2\n'))
    result = run("check", str(path))
    assert "warning[W202]" in result.stderr
    assert result.stdout.strip() == f"{path}: ok: 0 errors, 1 warning"
    run("check", str(path), "--strict", code=1)


def test_check_a_missing_file_exits_2():
    assert "no such policy file" in run("check", "/nonexistent/p.policy", code=2).stderr


# ---------------------------------------------------------------- test


def _count_cases() -> int:
    total = 0
    for f in POLICY_TESTS.glob("*.yaml"):
        total += len(yaml.safe_load(f.read_text(encoding="utf-8"))["cases"])
    return total


def test_test_command_passes_on_the_policy_tests():
    result = run("test", str(POLICY_TESTS))
    assert result.stdout.strip().splitlines()[-1] == f"{_count_cases()} passed, 0 failed"
    assert "FAIL" not in result.stdout


def test_test_command_reports_a_wrong_expectation(tmp_path):
    tests = tmp_path / "t.yaml"
    tests.write_text(f"""policy: {POLICY}
as_of: 2019-09-15
base:
  district: 安居区
  applicant: {{urban_worker: true}}
  members: 3
  income_history: {{2019-03: 1500, 2019-04: 1500, 2019-05: 1500, 2019-06: 1500, 2019-07: 1500, 2019-08: 1500}}
  hardship_causes: []
cases:
  - name: right
    expect: {{categories: [category_1]}}
  - name: wrong on purpose
    expect:
      categories: [category_2]
      values: {{per_capita_income: "500.01"}}
""", encoding="utf-8")
    result = run("test", str(tests), code=1)
    out = result.stdout
    assert "FAIL t.yaml::2  wrong on purpose" in out
    assert "categories: expected [category_2]" in out
    assert "got      [category_1]" in out
    assert "values.per_capita_income: expected '500.01', got '500.00'" in out
    assert out.strip().splitlines()[-1] == "1 passed, 1 failed"
    verbose = run("test", str(tests), "-v", code=1).stdout
    assert "PASS t.yaml::1  right" in verbose
    only_right = run("test", str(tests), "-k", "right").stdout
    assert only_right.strip().splitlines()[-1] == "1 passed, 0 failed"


def test_test_command_with_a_malformed_file_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases: [unclosed\n", encoding="utf-8")
    assert "not valid YAML" in run("test", str(bad), code=2).stderr


def test_test_command_with_no_cases_fails(tmp_path):
    result = run("test", str(tmp_path), code=1)
    assert "0 passed, 0 failed" in result.stdout
    assert "no test cases found" in result.stderr


# ---------------------------------------------------------------- schema, version, help


def test_schema_lists_every_input(policy):
    schema = json.loads(run("schema").stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    names = [i.name for i in policy.policy.inputs]
    assert len(names) == 20
    assert set(schema["properties"]) == {"as_of", *names}
    members = schema["properties"]["members"]["anyOf"][0]
    assert members == {"title": "家庭总人口", "type": "integer", "minimum": 1}
    assert schema["$defs"]["cause"]["enum"][0] == "illness"
    assert len(schema["$defs"]["stage"]["enum"]) == 7


def test_schema_of_another_policy(write_policy, mini):
    schema = json.loads(run("schema", "--policy", str(write_policy(mini()))).stdout)
    assert set(schema["properties"]) == {"as_of", "members", "income", "yearly", "flag"}


def test_version():
    assert run("--version").stdout.splitlines()[0] == f"policy, version {__version__}"


@pytest.mark.parametrize("command", [[], ["eval"], ["check"], ["test"], ["schema"]])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_on_every_command(command, flag):
    out = run(*command, flag).stdout
    first = out.splitlines()[0]
    assert first.startswith("Usage: ")
    assert first.endswith(f"{command[0]} [OPTIONS]" if command else "[OPTIONS] COMMAND [ARGS]...") or \
        f" {command[0]} [OPTIONS]" in first
    assert "Options:" in out
    if command == ["eval"]:
        assert "--as-of" in out and "--trace" in out and "--format" in out


def test_one_household_written_to_a_file(tmp_path):
    out = tmp_path / "result.json"
    result = run("eval", EXAMPLE, "--format", "json", "--output", str(out))
    assert result.stdout == ""
    assert json.loads(out.read_text(encoding="utf-8"))["categories"] == ["category_1", "category_2"]
    text = tmp_path / "result.txt"
    run("eval", EXAMPLE, "-o", str(text))
    assert "(policy: the bundled anju_2019.policy" in text.read_text(encoding="utf-8")
    failed = run("eval", EXAMPLE, "-o", str(tmp_path / "no" / "such" / "dir.json"), code=2)
    assert "cannot write it" in failed.stderr


@pytest.mark.parametrize(("args", "status"), [
    (["eval", "examples/household.json", "--format", "json"], 0),
    (["eval", "no-such-household.json"], 2),
    (["check", "tests/policies/does-not-exist.policy"], 2),
    (["no-such-command"], 2),
])
def test_the_installed_entry_point_keeps_exit_statuses_and_output(args: list[str], status: int) -> None:
    """``policy`` (cli.main:run) leaves without tearing the interpreter down: its status and every byte
    it printed must still come out."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "from cli.main import run; run()", *args], capture_output=True,
                          cwd=ROOT, check=False)
    assert done.returncode == status, done.stderr
    if status == 0:
        assert json.loads(done.stdout)["primary_category"] == "category_1"
    else:
        assert done.stderr.strip() and b"Traceback" not in done.stderr

