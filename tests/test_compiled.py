"""The compiled engine (``run.engine=compiled``) against the SimPy engine (issue 6).

Fed the same plan (the same patients with the same random numbers), the two engines must record
the same stays and waits, row for row and bit for bit: the strongest form of "statistically
indistinguishable", and one that any difference in semantics (an order of events at a tie, a
missed escalation, a wrong outcome code) breaks at once. Checked on every shipped system, every
shipped scenario applied to the default system, a stressed variant that exercises every branch
(deconditioning, discharge to assess, readmission deadlines, capacity cuts, closed doors), systems
whose services turn people away when full (``when_full``: lost, home, an overflow to another
service, chains of them), and through the runner's tables. Horizons are short to keep the file
fast; no tolerance is needed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from flowsim import arrays, compiled, eventloop, model, results, runner, scenarios
from flowsim.config import validate

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = {  # horizon, warm-up: short, but long enough for queues, escalations, readmissions
    "default": (150.0, 30.0),
    "tandem": (200.0, 50.0),
    "bnssg_d2a_2023": (181.0, 0.0),
}
SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))


def system_raw(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / "system" / f"{name}.yaml").read_text())


def config(system: dict, horizon: float, warmup: float, scenario: dict | None = None, **run):
    raw = {
        "system": system,
        "run": {"horizon_days": horizon, "warmup_days": warmup, "progress": False, **run},
    }
    if scenario is not None:
        raw["scenario"] = scenario
    return validate(raw)


def assert_same_events(a: model.Events, b: model.Events) -> None:
    assert a.n_initial == b.n_initial
    for table in ("visits", "waits", "turned"):
        x, y = getattr(a, table), getattr(b, table)
        assert list(x) == list(y)
        assert len(x["episode"]) > 0 or table == "turned"
        for field in x:
            assert x[field].shape == y[field].shape, (table, field)
            assert np.array_equal(x[field], y[field], equal_nan=True), (table, field)


def both(cfg, replication: int = 0) -> tuple[model.Events, model.Events]:
    args = (cfg.system, cfg.run.seed, replication, cfg.run.horizon_days)
    return model.simulate(*args), compiled.simulate(*args)


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_same_trajectories_on_every_system(name):
    horizon, warmup = SYSTEMS[name]
    cfg = config(system_raw(name), horizon, warmup)
    for r in range(2):
        a, b = both(cfg, r)
        assert_same_events(a, b)


def test_same_trajectories_with_unlimited_services():
    """``capacity: unlimited`` (a service no one waits for) means the same in both engines; its
    daily capacity is empty, not a number of places no one could fill."""
    raw = system_raw("default")
    for name in ("acute", "home_care"):
        raw["services"][name]["capacity"] = "unlimited"
        raw["services"][name]["cost_per_capacity_day_gbp"] = 0
    cfg = config(raw, 150.0, 30.0)
    a, b = both(cfg)
    assert_same_events(a, b)
    home_care = list(a.layout.services).index("home_care")
    waited = np.nan_to_num(a.waits["end"], nan=cfg.run.horizon_days) > a.waits["start"]
    assert not np.any(waited & (a.waits["place"] == model.FRONT_DOOR))  # no one boards
    assert not np.any(waited & (a.waits["waits_for"] == home_care))  # nor waits for home care
    assert np.any(waited)  # people still wait for other places
    out = runner.run([("baseline", cfg)])
    daily = out.daily.set_index("service")
    assert daily.loc["acute", "capacity"].isna().all()
    assert daily.loc["reablement", "capacity"].notna().all()
    assert out.runs["acute_occupancy_rate"].isna().all()


@pytest.mark.parametrize("name", SCENARIOS)
def test_same_trajectories_under_every_scenario(name):
    """Scenarios change capacities over time (time-limited investments), policies (discharge to
    assess, seven-day discharge) and demand (winter surge)."""
    raw = yaml.safe_load((ROOT / "scenarios" / f"{name}.yaml").read_text()) or {}
    system = "default"  # or the system the scenario selects (override /system@_global_.system)
    for entry in raw.pop("defaults", None) or []:
        for key, value in (entry.items() if isinstance(entry, dict) else ()):
            if key.startswith("override /system"):
                system = value
    cfg = scenarios.apply(config(system_raw(system), 200.0, 30.0, scenario=raw))
    assert_same_events(*both(cfg))


def stressed() -> dict:
    """The default system made to exercise every branch of the model: tight downstream capacity
    (long delays, so many escalations and readmission deadlines while waiting), a high
    deconditioning rate, discharge to assess on every pathway that has an assessment, a capacity
    cut and a rise part-way, and doors that close at weekends."""
    raw = system_raw("default")
    s = raw["services"]
    s["reablement"]["capacity"] = [
        {"from_day": 0, "capacity": 150},
        {"from_day": 40, "capacity": 90},
        {"from_day": 80, "capacity": 220},
    ]
    cap = s["care_home"]["capacity"]
    s["care_home"]["capacity"] = [{"from_day": 0, "capacity": cap},
                                  {"from_day": 30, "capacity": int(cap * 0.97)}]  # fmt: skip
    s["care_home"]["open_days"] = [True] * 5 + [False] * 2
    raw["deconditioning"] = {**raw.get("deconditioning", {}), "enabled": True,
                             "probability_per_day": 0.08}  # fmt: skip
    for pw in raw["discharge"]["pathways"].values():
        if pw.get("assessment", False):
            pw["discharge_to_assess"] = True
    return raw


def overflowing() -> dict:
    """The stressed system with services that turn people away when full: step-down beds send
    them on to reablement (which makes them wait; so deconditioning can escalate them to a care
    home while they wait); home care, cut on day 20, loses them; care homes,
    closed at weekends, send them home."""
    raw = stressed()
    s = raw["services"]
    s["step_down"]["when_full"] = "reablement"
    s["home_care"]["when_full"] = "lost"
    full = s["home_care"]["start_occupancy"]  # full from the start, then cut by 300
    s["home_care"]["capacity"] = [{"from_day": 0, "capacity": full},
                                  {"from_day": 20, "capacity": full - 300}]  # fmt: skip
    s["care_home"]["when_full"] = "home"
    return raw


def loss_tandem() -> dict:
    """The tandem network with reablement as a loss system (too few places, ``lost``) and care
    homes overflowing into it (a chain: care home -> reablement -> lost), community referrals to
    care homes, a discharge process, and readmissions from home (lost people are never
    readmitted)."""
    raw = system_raw("tandem")
    s = raw["services"]
    s["reablement"].update(capacity=45, when_full="lost")
    s["care_home"].update(capacity=260, when_full="reablement")
    raw["arrivals"]["community"] = {"to": "care_home", "rate_per_day": 1.0,
                                    "group_shares": {"all": 1.0}}  # fmt: skip
    for pw in raw["discharge"]["pathways"].values():
        pw["readmission_30d_probability"] = 0.1
        pw["process"] = {"dist": "exponential", "mean": 0.5}  # the only waits: no line anywhere
    return raw


WHEN_FULL = {"overflowing": (overflowing, 160.0, 20.0), "loss_tandem": (loss_tandem, 200.0, 50.0)}


@pytest.mark.parametrize("name", sorted(WHEN_FULL))
def test_same_trajectories_when_full_services_turn_people_away(name):
    """Every kind of turn-away happens (lost, home, to another service; from the community,
    from acute and from a downstream stay), and the records of them match too."""
    make, horizon, warmup = WHEN_FULL[name]
    cfg = config(make(), horizon, warmup)
    for r in range(2):
        a, b = both(cfg, r)
        assert_same_events(a, b)
        t, lay = a.turned, a.layout
        assert np.sum(t["to"] == -8) > 10  # lost
        assert np.sum(t["to"] >= 0) > 10  # sent on to another service
        assert set(np.unique(t["place"])) >= {-6, 0}  # from the community and from acute
        assert np.sum(a.visits["outcome"] == -8) > 0  # a stay that ended in a loss
        rule = [cfg.system.services[s].when_full for s in lay.services]
        assert all(rule[k] != "wait" for k in t["service"])


def test_same_trajectories_when_stressed():
    cfg = config(stressed(), 160.0, 20.0)
    a, b = both(cfg)
    assert_same_events(a, b)
    w = a.waits
    assert np.sum(w["end"] - w["start"] > 1.0) > 100  # the stress did make people wait


NEW_CAPACITIES = {  # the default system's capacities to come (places, people there at day 0)
    "care_home": {"capacity": 3800, "start_occupancy": 3620},
    "home_care": {"capacity": 4800, "start_occupancy": 4630},
    "step_down": {"capacity": 116},
    "reablement": {"capacity": 307},
}


@pytest.mark.parametrize("capacities", [{}, NEW_CAPACITIES], ids=["default", "new_capacities"])
def test_same_trajectories_with_fixed_durations(capacities):
    """Fixed stays and process times put many events at the same instants as the doors opening
    at whole days: the order of events at a tie must be SimPy's too. With the new capacities, a
    10-day reablement stay ends as the door closes on a Sunday while people wait (the case of
    ``tie_at_closing``, which the compiled engine once got a day early)."""
    raw = system_raw("default")
    s = raw["services"]
    for name, values in capacities.items():
        s[name].update(values)
    s["reablement"]["stay"] = {"dist": "fixed", "value": 10.0}
    s["step_down"]["stay"] = {"dist": "fixed", "value": 21.0}
    s["assessment"]["stay"] = {"dist": "fixed", "value": 0.25}
    raw["discharge"]["pathways"]["P1"]["process"] = {"dist": "fixed", "value": 0.5}
    assert_same_events(*both(config(raw, 160.0, 20.0)))


def tie_at_closing() -> dict:
    """The tandem network made so that places come due exactly as a door closes: everyone goes
    on to reablement (3 places, a fixed 6-day stay, closed on Sundays) after a fixed quarter-day
    in acute, and people arrive on Saturdays only. Those still waiting on Sunday are taken in
    when the door opens on Monday at 00:00, and leave on Sunday at 00:00, as it closes."""
    raw = system_raw("tandem")
    raw["arrivals"]["emergency"].update(rate_per_day=2.0, day_of_week=[0] * 5 + [1, 0])
    raw["discharge"]["pathway_shares_by_group"]["all"] = {"P0": 0.0, "P1": 1.0, "P3": 0.0}
    s = raw["services"]
    s["acute"]["stay"] = {"dist": "fixed", "value": 0.25}
    s["reablement"].update(capacity=3, stay={"dist": "fixed", "value": 6.0},
                           open_days=[True] * 6 + [False])  # fmt: skip
    return raw


def test_same_trajectories_when_places_come_due_as_the_door_closes():
    """A place given back at a known time is applied when the pool is next asked, or by a
    wake-up scheduled when someone joins its line (engine.Pool). When someone joins on the
    Saturday, that wake-up comes after the door's closing at Sunday 00:00 (scheduled at Saturday
    00:00), so the place due then is handed over only when the door opens on Monday. The
    compiled engine must do the same: it once released the place by an event booked when the
    place was taken, before the closing, and took the next person in a day early."""
    cfg = config(tie_at_closing(), 200.0, 0.0)
    a, b = both(cfg)
    assert_same_events(a, b)
    # the tie happened: a stay ended at a Sunday 00:00 (day 0 is a Tuesday) while someone who
    # joined the line on the Saturday waited on until Monday
    k = list(a.layout.services).index("reablement")
    v, w = a.visits, a.waits
    due = v["leave"][(v["service"] == k) & (v["leave"] % 7 == 5)]
    end = w["end"][w["waits_for"] == k]
    joined_saturday = w["start"][w["waits_for"] == k] >= end - 2
    assert np.sum(np.isin(end - 1, due) & joined_saturday) > 0


def test_same_events_when_buffers_and_readmission_rows_run_out(monkeypatch):
    """Runs that outgrow their buffers or the readmission rows drawn for them are repeated with
    more room: nothing in the result may change."""
    cfg = config(system_raw("default"), 150.0, 30.0)
    a = model.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days)
    calls = []
    real = compiled._run

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(compiled, "ROOM", 0.02)
    monkeypatch.setattr(compiled, "_readmission_estimate", lambda p: [1] * len(p.layout.groups))
    monkeypatch.setattr(compiled, "_run", counting)
    b = compiled.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days)
    assert len(calls) > 2  # it did run out, and ran again
    assert_same_events(a, b)


def test_same_events_when_the_turn_away_buffer_runs_out(monkeypatch):
    """A run whose buffer of turn-aways fills is repeated with more room, whole or in segments:
    nothing in the result may change."""
    cfg = config(loss_tandem(), 200.0, 50.0)
    a = model.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days)
    real_buffers, real_run, statuses = arrays.buffers, compiled._run, []

    def tiny_first(n, n_services, room):
        got = real_buffers(n, n_services, room)
        if not statuses:  # the first run only: room for 8 turn-aways
            got = (*got[:-1], np.empty((got[-1].shape[0], 8)))
        return got

    def run(*args):
        out = real_run(*args)
        statuses.append(int(out[0]))
        return out

    monkeypatch.setattr(arrays, "buffers", tiny_first)
    monkeypatch.setattr(compiled, "_run", run)
    assert_same_events(a, compiled.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days))
    assert statuses[0] == eventloop.FULL_TURNED and statuses[-1] == eventloop.OK
    statuses.clear()
    measure = results.measure(cfg)
    b = compiled.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days, measure=measure)
    assert statuses[0] == eventloop.FULL_TURNED
    assert results.kpis(b, cfg) == results.kpis(a, cfg)


def test_same_events_when_a_heap_of_due_releases_runs_out(monkeypatch):
    """A run whose heap of due releases (places given back at times known when they were taken,
    ``loopstate.hold_until``) fills is repeated with more room, whole or in segments; between
    segments, heaps more than half full are given twice the room: nothing in the result may
    change."""
    cfg = config(system_raw("default"), 150.0, 30.0)
    a = model.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days)
    real_buffers, real_run, real_grown = arrays.buffers, compiled._run, arrays.grown
    statuses, widths, first_width = [], [], [8]

    def small_first(n, n_services, room):
        got = list(real_buffers(n, n_services, room))
        if not statuses:  # the first run only
            got[8] = np.empty((n_services, first_width[0]))
        return tuple(got)

    def run(*args):
        out = real_run(*args)
        statuses.append(int(out[0]))
        return out

    def grown(buffers, c, pools):
        out = real_grown(buffers, c, pools)
        widths.append((buffers[8].shape[1], out[8].shape[1]))
        return out

    monkeypatch.setattr(arrays, "buffers", small_first)
    monkeypatch.setattr(arrays, "grown", grown)
    monkeypatch.setattr(compiled, "_run", run)
    assert_same_events(a, compiled.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days))
    assert statuses[0] == eventloop.FULL_DUE and statuses[-1] == eventloop.OK
    measure = results.measure(cfg)
    for width in (8, 600):  # overflows in the first segment; grows between segments
        statuses.clear()
        widths.clear()
        first_width[0] = width
        b = compiled.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days, measure=measure)
        assert results.kpis(b, cfg) == results.kpis(a, cfg)
        if width == 8:
            assert statuses[0] == eventloop.FULL_DUE
        else:
            assert set(statuses) == {eventloop.OK} and widths[0][0] < widths[-1][1]


@pytest.mark.parametrize("name", ["default", "loss_tandem"])
def test_runner_tables_identical_across_engines(name):
    """runs, daily and flows tables (every KPI) equal to the bit, on 2 workers."""
    raw = loss_tandem() if name == "loss_tandem" else system_raw(name)
    out = {}
    for engine in ("simpy", "compiled"):
        cfg = config(copy.deepcopy(raw), 150.0, 30.0, replications=3, jobs=2, engine=engine)
        out[engine] = runner.run([("baseline", cfg)], jobs=2)
        assert not out[engine].errors
    for table in ("runs", "daily", "flows"):
        pd.testing.assert_frame_equal(
            getattr(out["simpy"], table), getattr(out["compiled"], table), check_exact=True
        )
    if name == "loss_tandem":  # the turn-aways are in the tables
        runs, flows = out["simpy"].runs, out["simpy"].flows
        assert (runs["lost_reablement"] > 0).all() and (runs["overflow_care_home"] > 0).all()
        assert ("P1", "lost") in set(zip(flows["source"], flows["target"]))


def test_engine_is_validated():
    with pytest.raises(Exception, match="engine"):
        config(system_raw("tandem"), 100.0, 10.0, engine="numba")


def test_simulation_core_imports_no_pandas_hydra_or_plotly():
    """DESIGN.md section 5: both engines run a replication, and tally it, without pandas, Hydra
    or plotly."""
    import subprocess
    import sys

    code = (
        "import sys, yaml\n"
        "from flowsim.config import validate\n"
        "from flowsim import compiled, model\n"
        f"raw = yaml.safe_load(open({str(ROOT / 'configs/system/tandem.yaml')!r}))\n"
        "c = validate({'system': raw, 'run': {'warmup_days': 1, 'horizon_days': 20}})\n"
        "from flowsim.tally import Measure\n"
        "for engine in (model, compiled):\n"
        "    engine.simulate(c.system, 1, 0, 20.0)\n"
        "    engine.simulate(c.system, 1, 0, 70.0, measure=Measure(warmup=1.0))  # tallied\n"
        "print(sorted(m for m in ('pandas', 'hydra', 'plotly') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
