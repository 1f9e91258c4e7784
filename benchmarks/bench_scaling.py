"""Benchmark: how flowsim's cost grows with the horizon, the arrival rate and the patient log, how
it scales over worker processes, and what Numba's compilation costs at start-up.

Run: ``python -m benchmarks.bench_scaling [--replications 3] [--parallel-replications 12]
[--quick]`` from the repository root. Prints four plain tables:

a. seconds per replication (median of ``--replications``) of flowsim on the tandem workload
   (configs/system/tandem.yaml) against the horizon (measured days x1, x2, x4 after the same
   warm-up) and against the arrival rate (``scale`` x1, x2, x4: arrivals and every capacity), with
   the ratio to the x1 time beside the ratio a cost linear in simulated days or in arrivals gives;
b. peak memory of one replication (``flowsim.runner.replicate``) against the horizon: the tandem
   at x1, x2, x4 (each engine; the SimPy engine with and without the patient log) and the default
   system at x1 and x2: the peak resident set size (VmHWM) of a fresh child process, and its rise
   over the same child's peak after imports and a 5-day replication;
c. replications per second of ``flowsim.runner.run`` on 1 and 2 worker processes (the default
   run of the default system, 545 days; a short one with ``--quick``; workers started and warm
   before the clock starts), and the speed-up (target: at least 1.8x on 2 workers);
d. Numba's start-up: a cold start (a fresh process with ``NUMBA_CACHE_DIR`` set to a new empty
   folder, so every kernel is compiled) and a warm start (a second fresh process on that folder,
   so kernels are loaded from the cache): the first call minus a second, identical call.

``--quick`` uses shorter horizons and fewer replications (about a minute). Times are wall-clock on
whatever else the machine is doing (the load average is printed): read the ratios, which are
measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACTORS = (1, 2, 4)


# -- helpers -----------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain table: first column left-aligned, the others right-aligned."""
    cells = [header, *rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def default_config(horizon_days: float, warmup_days: float, replications: int = 1, **run):
    """The validated default system with these run settings (as benchmarks/bench_model.py)."""
    return system_config("default", horizon_days, warmup_days, replications=replications, **run)


def peak_rss_mb() -> tuple[float, str]:
    """This process's peak resident set size in MB, and where it was read."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0, "VmHWM of /proc/self/status"
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak / (1024.0**2 if sys.platform == "darwin" else 1024.0), "getrusage ru_maxrss"


def in_child(call: str, env: dict | None = None) -> dict:
    """Run ``benchmarks.bench_scaling.<call>`` in a fresh interpreter; return its JSON line."""
    code = f"import benchmarks.bench_scaling as b; b.{call}"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child {call} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(fn, replications: int) -> tuple[float, dict]:
    """Median wall time of ``fn(r)`` over r = 0 .. replications - 1, and the last result."""
    times, result = [], {}
    for r in range(replications):
        started = time.perf_counter()
        result = fn(r)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


# -- a. time against horizon and arrival rate --------------------------------------------------


def growth(replications: int, warmup: float, measured: float) -> str:
    """Seconds a tandem replication against measured days and against scale."""
    from benchmarks import tandem_flowsim

    tandem_flowsim.run(0, warmup_days=warmup, measured_days=5.0)  # imports, Numba cache
    points = [("horizon", k, 1.0, k * measured) for k in FACTORS]
    points += [("arrival rate", k, float(k), measured) for k in FACTORS]
    rows, base = [], {}
    for what, k, scale, days in points:
        one = partial(tandem_flowsim.run, scale=scale, warmup_days=warmup, measured_days=days)
        seconds, result = timed(one, replications)
        work = scale * (warmup + days)  # simulated days x arrival rate
        base.setdefault(what, (seconds, work))
        rows.append(
            [
                f"{what} x{k}",
                f"{scale:g}",
                f"{warmup:g}+{days:g}",
                f"{result['events']:,}",
                f"{seconds:.3f}",
                f"{seconds / base[what][0]:.2f}",
                f"{work / base[what][1]:.2f}",
                f"{result['events'] / seconds:,.0f}",
            ]
        )
    header = ["tandem, flowsim", "scale", "days", "events", "s/rep", "ratio", "linear", "events/s"]
    return (
        f"a. seconds per replication (median of {replications}), tandem workload; 'ratio': to x1;\n"
        "   'linear': the ratio if the cost grew in proportion to simulated days x arrival rate\n"
        + table(header, rows)
    )


# -- b. peak memory ----------------------------------------------------------------------------


def system_config(system: str, horizon_days: float, warmup_days: float, **run):
    """A shipped system (configs/system/<system>.yaml), validated, with these run settings."""
    import yaml

    from flowsim.config import validate

    raw = yaml.safe_load((ROOT / "configs" / "system" / f"{system}.yaml").read_text())
    settings = {"horizon_days": horizon_days, "warmup_days": warmup_days, "replications": 1}
    return validate({"system": raw, "run": {**settings, **run}})


def child_memory(
    horizon: float, warmup: float, patient_log: bool, engine: str = "simpy", system: str = "default"
) -> None:
    """(in a child) Peak RSS before and after one replication; prints JSON."""
    from flowsim import runner

    settings = {"patient_log": patient_log, "engine": engine}
    runner.replicate(system_config(system, 5.0, 1.0, **settings), "baseline", 0)
    before, source = peak_rss_mb()
    out = runner.replicate(system_config(system, horizon, warmup, **settings), "baseline", 0)
    if "error" in out:
        raise RuntimeError(out["error"]["traceback"])
    peak, _ = peak_rss_mb()
    rows = 0 if out["patients"] is None else len(out["patients"])
    print(json.dumps({"before": before, "peak": peak, "source": source, "log_rows": rows,
                      "records": out["events"]}))  # fmt: skip


def memory(tandem: tuple[float, float], default: tuple[float, float]) -> str:
    """Peak memory against the horizon: the tandem (stationary after its warm-up) at x1, x2, x4
    with each engine, and with the patient log; the default system at x1 and x2."""
    rows, source = [], ""
    cases = [("tandem", tandem, "simpy", k, False) for k in FACTORS]
    cases += [("tandem", tandem, "simpy", k, True) for k in FACTORS]
    cases += [("tandem", tandem, "compiled", k, False) for k in FACTORS]
    cases += [("default", default, engine, k, False) for engine in ("simpy", "compiled")
              for k in (1, 2)]  # fmt: skip
    for system, (warmup, measured), engine, k, log in cases:
        horizon = warmup + k * measured
        m = in_child(f"child_memory({horizon!r}, {warmup!r}, {log!r}, {engine!r}, {system!r})")
        source = m["source"]
        rows.append(
            [
                f"{system}, {engine}, horizon x{k}, patient log {'on' if log else 'off'}",
                f"{warmup:g}+{k * measured:g}",
                f"{m['records']:,}",
                f"{m['log_rows']:,}",
                f"{m['peak']:.0f}",
                f"{m['peak'] - m['before']:.0f}",
            ]
        )
    header = ["one replication", "days", "records", "log rows", "peak MB", "rise MB"]
    return (
        f"b. peak memory: the peak RSS ({source}) of a fresh child process;\n"
        "   'rise': above the same child's peak after imports and a 5-day replication.\n"
        "   Target: without the patient log, the rise does not grow with the horizon (a run holds\n"
        "   the people in the system and 30 days of finished records; what grows is a few bytes a\n"
        "   day for the daily table, 24 bytes an arrival for the arrival times and a byte an\n"
        "   episode). The default system is read at x1 and x2 only: its front-door queue grows\n"
        "   without bound in its second year, and the people in it are memory too.\n"
        + table(header, rows)
    )


# -- c. worker processes -----------------------------------------------------------------------


def parallel(replications: int, warmup: float, measured: float) -> str:
    from flowsim import runner

    rows, rate = [], {}
    for jobs in (1, 2):
        start_workers = default_config(5.0, 1.0, replications=jobs)  # imports, Numba cache
        runner.run([("baseline", start_workers)], jobs=jobs)
        cfg = default_config(warmup + measured, warmup, replications)
        started = time.perf_counter()
        outcome = runner.run([("baseline", cfg)], jobs=jobs)
        seconds = time.perf_counter() - started
        if outcome.errors:
            raise RuntimeError(outcome.errors[0]["traceback"])
        rate[jobs] = replications / seconds
        rows.append([f"{jobs} worker(s)", f"{replications}", f"{seconds:.2f}", f"{rate[jobs]:.2f}"])
    rows[-1].append(f"{rate[2] / rate[1]:.2f}")
    rows[0].append("1.00")
    header = ["flowsim.runner.run", "replications", "seconds", "rep/s", "speed-up"]
    return (
        f"c. replications per second, default system, {warmup:g}+{measured:g} days, workers warm "
        f"({os.cpu_count()} CPUs)\n" + table(header, rows)
    )


# -- d. Numba compile time ---------------------------------------------------------------------


def child_compile() -> None:
    """(in a child) Import time, then first and second call of each Numba user; prints JSON."""
    started = time.perf_counter()
    from benchmarks import tandem_numba
    from flowsim import runner

    cfg = default_config(5.0, 1.0)
    fast = default_config(5.0, 1.0, engine="compiled")
    out = {"import": time.perf_counter() - started}
    for name, call in (
        ("flowsim", lambda: runner.replicate(cfg, "baseline", 0)),
        ("compiled", lambda: runner.replicate(fast, "baseline", 0)),
        ("numba", lambda: tandem_numba.run(0, warmup_days=1.0, measured_days=4.0)),
    ):
        for attempt in ("first", "again"):
            started = time.perf_counter()
            call()
            out[f"{name}_{attempt}"] = time.perf_counter() - started
    print(json.dumps(out))


def compile_time() -> str:
    rows, extra = [], {}
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        for start in ("cold", "warm"):
            m = in_child("child_compile()", env={"NUMBA_CACHE_DIR": cache})
            files = sum(len(f) for _, _, f in os.walk(cache))
            for name, label in (
                ("flowsim", "flowsim replication, 5 days"),
                ("compiled", "flowsim compiled engine, 5 days"),
                ("numba", "tandem_numba loop, 5 days"),
            ):
                extra[start, name] = m[f"{name}_first"] - m[f"{name}_again"]
                rows.append(
                    [
                        f"{start}: {label}",
                        f"{m['import']:.2f}" if name == "flowsim" else "",
                        f"{m[f'{name}_first']:.3f}",
                        f"{m[f'{name}_again']:.3f}",
                        f"{extra[start, name]:.3f}",
                        f"{files}",
                    ]
                )
    header = ["start (fresh process)", "import s", "1st call s", "2nd call s", "extra s", "cache"]
    compiled = ", ".join(
        f"{name} {extra['cold', name] - extra['warm', name]:.2f} s"
        for name in ("flowsim", "compiled", "numba")
    )
    return (
        "d. Numba start-up: cold = empty NUMBA_CACHE_DIR, warm = the same folder again;\n"
        "   'extra' = 1st - 2nd call (compile or cache load, plus lazy imports);\n"
        "   'cache': files in the cache folder after the run\n"
        + table(header, rows)
        + f"\n   compile time (cold extra - warm extra): {compiled}"
    )


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=3, help="per point of table a (median)")
    ap.add_argument("--parallel-replications", type=int, help="for table c (default 8, quick 6)")
    ap.add_argument("--quick", action="store_true", help="shorter horizons, fewer replications")
    args = ap.parse_args()
    par = args.parallel_replications or (6 if args.quick else 8)
    reps = args.replications
    if args.quick:  # (warm-up, measured days) of the tandem, memory and parallel workloads
        tandem, default, short = (100.0, 90.0), (180.0, 365.0), (30.0, 60.0)
    else:
        tandem, default, short = (500.0, 365.0), (180.0, 365.0), (180.0, 365.0)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"flowsim scaling benchmark{' (--quick)' if args.quick else ''}; load average {load}\n")
    for section in (
        lambda: growth(reps, *tandem),
        lambda: memory(tandem, default),
        lambda: parallel(par, *short),  # the default run itself, unless --quick
        compile_time,
    ):
        print(section(), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
