"""Scenarios and investments (DESIGN.md section 3): common random numbers, the iBCF reablement
effect, the funding cliff, exact investment costs, every scenario file composing and running,
bad scenario input rejected, and the ``flowsim scenario=... compare=[...]`` command end to end.

All runs use the default system (configs/system/default.yaml). Runs are shared through
module-scoped fixtures; each distinct set of replications happens once.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from flowsim import investments, runner, scenarios, uncertainty
from flowsim.config import Config, ConfigError, Investment, Scenario, validate

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"
SCENARIO_DIR = ROOT / "scenarios"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.yaml"))
COMPARISON_COLUMNS = ["scenario", "kpi", "baseline_mean", "scenario_mean", "diff_mean",
                      "diff_ci_low", "diff_ci_high", "n"]


# -- helpers ------------------------------------------------------------------------------------


def system_raw() -> dict:
    return yaml.safe_load((CONFIG_DIR / "system" / "default.yaml").read_text())


def scenario_raw(name: str) -> dict:
    raw = yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text()) or {}
    raw.pop("defaults", None)
    return raw


def config_for(scenario: dict | None = None, system: dict | None = None, **run) -> Config:
    """The default system (or ``system``) with a scenario (as in a scenario file) and run
    settings."""
    raw = {"system": system or system_raw(), "run": {"progress": False, "jobs": 2, **run}}
    if scenario is not None:
        raw["scenario"] = scenario
    return validate(raw)


def build_arms(config: Config) -> list[tuple[str, Config]]:
    """Baseline + scenario configs, as the command builds them (``arms`` lived in cli.py and is
    moving to scenarios.py; either is accepted)."""
    if hasattr(scenarios, "arms"):
        return scenarios.arms(config, SCENARIO_DIR)
    from flowsim import cli

    return cli.arms(config)


def run_ok(arms: list[tuple[str, Config]], jobs: int = 2) -> runner.Outcome:
    out = runner.run(arms, jobs=jobs)
    assert not out.errors, out.errors[0]["traceback"]
    return out


def paired_arrays(runs: pd.DataFrame, scenario: str, kpi: str) -> tuple[np.ndarray, np.ndarray]:
    """(baseline, scenario) values of a KPI, aligned by replication."""
    b = runs[runs.scenario == "baseline"].set_index("replication")[kpi].sort_index()
    s = runs[runs.scenario == scenario].set_index("replication")[kpi].sort_index()
    assert list(b.index) == list(s.index)
    return b.to_numpy(dtype=float), s.to_numpy(dtype=float)


def capacity_at(steps: list[tuple[float, int]], t: float) -> int:
    return [c for day, c in steps if day <= t][-1]


def expected_units(inv: dict, window_days: float) -> float:
    """Units an investment (as written in a scenario file) buys: DESIGN.md section 3."""
    if inv.get("add") is not None:
        return float(inv["add"])
    if inv.get("multiply") is not None:
        return 0.0
    start = inv.get("start_day", 0)
    end = inv.get("end_day", window_days)
    return float(math.floor(inv["budget_gbp"] / (inv["cost_gbp_per_unit_year"] * (end - start)
                                                 / 365.0)))


def expected_investment_cost(scenario: dict, window_days: float) -> dict[str, float]:
    """Cost by funder over the measured window: units x funded days x unit cost / 365 plus the
    flat yearly cost x funded days / 365 (days count from the end of the warm-up)."""
    out: dict[str, float] = {}
    for inv in scenario.get("investments", []):
        start = inv.get("start_day", 0)
        end = min(window_days, inv.get("end_day", window_days))
        days = max(0.0, end - start)
        cost = (abs(expected_units(inv, window_days)) * inv.get("cost_gbp_per_unit_year", 0)
                + inv.get("cost_gbp_per_year", 0)) * days / 365.0
        funder = inv.get("funder", "ibcf")
        out[funder] = out.get(funder, 0.0) + cost
    return out


# -- 1 and 2: baseline vs ibcf_reablement with common random numbers ----------------------------

IBCF_REPLICATIONS = 10


@pytest.fixture(scope="module")
def ibcf():
    """Baseline and ibcf_reablement, 10 replications each, default horizon (545 days, 180 of
    warm-up), the same seeds: the arms the command builds for ``scenario=ibcf_reablement``."""
    config = config_for(scenario_raw("ibcf_reablement"), replications=IBCF_REPLICATIONS)
    arms = build_arms(config)
    assert [name for name, _ in arms] == ["baseline", "ibcf_reablement"]
    assert arms[0][1].scenario.investments == [] and arms[0][1].scenario.changes == {}
    assert arms[0][1].run == arms[1][1].run  # same seed, replications and window
    return config, arms, run_ok(arms)


def test_paired_differences_have_smaller_variance_than_unpaired(ibcf):
    config, _, out = ibcf
    # Common random numbers, exactly: the investment starts at the end of the warm-up, so every
    # replication of both arms is the same history up to then (same seed, same streams).
    W = config.run.warmup_days
    warm = out.daily[out.daily.day < W]
    b = warm[warm.scenario == "baseline"].drop(columns="scenario").reset_index(drop=True)
    s = warm[warm.scenario == "ibcf_reablement"].drop(columns="scenario").reset_index(drop=True)
    assert len(b) > 0
    pd.testing.assert_frame_equal(b, s)
    # Hence the paired difference varies less than an unpaired difference of the same runs
    # (var(s - b) = var(s) + var(b) - 2 cov(s, b), and CRN makes cov > 0). Measured ratios
    # paired/unpaired: about 0.5 (delayed bed days) and 0.2 (acute occupancy).
    for kpi in ("delayed_bed_days", "acute_occupancy_mean"):
        base, scen = paired_arrays(out.runs, "ibcf_reablement", kpi)
        assert len(base) == IBCF_REPLICATIONS
        paired = np.var(scen - base, ddof=1)
        unpaired = np.var(scen, ddof=1) + np.var(base, ddof=1)
        assert paired < unpaired, (kpi, paired, unpaired)


def test_ibcf_reablement_cuts_delays_waiting_for_reablement(ibcf):
    _, arms, out = ibcf
    comparison = scenarios.compare(out.runs)
    assert list(comparison.columns) == COMPARISON_COLUMNS
    row = comparison.set_index(["scenario", "kpi"]).loc[
        ("ibcf_reablement", "delayed_bed_days_for_reablement")]
    # compare() is the paired mean difference with a Student-t 95% interval over replications
    base, scen = paired_arrays(out.runs, "ibcf_reablement", "delayed_bed_days_for_reablement")
    diff = scen - base
    n = len(diff)
    half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / math.sqrt(n)
    assert row.n == n == IBCF_REPLICATIONS
    assert row.baseline_mean == pytest.approx(base.mean(), rel=1e-12)
    assert row.scenario_mean == pytest.approx(scen.mean(), rel=1e-12)
    assert row.diff_mean == pytest.approx(diff.mean(), rel=1e-12)
    assert row.diff_ci_low == pytest.approx(diff.mean() - half, rel=1e-9)
    assert row.diff_ci_high == pytest.approx(diff.mean() + half, rel=1e-9)
    # the effect: the whole 95% interval of the paired difference is below zero
    assert row.diff_ci_high < 0, row
    # and the money bought whole places, spent within the budget
    inv = arms[1][1].scenario.investments[0]
    (got,) = investments.of(arms[1][1])
    assert got.units == math.floor(inv.budget_gbp / inv.cost_gbp_per_unit_year) > 0
    cost = comparison.set_index(["scenario", "kpi"]).loc[("ibcf_reablement",
                                                          "investment_cost_gbp")]
    assert cost.scenario_mean == pytest.approx(got.units * inv.cost_gbp_per_unit_year, rel=1e-9)
    assert cost.scenario_mean <= inv.budget_gbp


def test_comparison_gives_investment_cost_by_funder(ibcf):
    _, arms, out = ibcf
    (got,) = investments.of(arms[1][1])
    row = scenarios.compare(out.runs).set_index(["scenario", "kpi"]).loc[
        ("ibcf_reablement", f"investment_cost_{got.funder}_gbp")]
    assert row.n == IBCF_REPLICATIONS
    assert row.baseline_mean == 0
    assert row.diff_mean == pytest.approx(got.units * got.cost_gbp_per_unit_year, rel=1e-9)


# -- 3: the funding cliff -----------------------------------------------------------------------

CLIFF_REPLICATIONS = 8
AFTER_DAYS = 90  # three months after the funding ends
CLIFF_REABLEMENT = 310
"""Reablement places in the cliff tests: a system whose reablement is its pathway 1 bottleneck
(~97% in use, a line most of the year), so that places bought and withdrawn show in its queue.
The default is calibrated to national delayed shares with reablement ~90% in use (335 places),
where a line forms mostly in winter and the funded months may fall where there is none."""


@pytest.fixture(scope="module")
def cliff():
    """Baseline and funding_cliff on the default system with reablement its bottleneck
    (``CLIFF_REABLEMENT``); the 730-day window is cut to the 365 funded days + 3 months (the part
    the test looks at), which keeps the run short."""
    raw = scenario_raw("funding_cliff")
    (inv,) = raw["investments"]
    raw["measured_days"] = inv["end_day"] + AFTER_DAYS
    system = system_raw()
    system["services"]["reablement"]["capacity"] = CLIFF_REABLEMENT
    config = config_for(raw, system, replications=CLIFF_REPLICATIONS)
    arms = build_arms(config)
    assert [name for name, _ in arms] == ["baseline", "funding_cliff"]
    W = config.run.warmup_days
    for _, c in arms:  # measured_days sets both arms' horizon
        assert c.run.horizon_days == W + inv["end_day"] + AFTER_DAYS
    return config, arms, run_ok(arms)


def _window_mean(daily: pd.DataFrame, service: str, column: str, lo: float, hi: float):
    """Per-replication mean of a daily column on days [lo, hi): (baseline, scenario) arrays."""
    d = daily[(daily.service == service) & (daily.day >= lo) & (daily.day < hi)]
    m = d.groupby(["scenario", "replication"])[column].mean()
    b, s = m["baseline"].sort_index(), m["funding_cliff"].sort_index()
    assert list(b.index) == list(s.index) == list(range(CLIFF_REPLICATIONS))
    return b.to_numpy(), s.to_numpy()


def test_funding_cliff_capacity_goes_when_the_money_stops(cliff):
    config, arms, out = cliff
    W = config.run.warmup_days
    inv = scenario_raw("funding_cliff")["investments"][0]
    units = expected_units(inv, math.inf)
    start, end = W + inv["start_day"], W + inv["end_day"]
    base_cap = capacity_at(config.system.services["reablement"].capacity_steps(), 0.0)
    d = out.daily[out.daily.service == "reablement"]
    base = d[d.scenario == "baseline"]
    scen = d[d.scenario == "funding_cliff"]
    assert units > 0 and len(scen) > 0
    assert (base.capacity == base_cap).all()
    during = scen[(scen.day >= start) & (scen.day < end)]
    assert len(during) == CLIFF_REPLICATIONS * (end - start)
    assert (during.capacity == base_cap + units).all()
    outside = scen[(scen.day < start) | (scen.day >= end)]
    assert (outside.day >= end).any()
    assert (outside.capacity == base_cap).all()


def test_funding_cliff_delays_return_after_the_funding_ends(cliff):
    """People waiting for reablement: the paired gap (funding_cliff - baseline, same random
    numbers) over the last 3 funded months, and over the 3 months after the money stops.

    The gap is heavy-tailed across replications (a replication with a cascade of delays carries
    much of it, e.g. -15 against -0.02 to -4.5 in the others), so a t interval is not used.
    Before: at least 7 of the 8 replications have a negative gap (a one-sided sign test: with no
    effect at most 9/256 = 3.5% of the time) and the pooled queue is at least 20% shorter than
    the baseline's (measured 36-74% over several seeds). After: the pooled relative gap is at
    most half what it was (measured 9-23%), and the absolute gap is smaller (measured 11-56%).
    """
    config, _, out = cliff
    W = config.run.warmup_days
    end = W + scenario_raw("funding_cliff")["investments"][0]["end_day"]
    b0, s0 = _window_mean(out.daily, "reablement", "waiting_mean", end - AFTER_DAYS, end)
    b1, s1 = _window_mean(out.daily, "reablement", "waiting_mean", end, end + AFTER_DAYS)
    gap0, gap1 = s0 - b0, s1 - b1
    rel0, rel1 = gap0.mean() / b0.mean(), gap1.mean() / b1.mean()
    info = dict(gap_before=gap0.round(2).tolist(), gap_after=gap1.round(2).tolist(),
                rel_before=rel0, rel_after=rel1, base_before=b0.mean(), base_after=b1.mean())
    assert np.sum(gap0 < 0) >= CLIFF_REPLICATIONS - 1, info
    assert rel0 <= -0.2, info
    assert abs(rel1) <= 0.5 * abs(rel0), info
    assert abs(gap1.mean()) < abs(gap0.mean()), info


# -- 4: investment costs, exactly ---------------------------------------------------------------

N, START, D = 12, 30, 90           # 12 places from day 30 for 90 days of the measured window
U = 45625.0                        # GBP a place a year (reablement, GBP 125 a day)
FLAT = 73000.0                     # GBP a year, a flat cost (e.g. posts) over the same days
COST_WINDOW = dict(warmup_days=60, horizon_days=60 + 150)


def costed_scenario() -> dict:
    return {
        "name": "costed",
        "investments": [
            {"lever": "services.reablement.capacity", "add": N, "start_day": START,
             "end_day": START + D, "funder": "nhs", "cost_gbp_per_unit_year": U},
            {"lever": "services.assessment.capacity", "add": 0, "start_day": START,
             "end_day": START + D, "funder": "council", "cost_gbp_per_year": FLAT},
        ],
    }


@pytest.fixture(scope="module")
def costed():
    base = config_for(replications=2, **COST_WINDOW)
    scen = scenarios.with_scenario(base, Scenario.model_validate(costed_scenario()))
    return base, scen, run_ok([("baseline", scenarios.apply(base)), ("costed", scen)])


def test_capacity_schedule_adds_places_exactly_on_the_funded_days(costed):
    base, scen, out = costed
    W = base.run.warmup_days
    lo, hi = W + START, W + START + D
    before = base.system.services["reablement"].capacity_steps()
    after = scen.system.services["reablement"].capacity_steps()
    for t in np.arange(0, base.run.horizon_days, 0.25):
        want = capacity_at(before, t) + (N if lo <= t < hi else 0)
        assert capacity_at(after, t) == want, t
    assert capacity_at(after, lo - 1e-9) == capacity_at(before, lo - 1e-9)
    # the model used that schedule: daily capacity of the scenario arm
    d = out.daily[(out.daily.service == "reablement") & (out.daily.scenario == "costed")]
    in_window = (d.day >= lo) & (d.day < hi)
    assert (d.capacity[in_window] == capacity_at(before, 0) + N).all()
    assert (d.capacity[~in_window] == capacity_at(before, 0)).all()


def test_investment_cost_is_units_times_days_times_unit_cost(costed):
    _, _, out = costed
    runs = out.runs.set_index(["scenario", "replication"])
    for r in (0, 1):
        s, b = runs.loc[("costed", r)], runs.loc[("baseline", r)]
        assert s.investment_cost_nhs_gbp == pytest.approx(N * D * U / 365, rel=1e-9)
        assert s.investment_cost_council_gbp == pytest.approx(FLAT * D / 365, rel=1e-9)
        assert s.investment_cost_gbp == pytest.approx(N * D * U / 365 + FLAT * D / 365, rel=1e-9)
        assert b.investment_cost_gbp == 0


def test_investment_cost_counted_in_the_funders_organisation(costed):
    base, _, out = costed
    runs = out.runs.set_index(["scenario", "replication"])
    paid_by = {name: svc.paid_by for name, svc in base.system.services.items()}
    for r in (0, 1):
        s, b = runs.loc[("costed", r)], runs.loc[("baseline", r)]
        for org, invested in (("nhs", N * D * U / 365), ("social_care", FLAT * D / 365)):
            services = sum(s[f"cost_{x}_gbp"] - b[f"cost_{x}_gbp"]
                           for x, o in paid_by.items() if o == org)
            change = s[f"cost_{org}_gbp"] - b[f"cost_{org}_gbp"]
            assert change == pytest.approx(invested + services, rel=1e-9, abs=1e-3), org
        assert s.cost_total_gbp - b.cost_total_gbp == pytest.approx(
            s.cost_nhs_gbp + s.cost_social_care_gbp - b.cost_nhs_gbp - b.cost_social_care_gbp,
            rel=1e-9)


def test_bought_places_are_not_costed_twice(costed):
    """Reablement is costed per place-day of capacity (GBP 125). The 12 bought places are paid by
    the investment; the service's capacity cost stays that of its own places."""
    base, _, out = costed
    svc = base.system.services["reablement"]
    assert svc.cost_per_capacity_day_gbp > 0 and svc.cost_per_occupied_day_gbp == 0
    L = base.run.horizon_days - base.run.warmup_days
    own = svc.cost_per_capacity_day_gbp * capacity_at(svc.capacity_steps(), 0) * L
    assert len(svc.capacity_steps()) == 1
    for _, row in out.runs.iterrows():
        assert row.cost_reablement_gbp == pytest.approx(own, rel=1e-12), row.scenario


