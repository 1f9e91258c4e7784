"""Benchmark: seconds per replication and events per second of the default system, one core.

Run: ``python benchmarks/bench_model.py [--replications N]``. One year measured after the default
warm-up. Reports (1) the first call in a fresh process, which includes Numba's compile or cache
load, (2) steady-state replications, split into the simulation and the reduction to tables.
Target (issue 2): at most 3 s a replication of the default system on one core.
Times are process CPU times, so a busy second core disturbs them less than wall-clock times.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load_config():
    from flowsim.config import validate

    system = yaml.safe_load((ROOT / "configs/system/default.yaml").read_text())
    run = yaml.safe_load((ROOT / "configs/run/default.yaml").read_text())
    return validate({"system": system, "run": run})


def first_call_seconds() -> float:
    """Wall time of import + one short replication in a fresh process (compile or cache load)."""
    code = (
        f"import time; t=time.perf_counter(); import sys; sys.path.insert(0, {str(ROOT)!r});"
        "from benchmarks.bench_model import load_config; from flowsim import model;"
        "c=load_config(); model.simulate(c.system, 1, 0, 5.0);"
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def engine_events(env) -> int:
    """Events SimPy scheduled: its event-id counter (``itertools.count``) shows the next id.
    (Arrivals, fed to the loop from a sorted list, are added separately.)"""
    text = repr(env._eid)  # "count(N)"
    return int(text[text.index("(") + 1 : text.rindex(")")])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=5)
    args = ap.parse_args()
    from flowsim import model, results
    from flowsim.plan import plan
    from flowsim.streams import Streams

    cfg = load_config()
    first = [first_call_seconds() for _ in range(2)]
    model.simulate(cfg.system, cfg.run.seed, 0, 5.0)  # warm this process
    sim, reduce_, events = [], [], []
    for r in range(args.replications):
        t0 = time.process_time()
        gc.disable()  # as model.simulate does
        m = model.Model(plan(cfg.system, Streams(cfg.run.seed, r), cfg.run.horizon_days))
        ev = m.run()
        gc.enable()
        t1 = time.process_time()
        results.kpis(ev, cfg)
        results.daily(ev, cfg)
        t2 = time.process_time()
        sim.append(t1 - t0)
        reduce_.append(t2 - t1)
        events.append(engine_events(m.env) + len(m.arrival_times))
    per_rep = [a + b for a, b in zip(sim, reduce_)]
    report = {
        "workload": f"default system, {cfg.run.horizon_days:g} days "
        f"({cfg.run.warmup_days:g} warm-up + "
        f"{cfg.run.horizon_days - cfg.run.warmup_days:g} measured)",
        "first_call_s (fresh process: import + compile or cache load)": [
            round(x, 2) for x in first
        ],
        "seconds_per_replication_median": round(statistics.median(per_rep), 3),
        "simulate_s_median": round(statistics.median(sim), 3),
        "tables_s_median": round(statistics.median(reduce_), 3),
        "events_per_replication (simpy events + arrivals)": int(statistics.median(events)),
        "events_per_second": round(statistics.median(events) / statistics.median(sim)),
        "target_s_per_replication": 3.0,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
