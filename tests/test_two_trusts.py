"""Several acute trusts in one system (issue 13 part 2): ``configs/system/two_trusts.yaml``, two
trusts (each its own acute beds, front door and discharge assessment team) serving two councils.

Checked: it composes as the command sees it; on the event log each admission stays at one trust,
a readmission returns to the trust the patient left, each trust's patients are assessed by its
own team and each trust's admissions have its own mix of localities; both engines record the same
events and tables; the trusts' and the councils' breakdowns each add up to the system; three
measured years are in statistical steady state; and bad multi-trust configs are rejected naming
the field. A system of one trust is unchanged (tests/test_golden.py: identical to the bit).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from flowsim import model
from flowsim.config import DRD_BANDS, PATHWAYS, RESPONSIBLE, ConfigError, validate
from flowsim.patients import Layout

sys.path.insert(0, str(Path(__file__).parent))
from test_two_councils import (  # noqa: E402  (the two-council system's helpers, next to this file)
    CONFIG_DIR,
    _project_root,  # noqa: F401  (an autouse fixture: FLOWSIM_ROOT for Hydra)
    assert_engines_agree,
    assert_three_years_steady,
    config,
)

TRUSTS = ("north", "south")


def system_raw() -> dict:
    return yaml.safe_load((CONFIG_DIR / "system" / "two_trusts.yaml").read_text())


def cfg_system():
    return validate({"system": system_raw()}).system


@pytest.fixture(scope="module")
def log():
    """One SimPy run of 300 days: the stays as a table, with names."""
    cfg = config(system_raw(), 300.0, 30.0)
    events = model.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days)
    layout = Layout.of(cfg.system)
    v = pd.DataFrame({k: np.asarray(x) for k, x in events.visits.items()})
    v["service_name"] = [layout.services[s] for s in v["service"]]
    v["group_name"] = [layout.groups[g] for g in v["group"]]
    return cfg.system, layout, v


def test_composes_as_the_command_sees_it_with_two_trusts():
    """``system=two_trusts`` composes through Hydra and validates: two acute services, each run
    by its own trust with its own assessment team, and every admission stream names its trust."""
    with hydra.initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra.compose("config", overrides=["system=two_trusts"])
    raw = OmegaConf.to_container(cfg, resolve=True)
    raw.pop("hydra", None)
    system = validate(raw).system
    assert system.name == "two_trusts"
    assert system.acutes == ["acute_north", "acute_south"]
    for trust in TRUSTS:
        acute = f"acute_{trust}"
        assert system.services[acute].organisation == trust
        assert system.assessment_for(acute) == f"assessment_{trust}"
    doors = [a for a in system.arrivals.values() if a.to == "front_door"]
    assert {a.acute for a in doors} == set(system.acutes)


def test_each_trust_keeps_its_patients_and_assesses_them_itself(log):
    """On the event log: every person's acute stays (readmissions included) are all at one trust;
    there are readmissions at both trusts; every assessment is by the team of the trust whose bed
    the patient is in; and each trust's admissions have its own locality mix (north 80% east,
    south 30%: within 0.03, over 10 binomial standard errors at these counts)."""
    system, layout, v = log
    acute_codes = [layout.code(a) for a in system.acutes]
    acute = v[v["service"].isin(acute_codes)]
    trusts_per_person = acute.groupby("person")["service"].nunique()
    assert (trusts_per_person == 1).all()
    readmitted = acute[acute["episode"] != acute["person"]]
    assert set(readmitted["service"]) == set(acute_codes)
    # assessments: the team of the trust of the same episode's acute stay
    trust_of_episode = acute.groupby("episode")["service"].first()
    teams = {layout.code(a): layout.code(system.assessment_for(a)) for a in system.acutes}
    assessed = v[v["service_name"].str.startswith("assessment_")]
    assert len(assessed) > 1000
    want = trust_of_episode.loc[assessed["episode"]].map(teams).to_numpy()
    assert np.array_equal(assessed["service"].to_numpy(), want)
    # each trust's own locality mix (new admissions, not readmissions)
    first = acute[acute["episode"] == acute["person"]]
    for trust, east_share in (("north", 0.8), ("south", 0.3)):
        mine = first[first["service_name"] == f"acute_{trust}"]
        share = mine["group_name"].str.startswith("east_").mean()
        assert len(mine) > 5000
        assert share == pytest.approx(east_share, abs=0.03), (trust, share)


def test_both_engines_record_the_same_events_and_tables():
    """The same patients through both engines: identical events, and identical runs, daily and
    flows tables through the runner (2 workers); both trusts have admissions, readmissions and
    discharges in the flows."""
    out = assert_engines_agree(system_raw())
    flows = out.flows
    for acute in ("acute_north", "acute_south"):  # each trust's admissions and pathways
        assert {"admitted", "readmitted"} <= set(flows.loc[flows["target"] == acute, "source"])
        assert (flows.loc[flows["source"] == acute, "patients"].sum()) > 0


def test_three_years_are_steady_and_the_breakdowns_add_up():
    """Three measured years after a 180-day warm-up (compiled engine, 4 replications): no queue
    grows (warmup.growth_check, each trust's front door included), occupancy and beds held by
    people ready to leave are in the issue's targets (88-95%, 10-15%; sized to ~88.5% and ~11%),
    and, in every replication, the two trusts' numbers add up to the system's, as do the two
    councils' (sums of the same records: equal to rounding): admissions, discharges, delays,
    delayed bed days split by responsible body and by reason in both schemes, discharge ready
    date counts, readmissions, 91-day checks (and the means and rates over them), and (trusts)
    boarding; each organisation's reasons add up to its delayed bed
    days; its on-date share is its on-date count; a trust's occupancy is over its own beds."""
    out = assert_three_years_steady(system_raw())
    runs = out.runs
    for kpi in ("admissions", "discharges", "delayed_patients", "delayed_bed_days",
                "delayed_bed_days_nhs", "delayed_bed_days_social_care"):  # fmt: skip
        for orgs in (TRUSTS, ("east", "west")):
            parts = sum(runs[f"org_{o}_{kpi}"] for o in orgs)
            np.testing.assert_allclose(parts, runs[kpi], rtol=1e-9, err_msg=f"{orgs} {kpi}")
    L = 1275.0 - 180.0
    beds = sum(runs[f"org_{t}_acute_bed_days"] for t in TRUSTS) / L
    np.testing.assert_allclose(beds, runs["acute_occupancy_mean"], rtol=1e-9)
    # the delay split by reason (both schemes), the discharge ready date counts and boarding
    nctr = [k.removeprefix("delayed_bed_days_nctr_") for k in runs if
            k.startswith("delayed_bed_days_nctr_")]  # fmt: skip
    dtoc = [k.removeprefix("org_north_delayed_bed_days_") for k in runs
            if k.startswith("org_north_delayed_bed_days_") and "nctr" not in k and "_for_" not in k
            and k.removeprefix("org_north_delayed_bed_days_") not in RESPONSIBLE]  # fmt: skip
    assert len(nctr) >= 5 and len(dtoc) >= 5, (nctr, dtoc)
    split = [f"delayed_bed_days_nctr_{c}" for c in nctr] + [f"delayed_bed_days_{c}" for c in dtoc]
    counts = ["drd_discharges", "drd_delayed_discharges", "readmissions", "home_checks",
              "nctr_census_mean", *(f"discharges_{p}" for p in PATHWAYS),
              *(f"drd_discharges_{p}" for p in PATHWAYS), "nctr_census_mean_P1",
              *(k for k in runs if k.startswith("delayed_bed_days_for_"))]  # fmt: skip
    for kpi in [*split, *counts, "boarding_hours"]:
        for orgs in (TRUSTS, ("east", "west")) if kpi != "boarding_hours" else (TRUSTS,):
            parts = sum(runs[f"org_{o}_{kpi}"] for o in orgs)
            np.testing.assert_allclose(parts, runs[kpi], rtol=1e-9, err_msg=f"{orgs} {kpi}")
    waits_for = [k.removeprefix("delayed_bed_days_for_") for k in runs
                 if k.startswith("delayed_bed_days_for_")]  # fmt: skip
    for org in (*TRUSTS, "east", "west"):  # each split covers all of an org's delayed bed days
        for scheme, prefix in ((nctr, "delayed_bed_days_nctr_"), (dtoc, "delayed_bed_days_"),
                               (waits_for, "delayed_bed_days_for_")):  # fmt: skip
            total = sum(runs[f"org_{org}_{prefix}{c}"] for c in scheme)
            np.testing.assert_allclose(total, runs[f"org_{org}_delayed_bed_days"], rtol=1e-9)
        on_date = runs[f"org_{org}_drd_days_0_share"] * runs[f"org_{org}_drd_discharges"]
        late = runs[f"org_{org}_drd_discharges"] - runs[f"org_{org}_drd_delayed_discharges"]
        np.testing.assert_allclose(on_date, late, rtol=1e-9)
    # deaths: the councils' residents' are all of them; the trusts', those in their beds
    np.testing.assert_array_equal(runs["org_east_deaths"] + runs["org_west_deaths"],
                                  runs["deaths"])  # fmt: skip
    in_beds = runs["org_north_deaths"] + runs["org_south_deaths"]
    assert (in_beds > 0).all() and (in_beds < runs["deaths"]).all()
    # community waits: each organisation's for the services it runs; together, all of them
    every = sum(runs[f"org_{o}_community_wait_days"] for o in (*TRUSTS, "east", "west"))
    np.testing.assert_allclose(every, runs["community_wait_days"], rtol=1e-9)
    bands = [(f"drd_days_{band}_share{scope}", f"drd_discharges{scope}")
             for band, _ in DRD_BANDS for scope in ("", "_P1")]  # fmt: skip
    for rate, n in (("mean_delay_days", "delayed_patients"), ("home_at_91_days_rate",
                    "home_checks"), *bands):  # fmt: skip
        for orgs in (TRUSTS, ("east", "west")):  # per-patient means weigh up to the system's
            parts = sum(runs[f"org_{o}_{rate}"] * runs[f"org_{o}_{n}"] for o in orgs)
            np.testing.assert_allclose(parts, runs[rate] * runs[n], rtol=1e-9, err_msg=rate)
    system = cfg_system()
    for trust in TRUSTS:  # a trust's occupancy: its bed days over its own beds
        beds = system.services[f"acute_{trust}"].capacity
        np.testing.assert_allclose(runs[f"org_{trust}_acute_occupancy_rate"],
                                   runs[f"org_{trust}_acute_bed_days"] / L / beds, rtol=1e-9)
        assert 0.8 < runs[f"org_{trust}_acute_occupancy_rate"].mean() < 0.97
        assert (runs[f"org_{trust}_acute_occupancy_p95"] <= beds).all()
        assert (runs[f"org_{trust}_acute_occupancy_p95"] >=
                runs[f"org_{trust}_acute_bed_days"] / L).all()  # fmt: skip
    assert "org_east_acute_occupancy_rate" not in runs  # a council has no beds of its own
    # a care home admission is no one trust's: only the councils have it
    assert "org_north_care_home_admissions" not in runs
    assert "org_east_care_home_admissions" in runs
    # each trust's beds: the daily table has both, each within its capacity
    daily = out.daily[out.daily["day"] >= 180.0]
    for trust in TRUSTS:
        rows = daily[daily["service"] == f"acute_{trust}"]
        assert len(rows) and (rows["occupancy_mean"] <= rows["capacity"] + 1e-9).all()


def _reject(raw: dict) -> str:
    with pytest.raises(ConfigError) as err:
        validate({"system": raw})
    return str(err.value)


def _without_acute(raw: dict, name: str) -> dict:
    raw["arrivals"][name].pop("acute")
    return raw


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda r: _without_acute(r, "emergency_south"), "system.arrivals.emergency_south.acute",
         "several acute trusts"),
        (lambda r: r["arrivals"]["emergency_north"].update(acute="step_down"),
         "system.arrivals.emergency_north.acute", "not an acute service"),
        (lambda r: r["arrivals"]["community_step_down"].update(acute="acute_north"),
         "system.arrivals.community_step_down.acute", "only an admission"),
        (lambda r: r["services"]["acute_south"].update(organisation="north"),
         "system.services.acute_south.organisation", "one acute service per trust"),
        (lambda r: r["services"]["acute_south"].update(organisation="east"),
         "system.services.acute_south.organisation", "trust"),
        (lambda r: r["services"]["assessment_south"].update(organisation="north"),
         "system.services.acute_north", "assessment teams"),
        (lambda r: r["services"]["step_down"].update(start_queue=5),
         "system.services.step_down.start_queue", "one acute service"),
    ],
)  # fmt: skip
def test_bad_multi_trust_configs_are_rejected_naming_the_field(change, field, words):
    raw = system_raw()
    change(raw)
    message = _reject(raw)
    assert field in message and words in message, message