def test_budget_buys_whole_units_over_the_funded_days():
    config = config_for(replications=1, **COST_WINDOW)
    L = config.run.horizon_days - config.run.warmup_days
    budget = 500_000.0
    cases = [(START, START + D), (START, None)]  # no end_day: funded to the end of the window
    for start, end in cases:
        inv = {"lever": "services.reablement.capacity", "budget_gbp": budget,
               "cost_gbp_per_unit_year": U, "start_day": start, "funder": "ibcf"}
        if end is not None:
            inv["end_day"] = end
        days = (end if end is not None else L) - start
        applied = scenarios.with_scenario(
            config, Scenario(name="budget", investments=[Investment(**inv)]))
        (got,) = investments.of(applied)
        assert got.units == math.floor(budget / (U * days / 365))
        assert got.units * U * days / 365 <= budget < (got.units + 1) * U * days / 365
        base = config.system.services["reablement"].capacity_steps()
        steps = applied.system.services["reablement"].capacity_steps()
        mid = config.run.warmup_days + start + days / 2
        assert capacity_at(steps, mid) == capacity_at(base, mid) + got.units
        costs = investments.costs(investments.of(applied), config.run.warmup_days,
                                  config.run.horizon_days)
        assert costs["ibcf"] == pytest.approx(got.units * U * days / 365, rel=1e-12)


