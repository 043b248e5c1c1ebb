"""``policy``: evaluate households, check policies, run policy tests, print the household schema.

Thin by design: every command parses its flags, calls the library, prints. Exit status: 0 a result was
produced, 1 the policy (or a test) failed, 2 bad input or usage. No user error prints a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import Callable
from datetime import date
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

# numpy's OpenBLAS starts a thread per core, which then spin on the cores that batch processes use; policydsl
# only does elementwise work, in processes of its own (before numpy is imported; an explicit setting wins)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from policydsl import __version__, default_policy_path, load_policy
from policydsl.diagnostics import PolicyDslError, PolicyError, UsageError
from policydsl.evaluator import Evaluator
from policydsl.household import load_json, read_household
from policydsl.render import render_text, trace_json

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def user_errors(fn: F) -> F:
    """Turn every policydsl error into its message and exit status, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PolicyDslError as exc:
            _fail(f"error: {exc}" if not isinstance(exc, PolicyError) else str(exc), exc.exit_code)
        except BrokenPipeError:  # the reader went away (| head): stop quietly, without a last failing flush
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
    return wrapper  # type: ignore[return-value]


def _as_of(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date; write it as YYYY-MM-DD, e.g. 2019-09-15") from None


def _read_text(path: str) -> tuple[str, str]:
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8-sig"), "<stdin>"
        return Path(path).read_text(encoding="utf-8-sig"), path
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a household file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: is not UTF-8 text; save it as UTF-8 (files from some Chinese Windows tools are "
                         "GBK-encoded)") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None


def _native_status() -> str:
    """For --version: whether the native batch reader was built (found without importing it or numpy)."""
    from importlib.util import find_spec

    return "\nnative batch reader: " + ("built" if find_spec("policydsl._fastread") else
                                       "not built (batches are read more slowly; see docs/batch.md)")


POLICY_OPTION = click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
                             help="Policy file to apply (default: the bundled anju_2019 policy).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="policy", message="%(prog)s, version %(version)s" + _native_status())
def main() -> None:
    """policydsl: social-assistance policy as readable, checked, exactly evaluated rules."""


@main.command("eval")
@click.argument("household", type=str)
@POLICY_OPTION
@click.option("--as-of", "as_of", metavar="DATE", help="Assessment date YYYY-MM-DD (wins over the household's "
              "own 'as_of'; default today).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl", "csv"]), default=None,
              help="One household: text (default) or json. Many: jsonl (default) or csv, one row each.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Write the result (or the rows, for many households) to this file instead of standard output.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Processes for many households (default: all cores); output stays in input order.")
@click.option("--fail-on-invalid", is_flag=True, help="Exit 2 if any household of a batch was invalid.")
@click.option("--engine", type=click.Choice(["compiled", "reference"]), default="compiled", show_default=True,
              help="Many households: the compiled column-wise path (the reference answers what it cannot), "
                   "or the reference evaluator alone (slower; to check the other).")
@click.option("--progress/--no-progress", default=None,
              help="Show progress on a terminal (default: only when standard error is a terminal).")
@click.option("--trace", is_flag=True, help="Show why each rule held or not (in JSON: a 'trace' field).")
@click.option("--explain", "explain", is_flag=True,
              help="With --format json: add an 'explanation' field, the letter for the household (see --lang).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Language of the explanation.")
