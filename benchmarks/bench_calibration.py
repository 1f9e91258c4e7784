"""Benchmark: calibration throughput of the default system on this machine, 1 and 2 workers.

Run: ``python -m benchmarks.bench_calibration [--sets 3] [--replications 4]``. For each engine,
evaluates the calibration objective of ``calibration/default.yaml`` (the default system, its
window, its targets) at a few parameter sets, first on one worker then on two, and reports model
runs (one replication of one parameter set) per minute, the speed-up of two workers, and the
projected time of a 1,000-run calibration (e.g. 50 parameter sets x 20 replications).
Target (issue 5): a 1,000-run calibration of the default system within 60 minutes here.
Wall-clock times: the machine is shared, so read them as estimates.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from flowsim import calibrate

ROOT = Path(__file__).resolve().parent.parent


def runs_per_minute(engine: str, jobs: int, sets: int, replications: int, seed: int = 0) -> float:
    cal = calibrate.load(ROOT / "calibration" / "default.yaml")
    cal.jobs, cal.replications = jobs, replications
    cal.overrides = [o for o in cal.overrides if not o.startswith("run.engine=")]
    cal.overrides.append(f"run.engine={engine}")
    objective = calibrate.Objective(cal, ROOT / "calibration")
    rng = np.random.default_rng(seed)
    points = [{p.path: rng.uniform(p.low, p.high) for p in cal.parameters} for _ in range(sets)]
    objective(points[0])  # warm: worker start-up and Numba's cache load, not counted
    started = time.perf_counter()
    for values in points:
        objective(values)
    minutes = (time.perf_counter() - started) / 60
    return sets * replications / minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=3)
    parser.add_argument("--replications", type=int, default=4)
    parser.add_argument("--engines", nargs="+", default=["simpy", "compiled"])
    args = parser.parse_args()
    cal = calibrate.load(ROOT / "calibration" / "default.yaml")
    base = calibrate.base_config(cal)["run"]
    days = base["horizon_days"]
    print(
        f"default system, {days:g}-day runs (warm-up {base['warmup_days']:g}), "
        f"{args.sets} parameter sets x {args.replications} replications per measurement"
    )
    for engine in args.engines:
        one = runs_per_minute(engine, 1, args.sets, args.replications)
        two = runs_per_minute(engine, 2, args.sets, args.replications)
        full = 1000 / two * (545 / days)
        print(f"  run.engine={engine}")
        print(f"    1 worker : {one:6.1f} runs a minute")
        print(f"    2 workers: {two:6.1f} runs a minute  (x{two / one:.2f})")
        print(f"    1,000 runs of the default 545-day horizon on 2 workers: ~{full:.1f} minutes "
              "(target 60)")  # fmt: skip


if __name__ == "__main__":
    main()