def test_two_investments_on_one_service_both_add_places():
    config = config_for(replications=1)
    W = config.run.warmup_days
    invs = [Investment(lever="services.reablement.capacity", add=10, start_day=0, end_day=100,
                       cost_gbp_per_unit_year=U),
            Investment(lever="services.reablement.capacity", add=5, start_day=200, end_day=300,
                       cost_gbp_per_unit_year=U)]
    applied = scenarios.with_scenario(config, Scenario(name="two", investments=invs))
    base = capacity_at(config.system.services["reablement"].capacity_steps(), 0)
    steps = applied.system.services["reablement"].capacity_steps()
    assert capacity_at(steps, W + 50) == base + 10
    assert capacity_at(steps, W + 250) == base + 5


def test_changed_capacity_keeps_the_change_under_an_investment():
    config = config_for(replications=1)
    W = config.run.warmup_days
    scen = Scenario(name="both", changes={"services.reablement.capacity": 400},
                    investments=[Investment(lever="services.reablement.capacity", add=10,
                                            start_day=0, end_day=100)])
    steps = scenarios.with_scenario(config, scen).system.services["reablement"].capacity_steps()
    assert capacity_at(steps, 0) == 400
    assert capacity_at(steps, W + 50) == 410


def test_a_service_is_costed_for_its_own_places_whatever_investments_bought():
    """``investments.own_places`` takes back exactly the places that investments added to a
    schedule (overlapping windows, a window over a step of the schedule, one to the horizon), so
    the service's own capacity cost is that of the schedule it had before."""
    base = [(0.0, 300), (250.0, 280), (400.0, 320)]
    bought = [
        investments.Bought("services.reablement.capacity", 12, 180.0, 300.0, "ibcf", 1.0, 0.0),
        investments.Bought("services.reablement.capacity", 5, 200.0, 545.0, "nhs", 1.0, 0.0),
        investments.Bought("services.reablement.capacity", -3, 0.0, 545.0, "icb", 1.0, 0.0),
    ]
    steps = base
    for b in bought:
        steps = investments.add_window(steps, b.units, b.start, b.end)
    assert steps != base
    for t in np.arange(0.0, 600.0, 0.5):
        assert capacity_at(investments.own_places(steps, bought), t) == capacity_at(base, t), t
    assert investments.by_service(tuple(bought)) == {"reablement": bought}