@user_errors
def eval_cmd(household: str, policy_path: str | None, as_of: str | None, fmt: str | None, output: str | None,
             jobs: int | None, fail_on_invalid: bool, engine: str, progress: bool | None, trace: bool, explain: bool,
             lang: str) -> None:
    """Evaluate a household (a JSON file, or - for standard input) or many: a JSON Lines file (.jsonl),
    JSON Lines on standard input, or a folder of JSON files."""
    day = _as_of(as_of)
    items, first_text = _batch_items(household)
    if items is not None or fmt in ("jsonl", "csv"):
        if fmt in ("text", "json") or trace or explain:
            raise click.UsageError("many households are written one row each: use --format jsonl or csv "
                                   "(without --trace or --explain)")
        from policydsl.batch import Item
        policy = load_policy(policy_path)
        if items is None:  # one household, written as one row
            text = first_text if first_text is not None else _read_text(household)[0]
            items = iter([Item("<stdin>" if household == "-" else household, text)])
            jobs, engine = 1, "reference"  # the same row, without starting processes or compiling for one
        if output:
            _check_output(household, output)
        _run_batch(policy, items, day, fmt or "jsonl", output, jobs, fail_on_invalid, progress,
                   _input_size(household), compiled=engine == "compiled")
        return
    fmt = fmt or "text"
    if explain and fmt != "json":
        raise click.UsageError("--explain adds the letter to the JSON result: use it with --format json, "
                               "or run 'policy explain' for the letter alone")
    policy = load_policy(policy_path)
    text, source = (first_text, "<stdin>") if household == "-" and first_text is not None \
        else _read_text(household)
    doc = load_json(text, source)
    hh = read_household(policy, doc, source)
    # the text summary always says why a household is not eligible, which needs the trace
    result = Evaluator(policy).evaluate(hh, day, trace=trace or explain or fmt == "text")
    for w in result.warnings:
        click.echo(f"warning: {source}: {w}", err=True)
    if fmt == "json":
        out = result.to_json()
        if explain:
            from policydsl.explain import Explainer
            out["explanation"] = Explainer(policy).render(result, lang, "text")
        if trace:
            out["trace"] = trace_json(result)
        shown = json.dumps(out, ensure_ascii=False, indent=2) + "\n"
    else:
        result.warnings = []
        where = policy_path or "the bundled anju_2019.policy; pass --policy FILE to apply another file"
        shown = render_text(result, trace=trace) + f"\n(policy: {where})\n"
    _emit(shown, output)


def _emit(text: str, output: str | None) -> bool:
    """The text to standard output, or to the file ``output``; True when it went to a file."""
    if output is None:
        click.echo(text, nl=False)
        return False
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{output}: cannot write it ({exc.strerror})") from None
    return True


def _batch_items(household: str) -> tuple[Any, str | None]:
    """Many households (an iterator of items) or one; for standard input, the text already read."""
    from policydsl import batch

    if household == "-":
        stdin = sys.stdin.buffer
        first = stdin.readline()
        if batch.whole_object(first):
            head = [first]
            while True:  # read on to the next household line: is there more than one?
                line = stdin.readline()
                head.append(line)
                if not line or line.strip():
                    break
            if line:
                return batch.items_from_lines(stdin, head), None
            return None, first.decode("utf-8-sig")
        rest = stdin.read()
        try:
            text = (first + rest).decode("utf-8-sig")
        except UnicodeDecodeError:
            lines_after = [line for line in rest.splitlines() if line.strip()][:2]
            if any(map(batch.whole_object, lines_after)):  # JSON Lines whose first line is not UTF-8: its row says so
                return batch.items_from_lines(io.BytesIO(first + rest), ()), None
            raise UsageError("-: is not UTF-8 text; save it as UTF-8 (files from some Chinese Windows tools "
                             "are GBK-encoded)") from None
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1 and not _one_document(text) and sum(map(batch.whole_object, (
                line.encode() for line in lines[1:3]))) >= 1:  # JSON Lines whose first line is broken
            return batch.items_from_lines(io.BytesIO(first + rest), ()), None
        return None, text
    path = Path(household)
    if path.is_dir():
        return batch.items_from_folder(path), None
    if path.suffix.lower() in (".json", ".txt") and path.is_file() and path.stat().st_size < 50_000_000:
        data = path.read_bytes()
        raw_lines = [line for line in data.splitlines() if line.strip()]
        if len(raw_lines) > 1 and all(batch.whole_object(line) for line in raw_lines[:2]):
            raise UsageError(f"{household}: holds one household per line (JSON Lines); name it .jsonl "
                             "to evaluate them all")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        try:
            path.open("rb").close()
        except OSError as exc:
            raise UsageError(f"{household}: cannot read it ({exc.strerror})") from None
        return batch.JsonlFile(path), None
    return None, None


def _one_document(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except (json.JSONDecodeError, RecursionError):
        return False


def _input_size(household: str) -> int | None:
    """How much input there is, for a progress bar: bytes of a file, files of a folder; None for a stream."""
    path = Path(household)
    if household == "-" or not path.exists():
        return None
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.suffix.lower() == ".json")
    return path.stat().st_size


