"""Many households end to end: policydsl's `policy eval FILE --output OUT` against an OpenFisca peer.

    pip install -e '.[bench]'
    python benchmarks/bench_batch.py                    # 10^4 and 10^5 households
    python benchmarks/bench_batch.py --big              # and 10^6
    python benchmarks/bench_batch.py --input FILE.jsonl # households of your own
    python benchmarks/bench_batch.py --sizes 2000 --json

For each size it generates the households (benchmarks/generate_households.py, seeded, cached in
--workdir), then times, each as a subprocess started from nothing (interpreter start, imports, reading
the file and writing the results all included):

- policydsl: `policy eval FILE --output OUT --format jsonl` with the default jobs (all cores) and with
  --jobs 1 (the compiled path, which hands what it cannot answer to the reference evaluator), with
  POLICYDSL_NATIVE=0 (the same without the native reader, as installed without a C compiler), and with
  `--engine reference` (the reference evaluator alone), whose rows must be byte for byte the same. If the
  installed `policy` has no batch mode, a loop over load_json / read_household / Evaluator.evaluate in
  one process stands in for it, and the output says so;
- OpenFisca: benchmarks/openfisca_anju.py FILE --out OUT (json.loads into numpy arrays, one vectorised
  simulation per assessment month, a chunk of 20,000 at a time);

each run --repeat times (default 3; the reference evaluator alone once), each time after deleting the
last run's output, with the bytecode of both sides compiled first, as an install leaves it (and the
policy's parse in policydsl's cache, as after any first run: the worked examples run before). It reports
the median households per second, the ratio, peak memory (the largest process, from wait4's rusage, and
the whole process tree, sampled with psutil), and how many households the two classify differently,
each disagreement explained by the exact (Fraction) value of the test that sits on its bound, and whether
OpenFisca in float64 would have agreed. It ends with policydsl's in-process latency per household.

Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import generate_households  # noqa: E402
import openfisca_anju  # noqa: E402

CATEGORIES = openfisca_anju.CATEGORIES


# ---------------------------------------------------------------- running a measured subprocess


def run_measured(cmd: list[str], sample: float = 0.05, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``; wall seconds (until it has ended and every process holding its standard error has
    closed it: policydsl's worker processes included), exit status, the largest process's peak RSS (wait4:
    the child or any of its waited-for descendants; and psutil's samples of each process, for the workers
    a batch lets end without waiting for them), and the peak RSS of the whole process tree (psutil samples
    every 50 ms)."""
    import psutil  # installed with openfisca-core (the bench extra)

    peak_tree = peak_one = 0
    done = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **env} if env else None)

    def watch() -> None:
        nonlocal peak_tree, peak_one
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            try:
                each = [p.memory_info().rss for p in [root, *root.children(recursive=True)]]
                peak_tree, peak_one = max(peak_tree, sum(each)), max(peak_one, *each)
            except psutil.Error:
                pass
            done.wait(sample)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stderr = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    watcher.join()
    return {"seconds": wall, "status": proc.returncode, "max_rss_mib": max(usage.ru_maxrss * 1024, peak_one) / 2**20,
            "tree_rss_mib": peak_tree / 2**20, "stderr": stderr.decode("utf-8", "replace")}