def test_what_an_investment_buys_is_not_part_of_the_scenario_a_user_writes():
    """Units and simulation days are resolved for a run (``investments.resolve``), never written
    into, or read from, the scenario."""
    for derived in ("units", "start_time", "end_time"):
        with pytest.raises(Exception, match=derived):
            Investment(lever="services.reablement.capacity", add=5, **{derived: 1.0})
    config = config_for(replications=1)
    scen = Scenario(name="s", investments=[
        Investment(lever="services.reablement.capacity", add=5, start_day=10, end_day=50)])
    (got,) = investments.resolve(scen, config.run.warmup_days, config.run.horizon_days)
    W = config.run.warmup_days
    assert (got.units, got.start, got.end, got.service) == (5.0, W + 10, W + 50, "reablement")
    assert got.organisation == "social_care"  # the default funder is the iBCF, a council grant


# -- 5: every scenario file composes, validates, builds its arms and runs -----------------------

SHORT = ["run.horizon_days=120", "run.warmup_days=30", "run.replications=2", "run.jobs=2",
         "run.progress=false"]


def compose(overrides: list[str]) -> dict:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def _lookup(tree: dict, path: str):
    for k in path.split("."):
        tree = tree[k]
    return tree


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_scenario_file_composes_validates_and_runs(path):
    stem = path.stem
    resolved = compose([f"scenario={stem}", *SHORT])
    assert "hydra" not in resolved
    config = validate(resolved)
    assert config.scenario.name == stem
    spec = scenario_raw(stem)
    arms = build_arms(config)
    W = config.run.warmup_days
    if stem == "baseline":
        assert [name for name, _ in arms] == ["baseline"]
    else:
        assert [name for name, _ in arms] == ["baseline", stem]
        assert arms[0][1].scenario.investments == [] and arms[0][1].scenario.changes == {}
        if spec.get("measured_days") is not None:  # a longer window for both arms
            for _, c in arms:
                assert c.run.horizon_days == W + spec["measured_days"]
            # shorten it for the run here (funding_cliff asks for two years)
            spec["measured_days"] = 90
            resolved["scenario"]["measured_days"] = 90
            arms = build_arms(validate(resolved))
    H = arms[0][1].run.horizon_days
    assert all(c.run.horizon_days == H for _, c in arms)
    applied = arms[-1][1]
    system = applied.system.model_dump(mode="json")
    for change, value in spec.get("changes", {}).items():
        assert _lookup(system, change) == value, change
    out = run_ok(arms)
    assert len(out.runs) == 2 * len(arms)
    assert set(out.runs.scenario) == {name for name, _ in arms}
    row = out.runs[out.runs.scenario == arms[-1][0]]
    assert np.isfinite(row.delayed_bed_days).all() and (row.admissions > 0).all()
    want = expected_investment_cost(spec, H - W)
    for funder, cost in want.items():
        assert row[f"investment_cost_{funder}_gbp"].tolist() == pytest.approx([cost] * 2,
                                                                              rel=1e-9)
    assert row.investment_cost_gbp.tolist() == pytest.approx([sum(want.values())] * 2, rel=1e-9)


