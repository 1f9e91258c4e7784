"""Benchmark: seconds per replication of the default system on one core, with each engine.

Run: ``python -m benchmarks.bench_model [--replications N]``. The default run (545 days: a
180-day warm-up and one year measured). For each engine (``simpy``, ``compiled``): the first call
in a fresh process (imports and Numba's cache load), then steady-state replications split into
the set-up (``plan``: arrival times, people in care at day 0), the simulation (with the SimPy
engine, also drawing attributes a block at a time and folding records into the tally at each
checkpoint, as the runner runs it), and the reduction of the tally to tables (KPIs, the daily
table and the flows), each also per replication-year (per 365 simulated days).
Targets (issue 6): at most 1.5 s per replication-year with the SimPy engine, 0.1 s with the
compiled one. Times are process CPU times, so a busy second core disturbs them less.

``--against REV`` compares this checkout with an earlier git revision on the same workload (this
checkout's default system and run settings, read by each version's own code), in alternating
rounds in fresh processes, and reports each engine's time as a ratio to the earlier version's
(median over rounds; issue 13: the default run may not be more than 10% slower).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load_config():
    from flowsim.config import validate

    system = yaml.safe_load((ROOT / "configs/system/default.yaml").read_text())
    run = yaml.safe_load((ROOT / "configs/run/default.yaml").read_text())
    return validate({"system": system, "run": run})


def first_call_seconds(engine: str) -> float:
    """Wall time of import + one short replication in a fresh process (compile or cache load)."""
    module = "compiled" if engine == "compiled" else "model"
    code = (
        f"import time; t=time.perf_counter(); import sys; sys.path.insert(0, {str(ROOT)!r});"
        f"from benchmarks.bench_model import load_config; from flowsim import {module};"
        f"c=load_config(); {module}.simulate(c.system, 1, 0, 5.0);"
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure(engine: str, cfg, replications: int) -> dict:
    """Median CPU seconds of set-up, simulation and tables over ``replications``."""
    from flowsim import compiled, model, results
    from flowsim.plan import plan
    from flowsim.streams import Streams

    # as the runner runs them: tallied as they run (the folds count as simulation)
    tallied = results.measure(cfg)

    def run(p):
        if engine == "simpy":
            return model.Model(p).run(tallied)
        return compiled.run_tallied(p, tallied)

    run(plan(cfg.system, Streams(cfg.run.seed, 99), 5.0))  # warm this process
    setup, sim, tables = [], [], []
    for r in range(replications):
        gc.disable()  # as model.simulate does
        t0 = time.process_time()
        p = plan(cfg.system, Streams(cfg.run.seed, r), cfg.run.horizon_days)
        t1 = time.process_time()
        ev = run(p)
        t2 = time.process_time()
        gc.enable()
        results.kpis(ev, cfg)
        results.daily(ev, cfg)
        results.flows(ev, cfg)
        t3 = time.process_time()
        setup.append(t1 - t0)
        sim.append(t2 - t1)
        tables.append(t3 - t2)
    years = cfg.run.horizon_days / 365.0
    med = {k: statistics.median(v) for k, v in (("plan", setup), ("simulate", sim),
                                                  ("tables", tables))}  # fmt: skip
    total = sum(med.values())
    return {
        "first_call_s": round(first_call_seconds(engine), 2),
        **{f"{k}_s": round(v, 3) for k, v in med.items()},
        "total_s": round(total, 3),
        "plan_plus_simulate_per_replication_year_s": round(
            (med["plan"] + med["simulate"]) / years, 3
        ),
        "total_per_replication_year_s": round(total / years, 3),
    }


def total_seconds(tree: Path, engine: str, replications: int) -> float:
    """Median CPU seconds of a whole replication (set-up, simulation, tables) of this checkout's
    default run, with the flowsim of ``tree``, in a fresh process."""
    code = (
        f"import sys, yaml; sys.path.insert(0, {str(tree)!r});"
        "from flowsim.config import validate; from benchmarks.bench_model import measure;"
        f"root = {str(ROOT)!r};"
        "read = lambda p: yaml.safe_load(open(root + p).read());"
        "cfg = validate({'system': read('/configs/system/default.yaml'),"
        " 'run': read('/configs/run/default.yaml')});"
        f"print(measure({engine!r}, cfg, {replications})['total_s'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tree)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def against(rev: str, replications: int, rounds: int) -> dict:
    """This checkout's time per replication as a ratio to revision ``rev``'s, by engine."""
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old),
                        rev], check=True)  # fmt: skip
        try:
            times = {e: {"old": [], "new": []} for e in ("simpy", "compiled")}
            for _ in range(rounds):
                for engine, (which, tree) in itertools.product(
                    times, (("old", old), ("new", ROOT))
                ):
                    times[engine][which].append(total_seconds(tree, engine, replications))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False)  # fmt: skip
    out = {}
    for engine, t in times.items():
        ratios = [n / o for n, o in zip(t["new"], t["old"])]
        out[engine] = {
            f"{rev}_total_s": t["old"],
            "this_total_s": t["new"],
            "ratio_median": round(statistics.median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
            "within_10_percent": statistics.median(ratios) <= 1.10,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=5)
    ap.add_argument("--against", metavar="REV", help="compare with this git revision")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (with --against)")
    args = ap.parse_args()
    if args.against:
        print(json.dumps(against(args.against, args.replications, args.rounds), indent=2))
        return
    cfg = load_config()
    report = {
        "workload": f"default system, {cfg.run.horizon_days:g} days "
        f"({cfg.run.warmup_days:g} warm-up + {cfg.run.horizon_days - cfg.run.warmup_days:g} "
        "measured), CPU seconds, medians",
        **{engine: measure(engine, cfg, args.replications) for engine in ("simpy", "compiled")},
        "targets_per_replication_year_s": {"simpy": 1.5, "compiled": 0.1},
    }
    report["speedup_compiled_vs_simpy_total"] = round(
        report["simpy"]["total_s"] / report["compiled"]["total_s"], 2
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
