"""Benchmark: flowsim against idiomatic SimPy, Ciw and a hand-written Numba event loop on the
tandem discharge network (configs/system/tandem.yaml), measured in the same run.

Run: ``python -m benchmarks.bench_engines [--replications 8] [--ciw-replications 2]`` from the
repository root. Prints, per engine: seconds per replication (median), events per second, the
ratio to idiomatic SimPy's time, and the mean delay and acute occupancy with 95% intervals across
replications, beside the exact Erlang C values. Replication r uses seed r in every engine.
Targets (issue 6): flowsim >= 2.5x faster than idiomatic SimPy and >= 15x faster than Ciw;
flowsim-compiled within 3x of the hand-written Numba loop.
Wall-clock times on a shared machine: read the ratios, which are measured side by side.
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import time

import numpy as np
from scipy import stats

from benchmarks.tandem_reference import exact

ENGINES = {  # label: (module in benchmarks/, its function)
    "flowsim": ("tandem_flowsim", "run"),
    "flowsim-compiled": ("tandem_flowsim", "run_compiled"),
    "simpy": ("tandem_simpy", "run"),
    "ciw": ("tandem_ciw", "run"),
    "numba": ("tandem_numba", "run"),
}


def interval(x: list[float]) -> str:
    a = np.asarray(x, dtype=float)
    if a.size < 2:
        return f"{a.mean():.3f} (one replication)"
    half = stats.t.ppf(0.975, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size)
    return f"{a.mean():.3f} ({a.mean() - half:.3f} to {a.mean() + half:.3f})"


def measure(engine: str, replications: int, scale: float = 1.0) -> dict:
    module_name, function = ENGINES[engine]
    try:
        run = getattr(importlib.import_module(f"benchmarks.{module_name}"), function)
    except ImportError as err:  # Ciw is optional
        return {"engine": engine, "missing": str(err)}
    run(0, scale=scale, measured_days=5.0)  # imports, Numba's cache: not timed
    seconds, results = [], []
    for r in range(replications):
        started = time.perf_counter()
        results.append(run(r, scale=scale))
        seconds.append(time.perf_counter() - started)
    per_rep = statistics.median(seconds)
    return {
        "engine": engine,
        "seconds": per_rep,
        "events_per_second": statistics.median(x["events"] for x in results) / per_rep,
        "delay": [x["mean_delay_days"] for x in results],
        "occupancy": [x["acute_occupancy_mean"] for x in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=8)
    parser.add_argument("--ciw-replications", type=int, default=2)
    args = parser.parse_args()
    rows = [measure(e, args.ciw_replications if e == "ciw" else args.replications) for e in ENGINES]
    base = next(r["seconds"] for r in rows if r["engine"] == "simpy")
    ref = exact()
    print(
        f"tandem network, 365 days after a 500-day warm-up; exact Erlang C: mean delay "
        f"{ref['mean_delay_days']:.3f} days, acute occupancy {ref['acute_occupancy_mean']:.1f}"
    )
    print(
        f"{'engine':<17} {'s/rep':>8} {'events/s':>11} {'x SimPy':>8}   "
        f"{'mean delay, days (95% CI)':<28} {'acute occupancy (95% CI)'}"
    )
    for r in rows:
        if "missing" in r:
            print(f"{r['engine']:<17} not installed ({r['missing']})")
            continue
        print(
            f"{r['engine']:<17} {r['seconds']:8.3f} {r['events_per_second']:11,.0f} "
            f"{base / r['seconds']:8.2f}   {interval(r['delay']):<28} "
            f"{interval(r['occupancy'])}"
        )
    seconds = {r["engine"]: r["seconds"] for r in rows if "missing" not in r}
    print("targets (issue 6):")
    for fast, slow, target in (("flowsim", "simpy", 2.5), ("flowsim", "ciw", 15.0)):
        if fast in seconds and slow in seconds:
            ratio = seconds[slow] / seconds[fast]
            print(f"  {fast} {ratio:.1f}x faster than {slow} (target {target:g}x)")
    if "flowsim-compiled" in seconds and "numba" in seconds:
        ratio = seconds["flowsim-compiled"] / seconds["numba"]
        print(
            f"  flowsim-compiled takes {ratio:.1f}x the hand-written Numba loop's time (target 3x)"
        )


if __name__ == "__main__":
    main()