# -- 6: bad scenario input ----------------------------------------------------------------------


def _reject(scenario: dict) -> str:
    with pytest.raises(ConfigError) as err:
        scenarios.apply(config_for(scenario, replications=1))
    return str(err.value)


@pytest.mark.parametrize("investment, field, words", [
    ({"lever": "services.reablement.capacity", "add": 5, "budget_gbp": 1000,
      "cost_gbp_per_unit_year": 45625}, "scenario.investments.0", ["add", "budget_gbp"]),
    ({"lever": "services.nowhere.capacity", "add": 5}, "scenario.investments.0.lever",
     ["services.nowhere.capacity"]),
    ({"lever": "services.reablement.capcity", "add": 5}, "scenario.investments.0.lever",
     ["services.reablement.capcity"]),
    ({"lever": "services.reablement.capacity", "add": 5, "start_day": 50, "end_day": 50},
     "scenario.investments.0.end_day", ["after start_day"]),
    ({"lever": "services.reablement.capacity", "add": 5, "start_day": 50, "end_day": 10},
     "scenario.investments.0.end_day", ["after start_day"]),
    ({"lever": "services.assessment.stay.mean", "multiply": 0.5, "end_day": 100},
     "scenario.investments.0.end_day", ["capacity", "time-limited"]),
    ({"lever": "services.assessment.stay.mean", "multiply": 0.5, "start_day": 10},
     "scenario.investments.0.start_day", ["time-limited"]),
], ids=["add_and_budget", "unknown_service", "unknown_parameter", "end_equals_start",
        "end_before_start", "time_limited_non_capacity", "late_start_non_capacity"])
