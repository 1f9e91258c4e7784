"""What-if scenarios: apply a scenario's changes and investments to a system, and compare
scenarios with the baseline using common random numbers (paired differences).

What an investment buys, over which days and at what cost, is resolved in ``investments.py``;
``apply`` moves the levers accordingly.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd

from flowsim import investments
from flowsim.config import Config, ConfigError, Scenario, read_yaml, validate
from flowsim.uncertainty import interval, pooled, pooled_weight, t_quantile

COMPARED = (
    ("delayed_bed_days", "Delayed bed days"),
    ("delayed_bed_days_social_care", "  of which social care"),
    ("acute_bed_days", "Acute bed days"),
    ("boarding_hours", "Boarding hours"),
    ("delayed_patients", "People delayed"),
    ("care_home_admissions", "Care home admissions"),
    ("investment_cost_gbp", "Investment, GBP"),
    ("cost_total_gbp", "Net system cost, GBP"),
    ("cost_per_delayed_bed_day_avoided_gbp", "Net cost per delayed bed day avoided"),
)
"""The KPIs of a comparison that the CLI prints and the summit pack shows, with labels."""


def _get(tree: dict, path: list[str], where: str) -> Any:
    node: Any = tree
    for k in path:
        if not isinstance(node, dict) or k not in node:
            raise ConfigError(f"{where}: no parameter system.{'.'.join(path)}")
        node = node[k]
    return node


def _set(tree: dict, path: list[str], value: Any) -> None:
    node = tree
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def apply(config: Config) -> Config:
    """The config with its scenario applied to the system (validated again): its ``changes``
    set, and its investments' levers moved as ``investments.resolve`` resolves them (a capacity
    investment adds places to the service's capacity schedule over its funded days)."""
    scenario = config.scenario
    raw = config.model_dump(mode="json")
    system = raw["system"]
    for path, value in scenario.changes.items():
        where = f"scenario.changes.{path}"
        _get(system, path.split("."), where)
        _set(system, path.split("."), value)
    bought = investments.of(config)
    for k, (inv, got) in enumerate(zip(scenario.investments, bought)):
        where = f"scenario.investments.{k}"
        path = inv.lever.split(".")
        current = _get(system, path, f"{where}.lever")
        service = got.service
        if service is not None:
            current_cap = system["services"][service]["capacity"]  # earlier changes included
            if current_cap == "unlimited":
                raise ConfigError(
                    f"{where}.lever: services.{service} has unlimited capacity; no places to add"
                )
            steps = (
                [(float(x["from_day"]), int(x["capacity"])) for x in current_cap]
                if isinstance(current_cap, list)
                else [(0.0, int(current_cap))]
            )
            system["services"][service]["capacity"] = [
                {"from_day": d, "capacity": c}
                for d, c in investments.add_window(steps, got.units, got.start, got.end)
            ]
        else:
            if not isinstance(current, int | float) or isinstance(current, bool):
                raise ConfigError(f"{where}.lever: system.{inv.lever} is not a number")
            if inv.start_day != 0 or inv.end_day is not None:
                field = "end_day" if inv.end_day is not None else "start_day"
                raise ConfigError(
                    f"{where}.{field}: only capacity levers can be time-limited; "
                    f"system.{inv.lever} changes for the whole run"
                )
            value = current * inv.multiply if inv.multiply is not None else current + got.units
            _set(system, path, type(current)(value) if isinstance(current, int) else value)
    try:
        return validate(raw)
    except ConfigError as err:
        raise ConfigError(f"scenario {scenario.name!r} makes the system invalid:\n{err}") from None


# -- comparison -------------------------------------------------------------------------------


def compare(runs: pd.DataFrame, baseline: str = "baseline") -> pd.DataFrame:
    """Paired differences (scenario - baseline, replication by replication) with 95% CIs.

    One row per (scenario, KPI): ``baseline_mean``, ``scenario_mean``, ``diff_mean``,
    ``diff_ci_low``, ``diff_ci_high``, ``n``. Replication r of every scenario used the same random
    streams, so the pairs share their randomness (common random numbers).
    """
    runs = runs.copy()
    spent = [c for c in runs.columns if c.startswith("investment_cost")]
    runs[spent] = runs[spent].fillna(0.0)  # no investment by a funder: it spent nothing
    base = runs[runs["scenario"] == baseline].set_index("replication")
    kpis = [c for c in runs.columns if c not in ("scenario", "replication")]
    rows = []
    for name, grp in runs[runs["scenario"] != baseline].groupby("scenario", sort=False):
        g = grp.set_index("replication")
        common = g.index.intersection(base.index)
        for k in kpis:
            b = base.loc[common, k].to_numpy(dtype=float)
            s = g.loc[common, k].to_numpy(dtype=float)
            w = pooled_weight(k)
            if w in runs:
                row = _pooled_difference(b, base.loc[common, w], s, g.loc[common, w])
                rows.append({"scenario": name, "kpi": k, **row})
                continue
            ok = ~(np.isnan(b) | np.isnan(s))
            d_mean, lo, hi = interval(s[ok] - b[ok])
            rows.append(
                {
                    "scenario": name,
                    "kpi": k,
                    "baseline_mean": float(np.mean(b[ok])) if ok.any() else math.nan,
                    "scenario_mean": float(np.mean(s[ok])) if ok.any() else math.nan,
                    "diff_mean": d_mean,
                    "diff_ci_low": lo,
                    "diff_ci_high": hi,
                    "n": int(ok.sum()),
                }
            )
        rows.extend(_cost_per_day_avoided(name, b_runs=base.loc[common], s_runs=g.loc[common]))
    return pd.DataFrame(rows)