def run_repeated(cmd: list[str], output: Path, repeat: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``run_measured`` ``repeat`` times, each after deleting the previous run's output (so that no run pays
    for freeing the last one's file): the median wall time, the slowest and quickest, the largest peaks."""
    runs = []
    for _ in range(max(1, repeat)):
        output.unlink(missing_ok=True)
        runs.append(run_measured(cmd, env=env))
        if runs[-1]["status"] != 0:
            return runs[-1]
    seconds = sorted(r["seconds"] for r in runs)
    return {**runs[-1], "seconds": statistics.median(seconds), "runs": len(runs), "fastest": seconds[0],
            "slowest": seconds[-1], "max_rss_mib": max(r["max_rss_mib"] for r in runs),
            "tree_rss_mib": max(r["tree_rss_mib"] for r in runs)}


def compile_bytecode() -> None:
    """Write the bytecode of policydsl, its CLI and OpenFisca, as an install does: an editable install run
    with PYTHONDONTWRITEBYTECODE=1 would otherwise compile policydsl's modules afresh at every start
    (about 50 ms) while OpenFisca's, installed, are compiled already."""
    import compileall
    import importlib.util

    for name in ("policydsl", "cli", "openfisca_core"):
        spec = importlib.util.find_spec(name)
        folders = (spec.submodule_search_locations or []) if spec is not None else []
        for folder in folders:
            compileall.compile_dir(folder, quiet=1)


def policy_command() -> list[str]:
    exe = shutil.which("policy", path=str(Path(sys.executable).parent)) or shutil.which("policy")
    return [exe] if exe else [sys.executable, "-m", "cli.main"]


def has_batch_mode() -> bool:
    """Whether the installed `policy eval` takes --output (JSON Lines in, rows out)."""
    out = subprocess.run([*policy_command(), "eval", "--help"], capture_output=True, text=True, check=False)
    return "--output" in out.stdout


# ---------------------------------------------------------------- the stand-in when there is no batch mode


def loop_main(source: str, dest: str) -> None:
    """One process: each line through load_json, read_household and Evaluator.evaluate; rows as JSON Lines."""
    sys.path.insert(0, str(ROOT))
    from policydsl import Evaluator, HouseholdError, PolicyDslError, load_json, load_policy, read_household

    policy = load_policy()
    evaluator = Evaluator(policy)
    with open(source, encoding="utf-8") as src, open(dest, "w", encoding="utf-8") as out:
        for number, line in enumerate(src, 1):
            if not line.strip():
                continue
            row: dict[str, Any] = {"source": f"line {number}"}
            try:
                result = evaluator.evaluate(read_household(policy, load_json(line)))
                row.update(result.to_json())
            except (HouseholdError, PolicyDslError) as exc:
                row["error"] = {"path": "", "message": str(exc)}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- exact analysis of one household


def exact_tests(line: str) -> dict[str, tuple[Fraction, Fraction]]:
    """The value and the bound of every numeric test of the four categories, exactly (Fraction); a test
    whose facts are absent is left out (policydsl may still have decided the category without it)."""
    doc = json.loads(line, parse_float=Decimal)
    as_of = date.fromisoformat(doc["as_of"])
    std = Fraction(generate_households.standard_cents(as_of), 100)
    n = Fraction(doc["members"])
    history = doc.get("income_history") or {}
    months = {m: Fraction(str(history[m])) / n for m in generate_households.window(as_of) if history.get(m) is not None}
    out = {f"P({m}) < std": (v, std) for m, v in months.items()}
    if len(months) == 6:
        p = sum(months.values()) / 6
        out["P <= 1.5 std"] = (p, std * Fraction(3, 2))
        out["P <= / > 3 std"] = (p, std * 3)
    annual = {"(disposable - hardship)/n <= 12 std": (["disposable_income"], ["hardship_expenses"]),
              "(disposable - accident)/n <= 12 std": (["disposable_income"], ["accident_expenses"]),
              "(disposable + assets + savings - accident)/n <= 12 std": (
                  ["disposable_income", "investment_assets", "savings"], ["accident_expenses"])}
    for name, (plus, minus) in annual.items():
        if all(doc.get(k) is not None for k in plus + minus):
            net = sum(Fraction(str(doc[k])) for k in plus) - sum(Fraction(str(doc[k])) for k in minus)
            out[name] = (net / n, 12 * std)
    return out


def near_bound(line: str, cent: Fraction = Fraction(1, 100)) -> list[str]:
    """The tests whose exact value is on its bound or within a cent of it ('on the bound', '+0.0020 from it')."""
    try:
        tests = exact_tests(line)
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return []
    found = []
    for name, (value, bound) in tests.items():
        gap = value - bound
        if abs(gap) <= cent:
            found.append(f"{name}: {'on the bound' if gap == 0 else f'{float(gap):+.4f} from it'}")
    return found


# ---------------------------------------------------------------- comparison


def compare(households: Path, policydsl_out: Path, openfisca_out: Path, examples: int = 5) -> dict[str, Any]:
    """Read the three files side by side (constant memory but for the disagreements)."""
    counts: Counter[str] = Counter()
    disagreements: list[tuple[int, str, list[str], list[str]]] = []
    with open(households, encoding="utf-8") as h, open(policydsl_out, encoding="utf-8") as p, \
            open(openfisca_out, encoding="utf-8") as o:
        lines = (line for line in h if line.strip())
        for number, (line, prow, orow) in enumerate(zip(lines, p, o, strict=True), 1):
            mine, peer = json.loads(prow), json.loads(orow)
            if "source" in mine and mine["source"] != f"line {number}":
                raise SystemExit(f"rows out of order: {mine['source']} where line {number} was expected")
            mine_invalid, peer_invalid = "error" in mine, peer["categories"] is None
            if mine_invalid or peer_invalid:
                counts["invalid in both" if mine_invalid and peer_invalid else
                       "refused by policydsl only" if mine_invalid else "refused by the OpenFisca loader only"] += 1
                continue
            if any(u in CATEGORIES for u in mine["undetermined"]):
                counts["undetermined in policydsl (facts missing; OpenFisca used defaults)"] += 1
                continue
            counts["compared"] += 1
            if peer["missing_facts"]:
                counts["compared, with a fact missing that policydsl did not need"] += 1
            if mine["categories"] == peer["categories"]:
                counts["agree"] += 1
            else:
                counts["differ"] += 1
                disagreements.append((number, line, mine["categories"], peer["categories"]))
    reasons: Counter[str] = Counter()
    detail = []
    if disagreements:
        system64 = openfisca_anju.build_system("float64")
        again = openfisca_anju.evaluate_batch(system64, openfisca_anju.load_batch([d[1] for d in disagreements]))
        for (number, line, mine, peer), cats64 in zip(disagreements, again, strict=True):
            near = near_bound(line)
            on = any("on the bound" in x for x in near)
            kind = ("a test exactly on its bound" if on else "a test within a cent of its bound" if near
                    else "no test near a bound")
            reasons[kind] += 1
            lost, extra = set(mine) - set(peer), set(peer) - set(mine)
            reasons["OpenFisca misses a category policydsl finds" if lost and not extra else
                    "OpenFisca finds a category policydsl does not" if extra and not lost else
                    "OpenFisca finds another category"] += 1
            reasons["float64 OpenFisca agrees with policydsl" if cats64 == mine
                    else "float64 OpenFisca still differs"] += 1
            if len(detail) < examples:
                detail.append({"line": number, "policydsl": mine, "openfisca_float32": peer,
                               "openfisca_float64": cats64, "near_bound": near})
    return {"counts": dict(counts), "reasons": dict(reasons), "examples": detail}


# ---------------------------------------------------------------- in-process latency


def latency(households: Path, count: int = 20000) -> dict[str, float]:
    """Per household, in one warm process (microseconds): the reference path (parse + validate +
    evaluate one at a time, and evaluate alone), and the compiled path over chunks as big as a block of
    the file (all of reading, evaluating and making the rows, divided by the households)."""
    sys.path.insert(0, str(ROOT))
    from policydsl import Evaluator, HouseholdError, load_json, load_policy, read_household
    from policydsl.batch import Item, JsonlFile, Worker, collecting_less

    CHUNK = JsonlFile.BLOCK // 830  # households in a block of the file (about 830 bytes each)

    policy = load_policy()
    evaluator = Evaluator(policy)
    lines = []
    with open(households, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(line)
            if len(lines) >= count:
                break
    full: list[float] = []
    only: list[float] = []
    for rep in range(2):  # the first pass warms caches up; the second is measured
        full.clear()
        only.clear()
        for line in lines:
            t0 = time.perf_counter()
            try:
                household = read_household(policy, load_json(line))
            except HouseholdError:
                continue
            t1 = time.perf_counter()
            evaluator.evaluate(household)
            t2 = time.perf_counter()
            if rep:
                full.append(t2 - t0)
                only.append(t2 - t1)
    worker = Worker(policy, None)
    items = [Item(f"line {i}", line.rstrip("\n").encode("utf-8")) for i, line in enumerate(lines, 1)]  # type: ignore[arg-type]
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    compiled = []
    with collecting_less():  # as a batch runs
        for _ in range(3):
            t0 = time.perf_counter()
            for chunk in chunks:
                worker.render_lists([i.source for i in chunk], [i.text for i in chunk], {}, "jsonl")
            compiled.append((time.perf_counter() - t0) / len(items))

    # where the compiled path's time goes (its stages called one by one, as BatchEvaluator._answer does)
    fast = worker.fast
    stages = {"read": 0.0, "decide": 0.0, "again": 0.0, "write": 0.0}
    if fast is not None:
        import numpy as np

        from policydsl.batch_eval import Lines

        with collecting_less():
            for chunk in chunks:
                texts, sources = [i.text for i in chunk], [i.source for i in chunk]
                t0 = time.perf_counter()
                cols = fast.reader.read(texts)
                t1 = time.perf_counter()
                day = np.where(cols.as_of != 0, cols.as_of, date.today().toordinal())
                first = fast._decide(cols, day, track=False)
                t2 = time.perf_counter()
                again = np.flatnonzero(~first.decided & ~first.trouble)
                second = fast._decide(cols.take(again), day[again], track=True) if len(again) else None
                t3 = time.perf_counter()
                lines = Lines([None] * len(texts))
                fast._write_lines(first, sources, lines, first.decided & ~first.trouble)
                if second is not None:
                    fast._write_lines(second, sources, lines, ~second.trouble)
                t4 = time.perf_counter()
                stages["read"] += t1 - t0
                stages["decide"] += t2 - t1
                stages["again"] += t3 - t2
                stages["write"] += t4 - t3

    def q(xs: list[float], frac: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(frac * len(xs)))] * 1e6

    return {"households": len(full), "full_mean_us": statistics.fmean(full) * 1e6, "full_median_us": q(full, 0.5),
            "full_p99_us": q(full, 0.99), "evaluate_mean_us": statistics.fmean(only) * 1e6,
            "evaluate_median_us": q(only, 0.5), "evaluate_p99_us": q(only, 0.99),
            "compiled_mean_us": min(compiled) * 1e6, "chunk": CHUNK,
            **{f"compiled_{k}_us": v / len(items) * 1e6 for k, v in stages.items()}}


# ---------------------------------------------------------------- the spec's worked examples


def worked_examples(workdir: Path, batch: bool) -> list[dict[str, Any]]:
    """Spec §10's examples, and the same bounds reached with cents in every term (exact on the bound),
    through `policy eval` (a batch of them), OpenFisca float32 and OpenFisca float64."""
    ex = openfisca_anju._example
    cases = [(name, text, expected) for name, text, expected in openfisca_anju.WORKED_EXAMPLES]
    cases += [
        ("probe: 3 people, months 2520.01/2519.99 (P = 840 exactly), illness, (30240.37-10080.37)/3 = 6720",
         ex(3, "2520", ["illness"], "30240.37", hardship="10080.37").replace(
             '"2019-03": 2520, "2019-04": 2520', '"2019-03": 2520.01, "2019-04": 2519.99'), ["category_2"]),
        *((f"probe: 2 people, (40320.{c}-26880.{c})/2 = 6720, emergency, P = 1680",
           ex(2, "3360", ["emergency"], f"40320.{c}", accident=f"26880.{c}"), ["category_3"])
          for c in ("01", "03", "05")),
        ("probe: 6 people, months of 10080.01/10079.99 (P = 1680 exactly), emergency, (483840.77-443520.77)/6"
         " = 6720", ex(6, "10080", ["emergency"], "483840.77", accident="443520.77").replace(
             '"2019-05": 10080, "2019-06": 10080', '"2019-05": 10080.01, "2019-06": 10079.99'), ["category_3"]),
        ("probe: 3 people, months 2520.1 2519.9 2520.2 2519.8 2520.3 2519.7 (P = 840 exactly), illness",
         ex(3, "2520", ["illness"], "30240", hardship="10080").replace(
             '"2019-03": 2520, "2019-04": 2520, "2019-05": 2520, "2019-06": 2520, "2019-07": 2520, "2019-08": 2520',
             '"2019-03": 2520.1, "2019-04": 2519.9, "2019-05": 2520.2, "2019-06": 2519.8, "2019-07": 2520.3, '
             '"2019-08": 2519.7'), ["category_2"]),
        ("probe: 4 people, (26880.1 + 0.2 + 0.3 - 0.6)/4 = 6720, major_illness, P > 3 std",
         ex(4, "7000", ["major_illness"], "26880.1", accident="0.6", assets="0.2", savings="0.3"), ["category_4"]),
    ]
    src = workdir / "worked_examples.jsonl"
    src.write_text("".join(t + "\n" for _, t, _ in cases), encoding="utf-8")
    out = workdir / "worked_examples.policydsl.jsonl"
    if batch:
        subprocess.run([*policy_command(), "eval", str(src), "--output", str(out), "--format", "jsonl",
                        "--no-progress", "--jobs", "1"], check=True, capture_output=True)
    else:
        loop_main(str(src), str(out))
    mine = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    texts = [t for _, t, _ in cases]
    f32 = openfisca_anju.evaluate_batch(openfisca_anju.build_system(), openfisca_anju.load_batch(texts))
    f64 = openfisca_anju.evaluate_batch(openfisca_anju.build_system("float64"), openfisca_anju.load_batch(texts))
    return [{"name": name, "expected": expected, "policydsl": row.get("categories", row.get("error")),
             "openfisca_float32": a, "openfisca_float64": b}
            for (name, _, expected), row, a, b in zip(cases, mine, f32, f64, strict=True)]


# ---------------------------------------------------------------- one size


def households_file(workdir: Path, size: int, seed: int) -> tuple[Path, float | None]:
    version = hashlib.sha256(Path(generate_households.__file__).read_bytes()).hexdigest()[:8]
    path = workdir / f"households_{size}_seed{seed}_{version}.jsonl"  # a changed generator makes a new file
    if path.exists():
        return path, None
    start = time.perf_counter()
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        generate_households.write(size, seed, out)
    tmp.rename(path)
    return path, time.perf_counter() - start


def bench_one(households: Path, workdir: Path, jobs: list[int | None], batch: bool,
              reference: bool = True, repeat: int = 3) -> dict[str, Any]:
    count = sum(1 for line in open(households, encoding="utf-8") if line.strip())  # noqa: SIM115
    stem = households.stem
    runs: dict[str, Any] = {}
    mine_out = workdir / f"{stem}.policydsl.jsonl"
    reference_out = workdir / f"{stem}.reference.jsonl"
    for j in jobs if batch else [1]:
        label = f"policydsl, --jobs {j}" if j else "policydsl, default jobs"
        if batch:
            cmd = [*policy_command(), "eval", str(households), "--output", str(mine_out), "--format", "jsonl",
                   "--no-progress"] + (["--jobs", str(j)] if j else [])
        else:
            label = "policydsl, in-process loop (see NOTE)"
            cmd = [sys.executable, __file__, "--loop", str(households), str(mine_out)]
        runs[label] = run_repeated(cmd, mine_out, repeat)
    msgspec_out = workdir / f"{stem}.msgspec.jsonl"
    if batch:  # as installed without a C compiler: the msgspec reader alone
        runs["policydsl, msgspec reader only, default jobs"] = run_repeated(
            [*policy_command(), "eval", str(households), "--output", str(msgspec_out), "--format", "jsonl",
             "--no-progress"], msgspec_out, repeat, env={"POLICYDSL_NATIVE": "0"})
    if batch and reference:  # once: it is there for its rows more than for its speed
        runs["policydsl --engine reference, default jobs"] = run_repeated(
            [*policy_command(), "eval", str(households), "--output", str(reference_out), "--format", "jsonl",
             "--no-progress", "--engine", "reference"], reference_out, 1)
    peer_out = workdir / f"{stem}.openfisca.jsonl"
    runs["OpenFisca (float32)"] = run_repeated([sys.executable, str(HERE / "openfisca_anju.py"), str(households),
                                                "--out", str(peer_out)], peer_out, repeat)
    for label, r in runs.items():
        if r["status"] != 0:
            raise SystemExit(f"{label} failed (exit {r['status']}):\n{r['stderr'][-2000:]}")
        r["households_per_second"] = count / r["seconds"]
        del r["stderr"]
    agreement = compare(households, mine_out, peer_out)
    same = identical(mine_out, reference_out) if batch and reference else None
    readers = identical(mine_out, msgspec_out) if batch else None
    return {"file": str(households), "households": count, "runs": runs, "agreement": agreement,
            "compiled_vs_reference": same, "native_vs_msgspec_reader": readers}


def identical(compiled: Path, reference: Path) -> dict[str, Any]:
    """Whether the compiled path's rows are byte for byte the reference evaluator's rows."""
    rows = differ = 0
    first: int | None = None
    with open(compiled, "rb") as a, open(reference, "rb") as b:
        for number, (x, y) in enumerate(zip(a, b, strict=True), 1):
            rows += 1
            if x != y:
                differ += 1
                first = first or number
    return {"rows": rows, "differ": differ, "first_difference": first}


# ---------------------------------------------------------------- printing


def show(report: dict[str, Any]) -> None:
    print(f"machine: {report['machine']}")
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}  (other work on the "
          "machine slows both sides)".format(*report["load_average_before"], *report["load_average_after"]))
    if not report["batch_mode"]:
        print("NOTE: policydsl is timed as a loop over load_json / read_household / Evaluator.evaluate in one "
              "subprocess, not as `policy eval FILE --output OUT` (no batch mode there, or --force-loop).")
    print("\nworked examples (spec §10) and exact-bound probes:")
    for e in report["worked_examples"]:
        marks = ["ok" if e[k] == e["expected"] else "DIFFERS" for k in ("policydsl", "openfisca_float32",
                                                                          "openfisca_float64")]
        print(f"  {e['name']}\n    expected {e['expected']}: policydsl {e['policydsl']} ({marks[0]}), "
              f"OpenFisca float32 {e['openfisca_float32']} ({marks[1]}), float64 {e['openfisca_float64']} ({marks[2]})")
    for number, size in enumerate(report["sizes"]):
        print(f"\n{size['households']:,} households ({size['file']})"
              + (f", generated in {size['generated_seconds']:.1f} s" if size.get("generated_seconds") else ""))
        for label, r in size["runs"].items():
            spread = f" (median of {r['runs']}: {r['fastest']:.2f}-{r['slowest']:.2f})" if r["runs"] > 1 else ""
            print(f"  {label:<46} {r['seconds']:8.2f} s{spread}  {r['households_per_second']:>10,.0f} households/s  "
                  f"peak RSS {r['max_rss_mib']:4.0f} MiB largest process, {r['tree_rss_mib']:4.0f} MiB all (sampled)")
        peer = size["runs"]["OpenFisca (float32)"]["households_per_second"]
        for label, r in size["runs"].items():
            if label.startswith("policydsl"):
                ratio = r["households_per_second"] / peer
                print(f"  {label} vs OpenFisca: {ratio:.2f}x " + ("(faster)" if ratio >= 1 else "(slower)"))
        same = size.get("compiled_vs_reference")
        if same:
            print(f"  compiled path vs reference evaluator: {same['rows'] - same['differ']:,} of {same['rows']:,} "
                  "rows byte for byte identical" + (f"; first difference at line {same['first_difference']}"
                                                    if same["differ"] else ""))
        readers = size.get("native_vs_msgspec_reader")
        if readers:
            print(f"  native reader vs msgspec reader alone: {readers['rows'] - readers['differ']:,} of "
                  f"{readers['rows']:,} rows byte for byte identical"
                  + (f"; first difference at line {readers['first_difference']}" if readers["differ"] else ""))
        a = size["agreement"]
        print("  agreement: " + ", ".join(f"{k}: {v:,}" for k, v in a["counts"].items()))
        if a["reasons"]:
            print("  why they differ: " + ", ".join(f"{k}: {v:,}" for k, v in a["reasons"].items()))
        for e in a["examples"] if number == 0 else []:  # the same first lines in every generated file
            print(f"    line {e['line']}: policydsl {e['policydsl']}, OpenFisca float32 {e['openfisca_float32']}, "
                  f"float64 {e['openfisca_float64']}; {'; '.join(e['near_bound']) or 'no test near a bound'}")
    lat = report["latency"]
    print(f"\npolicydsl in-process, per household ({lat['households']:,} households, warm):\n"
          f"  compiled path, chunks of {lat['chunk']:,} (a block of the file): {lat['compiled_mean_us']:.1f} µs "
          "(read + evaluate + write the rows, "
          f"averaged): reading into columns {lat['compiled_read_us']:.1f} µs, deciding every rule "
          f"{lat['compiled_decide_us']:.1f} µs, deciding again where facts are missing (tracking which) "
          f"{lat['compiled_again_us']:.1f} µs, writing the rows {lat['compiled_write_us']:.1f} µs, the rest for "
          "the households the reference evaluator answers\n"
          f"  reference, one at a time: parse+validate+evaluate mean {lat['full_mean_us']:.0f} µs, median "
          f"{lat['full_median_us']:.0f} µs, p99 {lat['full_p99_us']:.0f} µs; evaluate alone mean "
          f"{lat['evaluate_mean_us']:.0f} µs, median {lat['evaluate_median_us']:.0f} µs, "
          f"p99 {lat['evaluate_p99_us']:.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="households per run")
    parser.add_argument("--big", action="store_true", help="add 10^6 households")
    parser.add_argument("--input", type=Path, help="time this JSON Lines file instead of generated households")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "policydsl-bench",
                        help="where generated households and outputs go (kept, reused for the same size and seed)")
    parser.add_argument("--jobs", type=int, nargs="*", default=[0, 1],
                        help="policydsl --jobs values to time; 0 = the default (all cores)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--save", type=Path, help="also write the numbers as JSON to this file")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the run of the reference evaluator alone (and the byte-for-byte comparison)")
    parser.add_argument("--force-loop", action="store_true",
                        help="time policydsl as the in-process loop even when `policy eval` has a batch mode")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each command (the reference evaluator's: one); the median is reported")
    parser.add_argument("--loop", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:
        loop_main(*args.loop)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    compile_bytecode()
    batch = has_batch_mode() and not args.force_loop
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"openfisca-core {_version('openfisca-core')}, numpy {_version('numpy')}",
        "batch_mode": batch, "load_average_before": os.getloadavg(),
        "worked_examples": worked_examples(args.workdir, batch), "sizes": []}
    jobs = [j or None for j in args.jobs]
    files: list[tuple[Path, float | None]] = []
    if args.input:
        files.append((args.input, None))
    else:
        sizes = [*args.sizes, *([1_000_000] if args.big and 1_000_000 not in args.sizes else [])]
        files += [households_file(args.workdir, n, args.seed) for n in sizes]
    for path, generated in files:
        result = bench_one(path, args.workdir, jobs, batch, not args.no_reference, args.repeat)
        result["generated_seconds"] = generated
        report["sizes"].append(result)
    report["latency"] = latency(files[0][0])
    report["load_average_after"] = os.getloadavg()
    if args.save:
        args.save.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        show(report)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
