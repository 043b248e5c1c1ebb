"""Report policydsl's speed on the anju_2019 policy: cold CLI start and in-process throughput.

    python benchmarks/bench_eval.py [--cold-runs 15] [--seconds 3]

Numbers are reported, never asserted: the aims (issue 2) are a cold `policy eval` under 200 ms and at
least 20,000 households per second in-process with the trace off.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policydsl import Evaluator, load_policy, read_household  # noqa: E402
from policydsl.testing import iter_cases  # noqa: E402


def cold_start(runs: int) -> list[float]:
    """Wall time of `policy eval examples/household.json --format json`, a fresh process each run."""
    exe = shutil.which("policy")
    cmd = [exe] if exe else [sys.executable, "-m", "cli.main"]
    cmd += ["eval", str(ROOT / "examples" / "household.json"), "--format", "json"]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the OS file cache and the grammar cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def throughput(seconds: float) -> dict[str, float]:
    """Households per second over the policy's own test households (valid ones), trace off and on."""
    policy = load_policy()
    evaluator = Evaluator(policy)
    docs = [c.household for c in iter_cases(ROOT / "policies" / "tests") if "error" not in c.expect]
    households = [read_household(policy, d) for d in docs]
    from datetime import date
    day = date(2019, 9, 15)

    def rate(fn) -> float:  # type: ignore[no-untyped-def]
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            done += len(households)
        return done / (time.perf_counter() - start)

    def evaluate_only() -> None:
        for h in households:
            evaluator.evaluate(h, day)

    def validate_and_evaluate() -> None:
        for d in docs:
            evaluator.evaluate(read_household(policy, d), day)

    def traced() -> None:
        for h in households:
            evaluator.evaluate(h, day, trace=True)

    return {"households": len(households), "evaluate": rate(evaluate_only),
            "validate+evaluate": rate(validate_and_evaluate), "evaluate with trace": rate(traced)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    cold = cold_start(args.cold_runs)
    rates = throughput(args.seconds)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "cold_eval_ms": {"median": round(statistics.median(cold) * 1000, 1), "min": round(min(cold) * 1000, 1)},
        "per_second": {k: round(v) for k, v in rates.items() if k != "households"},
        "households_in_set": rates["households"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"machine: {report['machine']}")
    print(f"cold `policy eval` (one household, new process): median {report['cold_eval_ms']['median']} ms, "
          f"best {report['cold_eval_ms']['min']} ms   (aim: < 200 ms)")
    for k, v in report["per_second"].items():
        aim = "   (aim: >= 20,000/s)" if k == "evaluate" else ""
        print(f"in-process, {k}: {v:,} households/s{aim}")


if __name__ == "__main__":
    main()
