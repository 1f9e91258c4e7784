"""Scenarios and investments on the default system: paired comparisons, the iBCF reablement
effect, the funding cliff, exact investment costs, and every scenario file runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from flowsim import runner, scenarios
from flowsim.config import ConfigError, Investment, Scenario, validate

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def default_config(**run):
    system = yaml.safe_load((ROOT / "configs/system/default.yaml").read_text())
    return validate({"system": system, "run": {"progress": False, "jobs": 2, **run}})


def paired(config, name):
    arms = scenarios.arms(config.model_copy(update={"compare": [name]}), SCENARIOS)
    assert [a for a, _ in arms] == ["baseline", name]
    out = runner.run(arms, jobs=2)
    assert not out.errors
    return out


@pytest.fixture(scope="module")
def ibcf():
    # 20 replications: delays have a heavy tail (winter cascades in some replications), so
    # fewer leave the interval of a real effect too wide to exclude zero
    return paired(default_config(replications=20, seed=404), "ibcf_reablement")


def test_paired_differences_have_smaller_variance_than_unpaired(ibcf):
    runs = ibcf.runs
    for kpi in ("delayed_bed_days", "acute_occupancy_mean", "cost_total_gbp"):
        b = runs[runs.scenario == "baseline"].sort_values("replication")[kpi].to_numpy()
        s = runs[runs.scenario == "ibcf_reablement"].sort_values("replication")[kpi].to_numpy()
        paired_var = np.var(s - b, ddof=1)
        unpaired_var = np.var(s, ddof=1) + np.var(b, ddof=1)
        assert paired_var < unpaired_var, kpi


def test_ibcf_reablement_cuts_delays_waiting_for_reablement(ibcf):
    c = scenarios.compare(ibcf.runs).set_index(["scenario", "kpi"])
    row = c.loc[("ibcf_reablement", "delayed_bed_days_for_reablement")]
    assert row.diff_ci_high < 0, row  # the whole 95% interval below zero
    assert row.n == 20


def test_funding_cliff_delays_return_after_the_money_stops():
    cfg = default_config(replications=10, seed=7)
    out = paired(cfg, "funding_cliff")
    applied = scenarios.arms(cfg.model_copy(update={"compare": ["funding_cliff"]}), SCENARIOS)[1][1]
    assert applied.run.horizon_days == cfg.run.warmup_days + 730
    inv = applied.scenario.investments[0]
    end = inv.end_time
    d = out.daily[out.daily.service == "reablement"]
    # capacity: baseline + units while funded, back to baseline after
    base_cap = cfg.system.services["reablement"].capacity_steps()[0][1]
    funded = d[(d.scenario == "funding_cliff") & (d.day >= inv.start_time) & (d.day < end)]
    after = d[(d.scenario == "funding_cliff") & (d.day >= end)]
    assert (funded.capacity == base_cap + inv.units).all()
    assert (after.capacity == base_cap).all()

    acute = out.daily[out.daily.service == "acute"]

    def gap(lo, hi):
        """Mean paired scenario - baseline acute beds held by people ready to leave, [lo, hi)."""
        w = acute[(acute.day >= lo) & (acute.day < hi)]
        w = w.groupby(["scenario", "replication"]).delayed_mean.mean()
        return (w["funding_cliff"] - w["baseline"]).to_numpy()

    # Whole years, so both windows hold a winter: the funded year, and the year after the money
    # stops (from two months after, when the bought places have emptied out).
    funded_gap = gap(inv.start_time, end)
    after_gap = gap(end + 60, end + 365)
    from flowsim.results import interval

    # While funded, fewer acute beds are held by delayed people (95% CI of the gap below zero);
    # after, the gap closes: the change (after - funded) has a 95% CI above zero.
    _, _, hi = interval(funded_gap)
    assert hi < 0, funded_gap
    _, lo, _ = interval(after_gap - funded_gap)
    assert lo > 0, (funded_gap, after_gap)


def test_investment_cost_is_units_times_days_times_unit_cost():
    cfg = default_config(replications=2, horizon_days=300, warmup_days=100)
    N, D, U, flat = 12, 120, 54750.0, 30000.0
    inv = Investment(
        lever="services.step_down.capacity",
        add=N,
        start_day=30,
        end_day=30 + D,
        funder="nhs",
        cost_gbp_per_unit_year=U,
        cost_gbp_per_year=flat,
    )
    scen = Scenario(name="test", investments=[inv])
    applied = scenarios.with_scenario(cfg, scen)
    steps = dict(applied.system.services["step_down"].capacity_steps())
    base = cfg.system.services["step_down"].capacity_steps()[0][1]
    assert steps[130.0] == base + N and steps[250.0] == base
    out = runner.run([("baseline", scenarios.apply(cfg)), ("test", applied)], jobs=1)
    s = out.runs[out.runs.scenario == "test"].iloc[0]
    b = out.runs[out.runs.scenario == "baseline"].iloc[0]
    expected = N * D * U / 365 + flat * D / 365
    assert s.investment_cost_gbp == pytest.approx(expected, rel=1e-12)
    assert s.investment_cost_nhs_gbp == pytest.approx(expected, rel=1e-12)
    # bought places are costed once (by the investment): the service's capacity cost is unchanged
    assert s.cost_step_down_gbp == pytest.approx(b.cost_step_down_gbp, rel=1e-12)
    # and the NHS pays: its cost rises by the investment plus its own service changes
    nhs_services = sum(
        s[f"cost_{x}_gbp"] - b[f"cost_{x}_gbp"] for x in ("acute", "step_down", "assessment")
    )
    assert s.cost_nhs_gbp - b.cost_nhs_gbp == pytest.approx(expected + nhs_services, rel=1e-9)


def test_budget_buys_whole_units_over_the_funded_days():
    cfg = default_config(replications=1)
    inv = Investment(
        lever="services.reablement.capacity",
        budget_gbp=1_000_000,
        cost_gbp_per_unit_year=45625,
        start_day=0,
        end_day=200,
    )
    applied = scenarios.with_scenario(cfg, Scenario(name="b", investments=[inv]))
    assert applied.scenario.investments[0].units == math.floor(1_000_000 / (45625 * 200 / 365))


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_scenario_applies_and_runs(path):
    cfg = default_config(replications=2, horizon_days=90, warmup_days=30, jobs=1)
    scen = scenarios.load(path.stem, SCENARIOS)
    assert scen.name == path.stem
    scen = scen.model_copy(update={"measured_days": None})
    applied = scenarios.with_scenario(cfg, scen)
    out = runner.run([(scen.name, applied)], jobs=1)
    assert not out.errors and len(out.runs) == 2


@pytest.mark.parametrize(
    "investment, field",
    [
        ({"lever": "services.reablement.capacity", "add": 5, "budget_gbp": 1000}, "exactly one"),
        ({"lever": "services.nowhere.capacity", "add": 5}, "lever"),
        (
            {"lever": "services.reablement.capacity", "add": 5, "start_day": 50, "end_day": 10},
            "end_day",
        ),
        ({"lever": "services.assessment.stay.mean", "multiply": 0.5, "end_day": 100}, "end_day"),
    ],
)
def test_bad_investments_are_rejected_naming_the_field(investment, field):
    cfg = default_config(replications=1)
    with pytest.raises((ConfigError, ValueError), match=field):
        scenarios.with_scenario(cfg, Scenario(name="bad", investments=[Investment(**investment)]))


def test_unknown_change_path_is_rejected():
    cfg = default_config(replications=1)
    with pytest.raises(ConfigError, match="scenario.changes"):
        scenarios.with_scenario(cfg, Scenario(name="bad", changes={"services.nowhere.x": 1}))