class _Stopped(Exception):
    """SIGTERM during a batch, turned into an exception so that the batch cleans up as after Ctrl-C."""


def _on_term(signum: int, frame: Any) -> None:
    raise _Stopped


def _check_output(household: str, output: str) -> None:
    """Refuse an output that would destroy the input or be read as one of its households."""
    target, source = Path(output), Path(household)
    if household != "-" and target.exists() and source.exists() and target.samefile(source):
        raise UsageError(f"{output}: is the input itself; write the rows to another file")
    if source.is_dir() and target.suffix.lower() == ".json" and target.resolve().parent == source.resolve():
        raise UsageError(f"{output}: is inside the folder being read, and would be read as a household; "
                         "write it elsewhere")


def _open_output(output: str) -> tuple[Any, str | None]:
    """The stream to write the rows to, and the temporary file behind it: the rows go to a file beside
    the output, renamed to it only when every row is written (an earlier output stays as it was if the
    run fails or is stopped). A device, a pipe or a link (/dev/null, a FIFO) is written to directly."""
    import tempfile  # only batches come here: one household's start-up stays without it

    target = Path(output)
    try:
        if target.is_symlink() or (target.exists() and not target.is_file()):
            return open(output, "w", encoding="utf-8", newline=""), None
        try:
            fd, partial = tempfile.mkstemp(dir=target.resolve().parent, prefix=f".{target.name}.", suffix=".partial")
        except PermissionError:
            if not (target.exists() and os.access(target, os.W_OK)):
                raise
            return open(output, "w", encoding="utf-8", newline=""), None  # a file we may write, in a folder we may not
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
        os.chmod(partial, mode)
        return open(fd, "w", encoding="utf-8", newline=""), partial
    except OSError as exc:
        raise UsageError(f"{output}: cannot write it ({exc.strerror})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _run_batch(policy: Any, items: Any, day: date | None, fmt: str, output: str | None, jobs: int | None,
               fail_on_invalid: bool, progress: bool | None, size: int | None = None, compiled: bool = True) -> None:
    from policydsl.batch import Summary, Worker, Writer, default_jobs, render_all
    from policydsl.forked import WorkerStopped

    show = sys.stderr.isatty() if progress is None else progress
    summary = Summary()
    if day is not None:  # a date before a parameter's first value fits no household: say so once
        Evaluator(policy).parameter_values(day)
    worker = Worker(policy, day, compiled)
    worker.hold_memory()  # this process does nothing else until it exits
    if compiled:
        from policydsl.batch_read import without_native
        reason = worker.why_reference or without_native()
        if reason:
            click.echo(f"note: {reason}", err=True)
    where = output or "standard output"
    bar: Any = None
    out: Any = sys.stdout
    partial: str | None = None
    done_writing = False
    before_term = signal.signal(signal.SIGTERM, _on_term)
    try:
        if output:
            out, partial = _open_output(output)
        if show and size:  # a bar over the input evaluated so far
            bar = click.progressbar(length=size, label="evaluating", file=sys.stderr, show_pos=False, show_eta=True)
            bar.__enter__()
        writer = Writer(out, fmt, policy.report)
        spool = str(Path(output).resolve().parent) if output else None  # worker processes' rows, for a moment
        for rows, part, done in render_all(policy, items, fmt, day, jobs or default_jobs(), compiled, spool, worker,
                                             views=True):
            writer.write_rows(rows)
            summary.merge(part)
            if bar is not None:
                bar.update(done)
            elif show:
                click.echo(f"\r{summary.total:,} households…", nl=False, err=True)
        if output:
            out.close()  # here, not only in finally: a full disk may only show when the last rows are flushed
            if partial is not None:
                os.replace(partial, output)
        done_writing = True
    except BrokenPipeError:
        raise  # the reader of standard output has had enough (| head): not an error
    except (UsageError, WorkerStopped) as exc:  # the households' file cannot be read any more, a worker killed
        raise UsageError(f"{exc}" + (f"; {output} is left as it was" if output else "")) from None
    except OSError as exc:  # a full disk: one line, no traceback, nothing half-said
        raise UsageError(f"{where}: cannot write the rows ({exc.strerror})"
                         + (f"; {output} is left as it was" if output else "")) from None
    except (KeyboardInterrupt, _Stopped) as exc:
        message = "interrupted" + (f"; {output} is left as it was" if output else "")
        _fail(message, 130 if isinstance(exc, KeyboardInterrupt) else 143)
    finally:
        signal.signal(signal.SIGTERM, before_term)
        if output and not out.closed:
            with contextlib.suppress(OSError):
                out.close()
        if partial is not None and not done_writing:
            with contextlib.suppress(OSError):
                os.unlink(partial)
        if bar is not None:
            bar.__exit__(None, None, None)
    if show and bar is None:
        click.echo("\r", nl=False, err=True)
    click.echo(summary.render(), err=True)
    if fail_on_invalid and summary.invalid:
        sys.exit(2)


