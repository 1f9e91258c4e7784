"""Appraising capacity: cost-versus-capacity sweeps with the optimum marked, the capacity that
keeps a measure under a target with a chosen confidence, a budget allocator over a menu of levers,
and the bottleneck view (delayed bed days avoided by one more unit of each capacity).

Every evaluation runs the same replications (common random numbers), so comparisons between
capacities or mixes are paired.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flowsim import runner, scenarios
from flowsim.config import Config, ConfigError, Investment, Scenario
from flowsim.uncertainty import interval


def _with_capacities(config: Config, capacities: dict[str, int], name: str) -> Config:
    """The config with whole-run capacities set (an investment with ``add`` per service)."""
    invs = []
    for service, cap in capacities.items():
        if service not in config.system.services:
            raise ConfigError(f"appraisal: unknown service {service!r}")
        base = config.system.services[service].capacity_steps()[0][1]
        invs.append(Investment(lever=f"services.{service}.capacity", add=cap - base, funder="nhs"))
    c = config.model_copy(deep=True)
    c.scenario = Scenario(name=name, description=f"capacities {capacities}", investments=invs)
    return scenarios.apply(c)


def _run(arms: list[tuple[str, Config]], jobs: int, progress: bool = False) -> pd.DataFrame:
    out = runner.run(arms, jobs=jobs, progress=progress)
    if out.errors:
        raise RuntimeError(f"{len(out.errors)} replication(s) failed: {out.errors[0]['error']}")
    return out.runs


# -- capacity sweep ---------------------------------------------------------------------------


def capacity_sweep(
    config: Config,
    service: str,
    capacities: list[int],
    capacity_cost_per_day_gbp: float | None = None,
    delay_cost_per_day_gbp: float = 395.0,
    delay_kpi: str = "delayed_bed_days",
    delay_kpi_days_per_unit: float = 1.0,
    jobs: int = 1,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cost against capacity for one service, whole run.

    Total cost = capacity x measured days x ``capacity_cost_per_day_gbp`` (default: the service's
    cost per capacity day) + ``delay_kpi`` x ``delay_kpi_days_per_unit`` x
    ``delay_cost_per_day_gbp`` (default: acute delayed bed days at GBP 395 a night, King's Fund
    2022/23). Returns (per replication rows, per capacity summary). The summary marks the
    optimum (lowest mean total) and ``near_optimal``: capacities whose paired difference in total
    cost from the optimum has a 95% CI that includes 0 (the optimum's interval).
    """
    if not capacities or min(capacities) < 1:
        raise ConfigError("capacity_sweep.capacities: give capacities of at least 1")
    svc = config.system.services[service]
    unit = (
        svc.cost_per_capacity_day_gbp
        if capacity_cost_per_day_gbp is None
        else (capacity_cost_per_day_gbp)
    )
    arms = [
        (f"{service}={c}", _with_capacities(config, {service: c}, f"{service}={c}"))
        for c in capacities
    ]
    runs = _run(arms, jobs, progress)
    L = config.run.horizon_days - config.run.warmup_days
    runs["capacity"] = [int(s.split("=")[1]) for s in runs["scenario"]]
    runs["capacity_cost_gbp"] = runs["capacity"] * L * unit
    runs["delay_cost_gbp"] = runs[delay_kpi] * delay_kpi_days_per_unit * delay_cost_per_day_gbp
    runs["total_cost_gbp"] = runs["capacity_cost_gbp"] + runs["delay_cost_gbp"]
    rows = []
    for cap, grp in runs.groupby("capacity"):
        mean, lo, hi = interval(grp["total_cost_gbp"].to_numpy(), lower=0.0)
        rows.append(
            {
                "service": service,
                "capacity": cap,
                "total_cost_mean_gbp": mean,
                "total_cost_ci_low_gbp": lo,
                "total_cost_ci_high_gbp": hi,
                "delay_mean": grp[delay_kpi].mean(),
                "capacity_cost_gbp": grp["capacity_cost_gbp"].mean(),
                "delay_cost_mean_gbp": grp["delay_cost_gbp"].mean(),
                "n": len(grp),
            }
        )
    summary = pd.DataFrame(rows).sort_values("capacity").reset_index(drop=True)
    best = int(summary.loc[summary["total_cost_mean_gbp"].idxmin(), "capacity"])
    summary["optimal"] = summary["capacity"] == best
    ref = runs[runs["capacity"] == best].set_index("replication")["total_cost_gbp"]
    near = []
    for cap in summary["capacity"]:
        other = runs[runs["capacity"] == cap].set_index("replication")["total_cost_gbp"]
        _, lo, hi = interval((other - ref).dropna().to_numpy())
        near.append(bool(cap == best or (lo <= 0 <= hi)))
    summary["near_optimal"] = near
    return runs, summary