def _pooled_difference(b, b_weights, s, s_weights, level: float = 0.95) -> dict:
    """Paired change of a KPI pooled per patient (``uncertainty.POOLED``): the difference of the
    two pooled means, with a delta-method interval over paired replications (the linearised
    ratios of a replication, scenario minus baseline, are the paired units)."""
    wb, ws = np.asarray(b_weights, dtype=float), np.asarray(s_weights, dtype=float)
    rb, _, _ = pooled(b, wb)
    rs, _, _ = pooled(s, ws)
    n, diff, lo, hi = len(b), rs - rb, math.nan, math.nan
    if n >= 2 and wb.sum() > 0 and ws.sum() > 0:
        yb = np.where(wb > 0, np.nan_to_num(b) * wb, 0.0)
        ys = np.where(ws > 0, np.nan_to_num(s) * ws, 0.0)
        z = (ys - rs * ws) / ws.mean() - (yb - rb * wb) / wb.mean()
        half = t_quantile(level, n - 1) * float(np.std(z, ddof=1)) / math.sqrt(n)
        lo, hi = diff - half, diff + half
    return {
        "baseline_mean": rb,
        "scenario_mean": rs,
        "diff_mean": diff,
        "diff_ci_low": lo,
        "diff_ci_high": hi,
        "n": n,
    }


def _cost_per_day_avoided(name: str, b_runs: pd.DataFrame, s_runs: pd.DataFrame) -> list[dict]:
    """Net system cost per delayed bed day avoided: a ratio of mean paired differences, with a
    95% percentile bootstrap interval over replications (paired resampling, fixed seed)."""
    dc = (s_runs["cost_total_gbp"] - b_runs["cost_total_gbp"]).to_numpy(dtype=float)
    da = (b_runs["delayed_bed_days"] - s_runs["delayed_bed_days"]).to_numpy(dtype=float)
    n = len(dc)
    ratio = dc.mean() / da.mean() if n and da.mean() > 0 else math.nan
    lo = hi = math.nan
    if n >= 2 and da.mean() > 0:
        rng = np.random.default_rng(20170)
        idx = rng.integers(0, n, size=(2000, n))
        num, den = dc[idx].mean(axis=1), da[idx].mean(axis=1)
        good = den > 0
        if good.mean() > 0.95:
            lo, hi = np.percentile(num[good] / den[good], [2.5, 97.5])
    return [
        {
            "scenario": name,
            "kpi": "cost_per_delayed_bed_day_avoided_gbp",
            "baseline_mean": math.nan,
            "scenario_mean": math.nan,
            "diff_mean": ratio,
            "diff_ci_low": lo,
            "diff_ci_high": hi,
            "n": n,
        }
    ]


def load(name: str, scenarios_dir) -> Scenario:
    """A scenario file ``<scenarios_dir>/<name>.yaml`` as a validated Scenario."""
    path = scenarios_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in scenarios_dir.glob("*.yaml"))
        raise ConfigError(f"compare: no scenario {name!r} (known: {', '.join(known)})")
    raw = read_yaml(path) or {}
    raw.pop("defaults", None)
    try:
        return Scenario.model_validate(raw)
    except Exception as err:  # pydantic error, reported with the file's name
        raise ConfigError(f"scenarios/{name}.yaml: {err}") from None


def arms(config: Config, scenarios_dir) -> list[tuple[str, Config]]:
    """The configs to run: the scenario alone if it is the baseline and nothing is compared,
    else the baseline first and each scenario after it (``config.compare`` names more), all on
    the same measured window (the longest ``measured_days`` asked for)."""
    names = [n for n in config.compare if n != config.scenario.name]
    if config.scenario.name == "baseline" and not names:
        return [("baseline", apply(config))]
    picked = [config.scenario] if config.scenario.name != "baseline" else []
    picked += [load(n, scenarios_dir) for n in names]
    measured = [s.measured_days for s in picked if s.measured_days is not None]
    base = config.model_copy(deep=True)
    if measured:
        base.run.horizon_days = base.run.warmup_days + max(measured)
    out = [("baseline", with_scenario(base, Scenario()))]
    out += [(s.name, with_scenario(base, s)) for s in picked]
    return out


def with_scenario(config: Config, scenario: Scenario) -> Config:
    """The same system and run with another scenario, applied."""
    c = copy.deepcopy(config)
    c.scenario = scenario
    return apply(c)