@main.command("diff")
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--households", "households", type=click.Path(), default=None,
              help="JSON Lines file (or folder of JSON files) of households: show whom the change moves.")
@click.option("--as-of", "as_of", metavar="DATE", help="Assessment date for every household (default: their own).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Write the report to this file.")
@user_errors
def diff_cmd(old: str, new: str, households: str | None, as_of: str | None, fmt: str, output: str | None) -> None:
    """What differs between two policies, rule by rule; with --households, whom it moves."""
    from policydsl import diff

    day = _as_of(as_of)
    before, after = load_policy(old), load_policy(new)
    changes = diff.compare(before, after)
    result = None
    if households is not None:
        items, _ = _batch_items(households)
        if items is None:
            raise UsageError(f"{households}: give a JSON Lines file (.jsonl) or a folder of JSON files")
        result = diff.impact(before, after, items, day)
    if fmt == "json":
        text = json.dumps(diff.to_json(changes, result), ensure_ascii=False, indent=2, default=str) + "\n"
    elif fmt == "html":
        text = diff.render_html(changes, result)
    else:
        text = diff.render_text(changes, result)
    _emit(text, output)


@main.command("explain")
@click.argument("household", type=str)
@POLICY_OPTION
@click.option("--as-of", "as_of", metavar="DATE", help="Assessment date YYYY-MM-DD (wins over the household's "
              "own 'as_of'; default today).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "html"]), default="text", show_default=True,
              help="html: one standalone, printable page.")
@click.option("--templates", "templates", type=click.Path(file_okay=False), default=None,
              help="Folder of templates (default: templates/ beside the policy).")
@user_errors
def explain_cmd(household: str, policy_path: str | None, as_of: str | None, lang: str, fmt: str,
                templates: str | None) -> None:
    """Explain the result to the family: why, why not, what would change, what to bring."""
    from policydsl.explain import Explainer

    day = _as_of(as_of)
    policy = load_policy(policy_path)
    text, source = _read_text(household)
    hh = read_household(policy, load_json(text, source), source)
    result = Evaluator(policy).evaluate(hh, day, trace=True)
    for w in result.warnings:
        click.echo(f"warning: {source}: {w}", err=True)
    click.echo(Explainer(policy, Path(templates) if templates else None).render(result, lang, fmt), nl=False)


@main.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--analyze", is_flag=True, help="Also run the policy analysis (needs z3) and report unreachable rules, "
              "redundant conditions and violated properties as warnings W301-W304.")
@user_errors
def check_cmd(file: str | None, fmt: str, strict: bool, analyze: bool) -> None:
    """Check a policy file and report every problem found (exit 1 on errors)."""
    path = file or str(default_policy_path())
    template_problems: list[str] = []
    sources: PolicyError
    try:
        policy = load_policy(path)
        diags, errors = policy.warnings, 0
        sources = PolicyError([], policy.policy.sources or policy.policy.source)
        from policydsl.explain import Explainer
        template_problems = Explainer(policy).check_templates()
        if analyze:
            from policydsl.analysis import analyze as run_analysis
            diags = [*diags, *run_analysis(policy, path).diagnostics()]
    except PolicyError as exc:
        diags, sources = exc.diagnostics, exc
        errors = sum(d.severity == "error" for d in diags)
    errors += len(template_problems)
    warnings = len(diags) - errors + len(template_problems)
    if fmt == "json":
        click.echo(json.dumps({"file": path, "errors": errors, "warnings": warnings,
                               "diagnostics": [d.to_json() for d in diags], "templates": template_problems},
                              ensure_ascii=False, indent=2))
    else:
        for d in diags:
            click.echo(d.render(sources.source_for(d)), err=True)
            click.echo("", err=True)
        for problem in template_problems:
            click.echo(f"{problem}\n", err=True)
        verdict = "invalid" if errors else "fails --strict" if strict and warnings else "ok"
        click.echo(f"{path}: {verdict}: {errors} error{'s' * (errors != 1)}, "
                   f"{warnings} warning{'s' * (warnings != 1)}")
    if errors or (strict and warnings):
        sys.exit(1)


