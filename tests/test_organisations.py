"""Several organisations in one system (``System.organisations``; issue 13 part 2): every
council's share of the KPIs is its residents' (its patient groups'), the councils add up to the
whole system, the trust's is everyone in its beds, each organisation's cost is its services' and
the investments it funds, and both engines give the same breakdown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_default_system import default_config

from flowsim import results, runner, scenarios, uncertainty
from flowsim.config import ConfigError, Investment, Scenario, validate

COUNTED = ("admissions", "discharges", "delayed_patients", "care_home_admissions", "readmissions",
           "home_checks", "drd_discharges", "drd_delayed_discharges", "discharges_P0",
           "discharges_P3")  # fmt: skip
SUMMED = ("acute_bed_days", "delayed_bed_days", "delayed_bed_days_nhs",
          "delayed_bed_days_social_care", "delayed_bed_days_both", "nctr_mean")  # fmt: skip


def with_organisations(**run) -> dict:
    """The default system split into a trust (acute, assessment, step-down) and two councils:
    ``north`` (people under 85) runs reablement and home care, ``south`` (85 and over) the care
    homes (a split of convenience: the checks hold for any split)."""
    raw = default_config(**run).model_dump(mode="json")
    s = raw["system"]
    s["organisations"] = {
        "trust": {"kind": "trust", "label": "Acute trust"},
        "north": {"kind": "council", "groups": ["age_18_64", "age_65_84"]},
        "south": {"kind": "council", "groups": ["age_85_plus"]},
    }
    owner = {"acute": "trust", "assessment": "trust", "step_down": "trust",
             "reablement": "north", "home_care": "north", "care_home": "south"}  # fmt: skip
    for name, org in owner.items():
        s["services"][name]["organisation"] = org
    return raw


@pytest.fixture(scope="module")
def runs():
    raw = with_organisations(replications=2, horizon_days=200, warmup_days=50, seed=29)
    out = {}
    for engine in ("simpy", "compiled"):
        raw["run"]["engine"] = engine
        cfg = validate(raw)
        scen = Scenario(name="north_pays", investments=[Investment(
            lever="services.reablement.capacity", add=20, funder="north",
            cost_gbp_per_unit_year=45_625)])  # fmt: skip
        arms = [("baseline", scenarios.apply(cfg)),
                ("north_pays", scenarios.with_scenario(cfg, scen))]  # fmt: skip
        out[engine] = runner.run(arms, jobs=2).runs
    return validate(raw), out


def test_councils_add_up_to_the_whole_system_and_the_trust_is_everyone(runs):
    cfg, by_engine = runs
    r = by_engine["simpy"]
    for k in COUNTED:
        assert (r[f"org_north_{k}"] + r[f"org_south_{k}"] == r[k]).all(), k
        assert (r[f"org_trust_{k}"] == r[k]).all(), k
    for k in SUMMED:
        np.testing.assert_allclose(r[f"org_north_{k}"] + r[f"org_south_{k}"], r[k], rtol=1e-9)
        np.testing.assert_allclose(r[f"org_trust_{k}"], r[k], rtol=1e-9)
    for k in ("acute_occupancy_rate", "acute_occupancy_p95", "acute_days_over_95pct",
              "boarding_hours", "nctr_census_mean"):  # the one trust's beds are the system's
        np.testing.assert_allclose(r[f"org_trust_{k}"], r[k], rtol=1e-9)
    # both councils have residents delayed in the trust's beds
    for council in ("north", "south"):
        assert (r[f"org_{council}_delayed_bed_days"] > 0).all(), council


def test_each_organisation_pays_for_its_services_and_its_investments(runs):
    cfg, by_engine = runs
    r = by_engine["simpy"].set_index(["scenario", "replication"])
    owned = {o: [s for s, svc in cfg.system.services.items() if svc.organisation == o]
             for o in cfg.system.organisations}  # fmt: skip
    for (scenario, _), row in r.iterrows():
        for org, services in owned.items():
            want = sum(row[f"cost_{s}_gbp"] for s in services)
            if scenario == "north_pays" and org == "north":
                want += row["investment_cost_north_gbp"]
            assert row[f"org_{org}_cost_gbp"] == pytest.approx(want, rel=1e-12), (scenario, org)
        # a council's money is social care's
        if scenario == "north_pays":
            assert row["investment_cost_north_gbp"] > 0
            social = [s for s, svc in cfg.system.services.items() if svc.paid_by == "social_care"]
            want = sum(row[f"cost_{s}_gbp"] for s in social) + row["investment_cost_north_gbp"]
            assert row["cost_social_care_gbp"] == pytest.approx(want, rel=1e-12)


def test_both_engines_give_the_same_breakdown(runs):
    _, by_engine = runs
    pd.testing.assert_frame_equal(by_engine["simpy"], by_engine["compiled"], check_exact=True)


def test_a_system_without_organisations_has_no_breakdown():
    cfg = default_config(replications=1, horizon_days=60, warmup_days=10)
    assert cfg.system.organisations == {}
    got = runner.run([("baseline", cfg)], jobs=1).runs
    assert not [c for c in got.columns if c.startswith("org_")]
    assert set(results.ORG_KPIS) <= set(got.columns)  # the system-wide KPIs they break down


@pytest.mark.parametrize(
    "change, field, rule",
    [
        (lambda s: s["services"]["reablement"].update(organisation="east"),
         "services.reablement.organisation", "unknown organisation 'east'"),
        (lambda s: s["organisations"]["south"]["groups"].append("age_65_84"),
         "organisations.south.groups", "already lives in 'north'"),
        (lambda s: s["organisations"]["south"]["groups"].clear(),
         "organisations", "'age_85_plus' lives in no council"),
        (lambda s: s["services"]["acute"].update(organisation="north"),
         "services.acute.organisation", "a trust's"),
        (lambda s: s["organisations"]["trust"].update(groups=["age_18_64"]),
         "organisations.trust.groups", "a trust has no residents"),
    ],
)  # fmt: skip
def test_bad_organisations_are_rejected_naming_the_field(change, field, rule):
    raw = with_organisations(replications=1)
    change(raw["system"])
    with pytest.raises(ConfigError) as err:
        validate(raw)
    assert field in str(err.value) and rule in str(err.value), str(err.value)


def test_the_pack_has_a_page_per_organisation_with_changes(tmp_path):
    """The command with organisations and a comparison: the report has a section per
    organisation whose numbers are summary.csv's and comparison.csv's, and the workbook a sheet."""
    import subprocess
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from console import script

    orgs = ("+system.organisations={trust: {kind: trust, label: Acute trust}, "
            "north: {kind: council, groups: [age_18_64, age_65_84]}, "
            "south: {kind: council, groups: [age_85_plus]}}")  # fmt: skip
    owners = [f"+system.services.{s}.organisation={o}" for s, o in (
        ("acute", "trust"), ("assessment", "trust"), ("step_down", "trust"),
        ("reablement", "north"), ("home_care", "north"), ("care_home", "south"))]  # fmt: skip
    out = tmp_path / "run"
    proc = subprocess.run(
        [script("flowsim"), orgs, *owners, "scenario=ibcf_reablement", "run.replications=3",
         "run.horizon_days=150", "run.warmup_days=30", "run.figures=false", "run.progress=false",
         f"hydra.run.dir={out}"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    for name in ("trust", "north", "south"):
        assert f"id='org-{name}'" in page
    summary = pd.read_csv(out / "summary.csv").set_index(["scenario", "kpi"])
    comparison = pd.read_csv(out / "comparison.csv").set_index(["scenario", "kpi"])
    for kpi in ("org_north_delayed_bed_days", "org_south_cost_gbp"):
        for scenario in ("baseline", "ibcf_reablement"):
            value = summary.loc[(scenario, kpi), "mean"]
            assert f'data-kpi="{kpi}" data-stat="mean" data-value="{float(value)!r}"' in page
        change = comparison.loc[("ibcf_reablement", kpi), "diff_mean"]
        assert f'data-stat="diff_mean" data-value="{float(change)!r}"' in page
    book = pd.read_excel(out / "summit_pack.xlsx", sheet_name="Organisations")
    assert set(book["organisation"]) == {"trust", "north", "south"}
    assert "id=\"fig-whose_beds\"" in page or "id='fig-whose_beds'" in page


def _change(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["scenario", "kpi", "diff_mean", "diff_ci_low",
                                       "diff_ci_high"])  # fmt: skip


def test_whose_beds_names_the_funder_and_the_council_it_also_helps(tmp_path):
    """The "whose money saves whose beds" figure: a bar per organisation (each scenario's paired
    change in its delayed bed days), titled with the other council whose delays the funder's
    money surely cuts (its interval below zero), before any trust; with no such council, a
    neutral title."""
    from flowsim.comparisons import whose_beds
    from flowsim.outputs import Tables

    orgs = {"trust": {"kind": "trust"}, "east": {"kind": "council", "label": "East council"},
            "west": {"kind": "council", "label": "West council"}}  # fmt: skip
    rows = [("s", "org_trust_delayed_bed_days", -500.0, -800.0, -200.0),
            ("s", "org_east_delayed_bed_days", -400.0, -600.0, -200.0),
            ("s", "org_west_delayed_bed_days", -100.0, -180.0, -20.0),
            ("s", "investment_cost_east_gbp", 1e6, 1e6, 1e6)]  # fmt: skip
    tables = Tables(tmp_path, {"config": {"system": {"organisations": orgs}}},
                    comparison=_change(rows))  # fmt: skip
    fig = whose_beds(tables)
    assert fig.key == "whose_beds"
    assert "East council's money in s also cuts West council's" in fig.title
    assert "100" in fig.title  # the change, with its interval
    (bars,) = fig.figure.data
    assert list(bars.x) == [-500.0, -400.0, -100.0]
    rows[2] = ("s", "org_west_delayed_bed_days", -100.0, -180.0, 20.0)  # not sure now
    rows[0] = ("s", "org_trust_delayed_bed_days", -500.0, -800.0, 10.0)
    tables.comparison = _change(rows)
    assert "also cuts" not in whose_beds(tables).title
    tables.comparison = None  # no comparison, no figure
    assert whose_beds(tables) is None


@pytest.mark.parametrize(
    ("kpi", "weight"),
    [
        ("org_north_trust_drd_mean_days_delayed", "org_north_trust_drd_delayed_discharges"),
        ("org_north_trust_drd_mean_days", "org_north_trust_drd_discharges"),
        ("org_east_drd_days_0_share", "org_east_drd_discharges"),
        ("org_east_mean_delay_days", "org_east_delayed_patients"),
        ("org_east_home_at_91_days_rate", "org_east_home_checks"),
        ("home_at_91_days_rate", "home_checks"),
        ("org_east_delayed_bed_days", None),
    ],
)
def test_per_patient_measures_of_an_organisation_pool_over_its_own_patients(kpi, weight):
    """An organisation's shares and means per patient are pooled over its own patients (an
    organisation's name may hold underscores); its totals are not pooled."""
    assert uncertainty.pooled_weight(kpi) == weight


def test_an_organisations_pooled_mean_is_its_patients_mean():
    """The summary of an organisation's mean delay is pooled over its delayed patients: replications
    of 1 and 3 delayed patients with means 2 and 4 days give (2 + 12) / 4 = 3.5, not 3."""
    runs = pd.DataFrame({"scenario": "s", "replication": [0, 1],
                         "org_x_y_mean_delay_days": [2.0, 4.0],
                         "org_x_y_delayed_patients": [1, 3]})  # fmt: skip
    table = uncertainty.summary(runs).set_index("kpi")
    assert table.loc["org_x_y_mean_delay_days", "mean"] == pytest.approx(3.5)
