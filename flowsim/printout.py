"""What the ``flowsim`` command prints: the headline KPIs with their 95% intervals (the median
where a few replications drive a mean), the paired changes of a comparison, and the appraisals."""

from __future__ import annotations

import math
import textwrap

from flowsim import national, results, scenarios, uncertainty
from flowsim.config import PATHWAYS
from flowsim.wording import fmt, interval_text


def number(x: float, kpi: str) -> str:
    """A KPI's value in the printout: per cent for rates, millions for large numbers."""
    if x != x:
        return "n/a"
    if kpi.endswith("_rate"):
        return f"{100 * x:.1f}%"
    if abs(x) >= 1e6:
        return f"{x / 1e6:,.2f}m"
    return f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}"


def summary(table, title: str, runs=None) -> None:
    """The headline KPIs: mean and 95% CI from ``table`` (summary.csv's rows); for a KPI whose
    mean a few replications drive (``uncertainty.driven_by_few`` on ``runs``), the median, its
    interval and a sentence saying why instead."""
    print(f"\n{title}")
    print(f"  {'KPI':<40} {'mean':>10}   {'95% CI':>23}")
    for scenario, grp in table.groupby("scenario", sort=False):
        rows = grp.set_index("kpi")
        mine = runs[runs["scenario"] == scenario] if runs is not None else None
        for kpi, label in results.HEADLINE:
            if kpi not in rows.index:
                continue
            r = rows.loc[kpi]
            if mine is not None and kpi in mine and uncertainty.driven_by_few(mine[kpi]):
                _median(kpi, label, mine[kpi].to_numpy(dtype=float))
                continue
            ci = f"{number(r.ci_low, kpi)} to {number(r.ci_high, kpi)}"
            print(f"  {label:<40} {number(r['mean'], kpi):>10}   {ci:>23}")
        print(f"  (scenario {scenario}, {int(rows.loc['admissions', 'n'])} replications)")


def national_measures(table, config: dict, top: int = 5) -> None:
    """The discharge ready date measures (all pathways, then each pathway's share discharged on
    the date and mean days of its delayed discharges) and the largest reasons for delayed bed
    days in the scheme the system leads with, for the first scenario (``national.py``)."""
    scenario = table["scenario"].iloc[0]
    drd = national.discharge_ready(table, scenario)
    if drd is not None:
        census = config.get("system", {}).get("nctr_census_time", "23:59")
        print(f"\n  Discharge ready date (NHS England's measures), {scenario}")
        every = drd[drd["pathway"] == "All pathways"].set_index("kpi")
        for kpi, label in (
            ("drd_days_0_share", "Discharged on their discharge ready date"),
            ("drd_mean_days", "Days from ready to discharge, mean"),
            ("drd_mean_days_delayed", "  the same, delayed discharges only"),
            ("nctr_census_mean", f"Not meeting the criteria to reside at {census}"),
        ):
            r = every.loc[kpi]
            ci = interval_text(r["ci_low"], r["ci_high"], r["unit"])
            print(f"  {label:<50} {fmt(r['mean'], r['unit']):>8}   {ci:>19}")
        by = drd.set_index(["kpi"])
        parts = [
            f"{p} {fmt(by.loc[f'drd_days_0_share_{p}', 'mean'], '%')}"
            f" {fmt(by.loc[f'drd_mean_days_delayed_{p}', 'mean'])} d"
            for p in PATHWAYS
            if f"drd_days_0_share_{p}" in by.index
        ]
        print("  by pathway (on the date, mean days if delayed): " + ", ".join(parts))
    scheme = national.schemes(config)[0]
    why = national.reasons(table, scenario, scheme)
    if why is not None:
        print(f"\n  Delayed bed days by reason: {national.SCHEME_NAMES[scheme]}")
        for _, r in why.head(top).iterrows():
            print(f"  {r['reason']:<50} {fmt(r['mean']):>8}   {fmt(r['share'], '%'):>6}")


def _median(kpi: str, label: str, values) -> None:
    """A KPI's median with its distribution-free interval (its real coverage when below 95%),
    then the sentence saying why the mean is not shown."""
    median, lo, hi, cover = uncertainty.median_interval(values)
    ci = f"{number(lo, kpi)} to {number(hi, kpi)}" + (f" ({cover:.0%})" if cover < 0.95 else "")
    print(f"  {(label + ' (median)')[:40]:<40} {number(median, kpi):>10}   {ci:>23}")
    why = uncertainty.WHY_FEW.get(kpi, "A few replications are far above the others")
    text = uncertainty.few_sentence(label, values, lambda x: number(x, kpi))
    text += f" {why}: see the report."
    print(textwrap.fill(text, width=96, initial_indent="    ", subsequent_indent="    "))


def comparison(table) -> None:
    """The paired changes of a comparison: scenario minus baseline, with 95% intervals."""
    print("\nPaired change against the baseline (scenario - baseline, same random numbers)")
    for name, grp in table.groupby("scenario", sort=False):
        rows = grp.set_index("kpi")
        print(f"  {name}")
        for kpi, label in scenarios.COMPARED:
            if kpi in rows.index:
                r = rows.loc[kpi]
                ci = f"{number(r.diff_ci_low, kpi)} to {number(r.diff_ci_high, kpi)}"
                print(f"    {label:<38} {number(r.diff_mean, kpi):>10}   {ci:>23}")


def appraisals(tables: dict) -> float:
    """The appraisals' tables as a lead reads them; returns the value a sweeper would optimise
    (the least mean total cost of a capacity sweep, or the best mix's objective)."""
    value = math.inf
    if "capacity_sweep" in tables:
        t = tables["capacity_sweep"]
        print("\nCost against capacity (mean total cost with 95% CI; * optimum, ~ not worse)")
        for _, r in t.iterrows():
            mark = "*" if r["optimal"] else ("~" if r["near_optimal"] else " ")
            print(
                f"  {mark} {r['service']} {int(r['capacity']):>6}   "
                f"{number(r['total_cost_mean_gbp'], 'gbp'):>10}   "
                f"{number(r['total_cost_ci_low_gbp'], 'gbp')} to "
                f"{number(r['total_cost_ci_high_gbp'], 'gbp')}"
            )
        if "capacity_for_target" in t:
            print(f"  capacity for {t['target'].iloc[0]}: {t['capacity_for_target'].iloc[0]}")
        value = float(t["total_cost_mean_gbp"].min())
    if "bottlenecks" in tables:
        print("\nBottlenecks: delayed bed days avoided per extra unit (95% CI), per GBP 1k a year")
        for _, r in tables["bottlenecks"].iterrows():
            print(
                f"  {r['service']:<14} {r['per_unit']:>8.1f}   "
                f"({r['ci_low'] / r['units_added']:.1f} to {r['ci_high'] / r['units_added']:.1f})"
                f"   {r['per_gbp_1000_a_year']:.2f}"
            )
    if "allocation_frontier" in tables:
        f = tables["allocation_frontier"]
        print("\nBest mix at each budget (objective mean with 95% CI)")
        print(f.to_string(index=False))
        value = float(f["objective_mean"].iloc[-1])
    return value