@main.command("analyze")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Write every witness household to DIR/<finding-id>.json (each one `policy eval` accepts).")
@user_errors
def analyze_cmd(file: str | None, fmt: str, out: str | None) -> None:
    """Overlaps, unreachable rules, redundant conditions, stated properties and bounds, with witness households."""
    from policydsl import analysis

    if not analysis.available():
        _fail(f"error: policy analyze needs the z3 SMT solver; install it with: {analysis.INSTALL_HINT}", 2)
    path = file or str(default_policy_path())
    report = analysis.analyze(load_policy(path), path)
    if out:
        report.write_witnesses(Path(out))
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(analysis.render_text(report))
        if out:
            click.echo(f"(witness households written to {out}/)")


@main.command("test")
@click.argument("path", required=False, type=click.Path())
@click.option("-v", "--verbose", is_flag=True, help="List every case, not only the failures.")
@click.option("-k", "keyword", default=None, help="Run only the cases whose name contains this text.")
@user_errors
def test_cmd(path: str | None, verbose: bool, keyword: str | None) -> None:
    """Run policy test cases (YAML files; default: policies/tests). Exit 1 if any fails."""
    from policydsl.testing import Runner, discover, load_cases

    root = Path(path) if path else _default_tests()
    runner = Runner()
    passed = failed = 0
    for f in discover(root):
        for case in load_cases(f):
            if keyword and keyword not in case.name:
                continue
            outcome = runner.run(case)
            if outcome.ok:
                passed += 1
                if verbose:
                    click.echo(f"PASS {case.id}  {case.name}")
                continue
            failed += 1
            click.echo(f"FAIL {case.id}  {case.name}")
            for line in outcome.failures:
                click.echo("     " + line.replace("\n", "\n     "))
    click.echo(f"{passed} passed, {failed} failed")
    if not passed and not failed:
        where = f"matching -k {keyword!r} " if keyword else ""
        click.echo(f"no test cases {where}found under {root}", err=True)
        sys.exit(1)
    if failed:
        sys.exit(1)


def _default_tests() -> Path:
    local = Path("policies/tests")
    if local.is_dir():
        return local
    return default_policy_path().parent / "tests"


@main.command("schema")
@POLICY_OPTION
@user_errors
def schema_cmd(policy_path: str | None) -> None:
    """Print the JSON Schema of the household input, derived from the policy's declarations."""
    from policydsl.schema import household_schema

    click.echo(json.dumps(household_schema(load_policy(policy_path)), ensure_ascii=False, indent=2))


@main.command("doc")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["html", "markdown"]), default="html", show_default=True,
              help="html: one standalone page, printable on A4.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Language of the headings and labels (the notice is always quoted in Chinese).")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Write the document to this file instead of standard output.")
@user_errors
def doc_cmd(file: str | None, fmt: str, lang: str, output: str | None) -> None:
    """The policy as a readable document: each rule beside the clause of the notice it encodes."""
    from policydsl.literate import render_doc

    text = render_doc(load_policy(file or str(default_policy_path())), fmt, lang)
    if _emit(text, output):
        click.echo(f"wrote {output}", err=True)


def run() -> None:
    """The ``policy`` command: ``main``, then exit without tearing the interpreter down.

    Freeing every object one by one at exit takes about 50 ms after a large batch (numpy, the compiled
    policy, caches), for nothing: the system frees the memory at once. Files are closed by the commands
    themselves, and a batch's worker processes have been told to end (they need nothing more from here);
    standard output and error are flushed here, and if that fails the ordinary exit reports it.
    """
    try:
        main()
        status: int = 0
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise  # a message to print: the ordinary exit prints it
        status = exc.code or 0
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)  # let the ordinary exit say what went wrong with the stream
    os._exit(status)


if __name__ == "__main__":
    run()