def test_bad_investment_is_rejected_naming_the_field(investment, field, words):
    message = _reject({"name": "bad", "investments": [investment]})
    assert message.startswith(f"{field}:") or f"\n{field}:" in message, message
    for w in words:
        assert w in message, message


def test_unknown_change_path_is_rejected_naming_it():
    message = _reject({"name": "bad", "changes": {"services.reablement.capcity": 400}})
    assert message.startswith("scenario.changes.services.reablement.capcity:"), message


def test_good_scenario_is_accepted():
    """The rejections above are about the bad field, not the shape of the scenario."""
    good = {"name": "good", "changes": {"services.reablement.capacity": 330},
            "investments": [{"lever": "services.reablement.capacity", "add": 5,
                             "start_day": 10, "end_day": 50}]}
    applied = scenarios.apply(config_for(good, replications=1))
    assert [b.units for b in investments.of(applied)] == [5]


# -- 7: the command end to end ------------------------------------------------------------------


def _command() -> list[str]:
    exe = shutil.which("flowsim") or str(Path(sys.executable).with_name("flowsim"))
    if not Path(exe).exists():
        pytest.fail("the flowsim console script is not installed (pip install -e .)")
    return [exe]


CLI_SHORT = ["run.replications=2", "run.horizon_days=120", "run.warmup_days=30", "run.jobs=1",
             "run.report=false"]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Both commands at once (one worker each, two cores)."""
    env = {k: v for k, v in os.environ.items() if k != "FLOWSIM_ROOT"}
    asked = {
        "ibcf": ["scenario=ibcf_reablement"],
        "two": ["scenario=baseline", "compare=[step_down_beds,winter_surge]"],
    }
    started = {}
    for key, overrides in asked.items():
        cwd = tmp_path_factory.mktemp(key)
        out = cwd / "out"
        proc = subprocess.Popen([*_command(), *overrides, *CLI_SHORT, f"hydra.run.dir={out}"],
                                cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started[key] = (proc, out)
    done = {}
    for key, (proc, out) in started.items():
        stdout, stderr = proc.communicate(timeout=300)
        done[key] = (proc.returncode, stdout, stderr, out)
    return done


def test_cli_scenario_writes_comparison(cli_runs):
    rc, stdout, stderr, out = cli_runs["ibcf"]
    assert rc == 0, stderr
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison.columns) == COMPARISON_COLUMNS
    assert set(comparison.scenario) == {"ibcf_reablement"}
    # n counts pairs with a value: the 91-day outcome needs 91 days after a discharge in the
    # window, which a 90-day window cannot give
    defined = comparison.kpi != "home_at_91_days_rate"
    assert (comparison.n[defined] == 2).all(), comparison[defined & (comparison.n != 2)]
    rows = comparison.set_index("kpi")
    assert {"delayed_bed_days", "delayed_bed_days_for_reablement", "cost_total_gbp",
            "investment_cost_gbp"} <= set(rows.index)
    # the iBCF budget buys whole places for a year; 90 of its days are in this window
    inv = scenario_raw("ibcf_reablement")["investments"][0]
    units = expected_units(inv, math.inf)
    assert rows.loc["investment_cost_gbp", "diff_mean"] == pytest.approx(
        units * inv["cost_gbp_per_unit_year"] * 90 / 365, rel=1e-9)
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(zip(runs.scenario, runs.replication)) == [
        ("baseline", 0), ("baseline", 1), ("ibcf_reablement", 0), ("ibcf_reablement", 1)]
    # the file's differences are those of runs.parquet, paired by replication
    b, s = paired_arrays(runs, "ibcf_reablement", "delayed_bed_days")
    assert rows.loc["delayed_bed_days", "diff_mean"] == pytest.approx((s - b).mean(), rel=1e-9,
                                                                      abs=1e-6)
    assert "Paired change against the baseline" in stdout


def test_cli_compare_gives_rows_for_each_scenario(cli_runs):
    rc, _, stderr, out = cli_runs["two"]
    assert rc == 0, stderr
    comparison = pd.read_csv(out / "comparison.csv")
    assert list(comparison.columns) == COMPARISON_COLUMNS
    assert list(dict.fromkeys(comparison.scenario)) == ["step_down_beds", "winter_surge"]
    kpis = {s: set(g.kpi) for s, g in comparison.groupby("scenario")}
    assert kpis["step_down_beds"] == kpis["winter_surge"]
    assert "delayed_bed_days" in kpis["winter_surge"]
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(set(runs.scenario)) == ["baseline", "step_down_beds", "winter_surge"]
    assert len(runs) == 6


# -- KPIs pooled per patient (mean_delay_days) --------------------------------------------------


def _delay_runs(rng, n_reps: int, patients_per_rep: float, mean_delay: float, scenario: str):
    """Replications of Poisson-many delayed patients with exponential delays: the per-replication
    mean (NaN with no patient) and the patient count, as runs.parquet holds them."""
    counts = rng.poisson(patients_per_rep, n_reps)
    means = [rng.exponential(mean_delay, c).mean() if c else math.nan for c in counts]
    return pd.DataFrame({"scenario": scenario, "replication": range(n_reps),
                         "delayed_patients": counts, "mean_delay_days": means,
                         "delayed_bed_days": 0.0, "cost_total_gbp": 0.0})  # fmt: skip


def test_mean_delay_is_pooled_per_patient_and_never_lost_to_an_empty_replication():
    """A replication with no delayed patient has no mean delay (NaN); the summary counts it
    (n is every replication) and pools the rest per patient: each patient once."""
    runs = pd.DataFrame({"scenario": "baseline", "replication": range(4),
                         "delayed_patients": [0, 3, 300, 1],
                         "mean_delay_days": [math.nan, 9.0, 1.0, 20.0]})  # fmt: skip
    row = uncertainty.summary(runs).set_index("kpi").loc["mean_delay_days"]
    total = float((runs["mean_delay_days"].fillna(0) * runs["delayed_patients"]).sum())
    assert row["mean"] == pytest.approx(total / runs["delayed_patients"].sum())
    assert row["mean"] < runs["mean_delay_days"].mean()  # not the mean of replication means
    assert row["n"] == 4
    assert 0 <= row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert not math.isnan(row["mean"])


def test_pooled_mean_delay_interval_covers_the_true_mean():
    """Coverage of the pooled interval: 1,000 summaries of 20 replications of about 20 delayed
    patients each with exponential delays of mean 2 days. The nominal 95% must be met within
    0.93-0.97 (the binomial sd of 1,000 trials at 0.95 is 0.007: about 3 sd). With very few
    patients (2 a replication) the delta method under-covers (about 92%): real runs have
    hundreds to thousands of delayed patients a replication."""
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(1000):
        runs = _delay_runs(rng, 20, 20.0, 2.0, "baseline")
        row = uncertainty.summary(runs).set_index("kpi").loc["mean_delay_days"]
        hits += row["ci_low"] <= 2.0 <= row["ci_high"]
    assert 0.93 <= hits / 1000 <= 0.97, hits


def test_pooled_paired_difference_of_mean_delay():
    """The comparison's change in mean delay is the difference of pooled means; a scenario that
    adds one day to every delayed patient changes it by exactly one day, and its interval covers
    the true change in about 95% of repeats (0.93-0.97, as above)."""
    rng = np.random.default_rng(12)
    base = _delay_runs(rng, 20, 3.0, 2.0, "baseline")
    plus = base.assign(scenario="plus", mean_delay_days=base["mean_delay_days"] + 1.0)
    row = scenarios.compare(pd.concat([base, plus])).set_index("kpi").loc["mean_delay_days"]
    assert row["diff_mean"] == pytest.approx(1.0)
    assert row["n"] == 20
    hits = 0
    for _ in range(1000):
        base = _delay_runs(rng, 20, 20.0, 2.0, "baseline")
        other = _delay_runs(rng, 20, 20.0, 2.5, "other")
        row = scenarios.compare(pd.concat([base, other])).set_index("kpi").loc["mean_delay_days"]
        hits += row["diff_ci_low"] <= 0.5 <= row["diff_ci_high"]
    assert 0.93 <= hits / 1000 <= 0.97, hits