def capacity_for_target(
    runs: pd.DataFrame, kpi: str, target: float, confidence: float = 0.95
) -> int | None:
    """The smallest swept capacity whose ``confidence`` quantile of ``kpi`` across replications is
    at most ``target`` (e.g. days over 95% occupancy at most 10 in 95% of years); None if none."""
    q = runs.groupby("capacity")[kpi].quantile(confidence)
    ok = q[q <= target]
    return int(ok.index.min()) if len(ok) else None


# -- budget allocator -------------------------------------------------------------------------


@dataclass
class Lever:
    """A capacity bought in whole units: ``step`` units at a time up to ``max_units``."""

    service: str
    unit_cost_gbp_per_year: float
    max_units: int
    step: int = 1


def mixes(levers: list[Lever], budget_gbp: float, years: float) -> list[tuple[int, ...]]:
    """Every mix of units on the levers' grids that costs at most the budget."""
    grids = [range(0, lv.max_units + 1, lv.step) for lv in levers]
    out = []
    for mix in itertools.product(*grids):
        cost = sum(u * lv.unit_cost_gbp_per_year * years for u, lv in zip(mix, levers))
        if cost <= budget_gbp + 1e-9:
            out.append(mix)
    return out


def allocate(
    levers: list[Lever],
    budget_gbp: float,
    years: float,
    evaluate: Callable[[list[tuple[int, ...]]], dict[tuple[int, ...], np.ndarray]],
    budgets: list[float] | None = None,
    method: str = "auto",
    max_grid: int = 60,
    trials: int = 40,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Search mixes of levers under a budget; lower objective is better.

    ``evaluate`` maps mixes to per-replication objective values (paired across mixes: the same
    replications). ``method``: ``grid`` evaluates every mix within the budget; ``optuna`` runs
    ``trials`` evaluations chosen by optuna's TPE sampler (seeded, so repeatable), proposing
    units on each lever's grid and skipping mixes over the budget; ``auto`` uses the grid when it
    has at most ``max_grid`` mixes. Returns (every mix evaluated, the frontier: the best mix
    evaluated at each budget level, with the 95% CI of its objective).
    """
    candidates = mixes(levers, budget_gbp, years)
    if method == "grid" or (method == "auto" and len(candidates) <= max_grid):
        values = evaluate(candidates)
    elif method in ("optuna", "auto"):
        values = _optuna_search(levers, budget_gbp, years, evaluate, trials, seed)
    else:
        raise ConfigError(f"allocate.method: unknown method {method!r} (grid, optuna or auto)")

    def cost(mix):
        return sum(u * lv.unit_cost_gbp_per_year * years for u, lv in zip(mix, levers))

    rows = []
    for mix, v in values.items():
        mean, lo, hi = interval(np.asarray(v, dtype=float))
        rows.append(
            {
                **{f"units_{lv.service}": u for u, lv in zip(mix, levers)},
                "cost_gbp": cost(mix),
                "objective_mean": mean,
                "objective_ci_low": lo,
                "objective_ci_high": hi,
                "n": len(v),
            }
        )
    table = pd.DataFrame(rows)
    levels = budgets or list(np.linspace(0, budget_gbp, 6))
    frontier = []
    for b in levels:
        within = table[table["cost_gbp"] <= b + 1e-9]
        if len(within):
            best = within.loc[within["objective_mean"].idxmin()]
            frontier.append({"budget_gbp": b, **best.to_dict()})
    return table, pd.DataFrame(frontier)


def _optuna_search(levers, budget_gbp, years, evaluate, trials, seed):
    """TPE search over the levers' grids within the budget; the zero mix is always evaluated."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    values: dict[tuple[int, ...], np.ndarray] = {}
    zero = tuple(0 for _ in levers)
    values.update(evaluate([zero]))

    def objective(trial):
        mix = tuple(
            trial.suggest_int(f"units_{lv.service}", 0, lv.max_units, step=lv.step) for lv in levers
        )
        if sum(u * lv.unit_cost_gbp_per_year * years for u, lv in zip(mix, levers)) > (
            budget_gbp + 1e-9
        ):
            raise optuna.TrialPruned()  # over budget: never evaluated, never chosen
        if mix not in values:
            values.update(evaluate([mix]))
        return float(np.mean(values[mix]))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return values


def simulated_objective(
    config: Config, levers: list[Lever], objective: str, jobs: int = 1, progress: bool = False
):
    """An ``evaluate`` for ``allocate`` that runs the model: each mix adds its units to the base
    capacities for the whole run; the objective is a KPI of runs.parquet (e.g. delayed_bed_days,
    or cost_total_gbp, which includes the levers' cost as investments)."""

    def evaluate(candidates):
        arms = []
        for k, mix in enumerate(candidates):
            invs = [
                Investment(
                    lever=f"services.{lv.service}.capacity",
                    add=u,
                    funder="ibcf",
                    cost_gbp_per_unit_year=lv.unit_cost_gbp_per_year,
                )
                for u, lv in zip(mix, levers)
                if u
            ]
            c = config.model_copy(deep=True)
            c.scenario = Scenario(name=f"mix{k}", investments=invs)
            arms.append((f"mix{k}", scenarios.apply(c)))
        runs = _run(arms, jobs, progress)
        return {
            mix: runs[runs["scenario"] == f"mix{k}"]
            .sort_values("replication")[objective]
            .to_numpy()
            for k, mix in enumerate(candidates)
        }

    return evaluate


# -- bottleneck view --------------------------------------------------------------------------


def bottlenecks(
    config: Config,
    units: int = 5,
    jobs: int = 1,
    unit_costs_gbp_per_year: dict[str, float] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """For each capacity: delayed bed days avoided by ``units`` more (paired, whole run), per
    unit and per GBP 1,000 a year (unit cost: given, else the service's cost per capacity day,
    else its cost per occupied day, x 365)."""
    base_name = "baseline"
    arms = [(base_name, scenarios.apply(config))]
    limited = [s for s, svc in config.system.services.items() if not svc.unlimited]
    acute = config.system.acute  # listed last
    services = [s for s in limited if s != acute] + ([acute] if acute in limited else [])
    for s in services:
        base = config.system.services[s].capacity_steps()[0][1]
        arms.append((f"{s}+{units}", _with_capacities(config, {s: base + units}, f"{s}+{units}")))
    runs = _run(arms, jobs, progress)
    b = runs[runs["scenario"] == base_name].set_index("replication")["delayed_bed_days"]
    rows = []
    costs = unit_costs_gbp_per_year or {}
    for s in services:
        r = runs[runs["scenario"] == f"{s}+{units}"].set_index("replication")["delayed_bed_days"]
        avoided, lo, hi = interval((b - r).dropna().to_numpy())
        svc = config.system.services[s]
        per_year = costs.get(
            s, 365.0 * (svc.cost_per_capacity_day_gbp or svc.cost_per_occupied_day_gbp)
        )
        per_unit = avoided / units
        rows.append(
            {
                "service": s,
                "units_added": units,
                "delayed_bed_days_avoided": avoided,
                "ci_low": lo,
                "ci_high": hi,
                "per_unit": per_unit,
                "unit_cost_gbp_per_year": per_year,
                "per_gbp_1000_a_year": per_unit / (per_year / 1000) if per_year else math.nan,
                "n": len(r),
            }
        )
    return pd.DataFrame(rows).sort_values("per_unit", ascending=False).reset_index(drop=True)


# -- driver -----------------------------------------------------------------------------------


def run_appraisals(config: Config, jobs: int, progress: bool) -> dict[str, pd.DataFrame]:
    """The appraisals asked for in ``config.appraise``, as named tables (file stems)."""
    a = config.appraise
    tables: dict[str, pd.DataFrame] = {}
    base = scenarios.apply(config)
    L = config.run.horizon_days - config.run.warmup_days
    if a.capacity_sweep.service is not None:
        sw = a.capacity_sweep
        runs, summary = capacity_sweep(
            base,
            sw.service,
            sw.capacities,
            sw.capacity_cost_per_day_gbp,
            sw.delay_cost_per_day_gbp,
            sw.delay_kpi,
            jobs=jobs,
            progress=progress,
        )
        if sw.target_kpi is not None and sw.target is not None:
            cap = capacity_for_target(runs, sw.target_kpi, sw.target, sw.confidence)
            summary["capacity_for_target"] = cap if cap is not None else math.nan
            summary["target"] = f"{sw.target_kpi} <= {sw.target:g} in {sw.confidence:.0%}"
        tables["capacity_sweep"] = summary
        tables["capacity_sweep_runs"] = runs
    if a.bottleneck_units > 0:
        tables["bottlenecks"] = bottlenecks(base, a.bottleneck_units, jobs, progress=progress)
    if a.allocate.levers and a.allocate.budget_gbp > 0:
        levers = [
            Lever(lv.service, lv.unit_cost_gbp_per_year, lv.max_units, lv.step)
            for lv in a.allocate.levers
        ]
        evaluate = simulated_objective(base, levers, a.allocate.objective, jobs, progress)
        table, frontier = allocate(
            levers,
            a.allocate.budget_gbp,
            L / 365.0,
            evaluate,
            method=a.allocate.method,
            trials=a.allocate.trials,
            seed=config.run.seed,
        )
        tables["allocation"] = table
        tables["allocation_frontier"] = frontier
    return tables
