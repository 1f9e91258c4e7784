"""Tables from running sums (``flowsim/tally.py``): a SimPy run folds its records into a tally at
each checkpoint and lets the finished ones go, so its memory does not grow with the horizon
(issue 6).

The tally must give the same tables, bit for bit, whether records are forgotten as the run goes
(the SimPy engine), kept whole and replayed (tables from ``Events``, the compiled engine) or kept
for the patient log; the counts it keeps by segment must equal a direct count over the whole run;
and the records a run holds must not grow with the horizon. All checks are exact (no tolerance)
except the last, a bound on a count (stated there).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_compiled import config, loss_tandem, overflowing, stressed, system_raw

from flowsim import compiled, model, results
from flowsim.patients import DEATH, OPEN
from flowsim.tally import FOLD_DAYS, Measure, checkpoints

CASES = {  # long enough for several checkpoints; fractional warm-up and horizon on purpose
    "default": lambda: config(system_raw("default"), 200.5, 40.25),
    "tandem": lambda: config(system_raw("tandem"), 240.0, 60.0),
    "bnssg_d2a_2023": lambda: config(system_raw("bnssg_d2a_2023"), 181.0, 0.0),
    "stressed": lambda: config(stressed(), 160.0, 20.0),
    "overflowing": lambda: config(overflowing(), 160.0, 20.0),  # services turning people away
    "loss_tandem": lambda: config(loss_tandem(), 240.0, 60.0),
}


def tables(ev, cfg):
    return results.kpis(ev, cfg), results.daily(ev, cfg), results.flows(ev, cfg)


def assert_same_tables(a, b) -> None:
    ka, kb = a[0], b[0]
    assert list(ka) == list(kb)
    for k in ka:
        assert ka[k] == kb[k] or (math.isnan(ka[k]) and math.isnan(kb[k])), k
    assert a[1].equals(b[1])
    assert a[2].equals(b[2])


def batch(cfg) -> model.Events:
    return model.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days)


def streamed(cfg, keep: bool = False) -> model.Events:
    measure = Measure(**{**results.measure(cfg).__dict__, "keep": keep})
    return model.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days, measure=measure)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forgetting_records_changes_no_table(name):
    cfg = CASES[name]()
    assert len(checkpoints(cfg.run.horizon_days)) >= 6
    whole, running = batch(cfg), streamed(cfg)
    assert len(running.visits["episode"]) < len(whole.visits["episode"]) / 2  # it did let go
    assert_same_tables(tables(whole, cfg), tables(running, cfg))


def test_events_on_checkpoint_instants():
    """Fixed stays of whole days put events exactly at the checkpoints (reablement kept short of
    places, so that many start at its opening, on a whole day, and end on one)."""
    raw = system_raw("default")
    raw["services"]["reablement"]["capacity"] = 300
    raw["services"]["reablement"]["stay"] = {"dist": "fixed", "value": FOLD_DAYS / 3}
    raw["services"]["step_down"]["stay"] = {"dist": "fixed", "value": FOLD_DAYS}
    cfg = config(raw, 150.0, 30.0)
    whole = batch(cfg)
    on_cut = np.isin(whole.visits["leave"], checkpoints(150.0))
    assert on_cut.sum() > 10
    assert_same_tables(tables(whole, cfg), tables(streamed(cfg), cfg))


@pytest.mark.parametrize("name", ["stressed", "overflowing"])
def test_patient_log_keeps_every_record_in_order(name):
    cfg = CASES[name]()
    whole, kept = batch(cfg), streamed(cfg, keep=True)
    for table in ("visits", "waits", "turned"):
        x, y = getattr(whole, table), getattr(kept, table)
        for field in x:
            assert np.array_equal(x[field], y[field], equal_nan=True), (table, field)
    assert_same_tables(tables(whole, cfg), tables(kept, cfg))


def test_counts_by_segment_equal_direct_counts():
    """Counts kept segment by segment (admissions, exits, delays, the 91-day checks, people still
    in the system) against a direct count over the whole run's records."""
    cfg = CASES["default"]()
    ev = batch(cfg)
    k = results.kpis(streamed(cfg), cfg)
    v, w = ev.visits, ev.waits
    W, H = cfg.run.warmup_days, cfg.run.horizon_days
    acute, new = v["service"] == 0, v["episode"] >= ev.n_initial
    inw = lambda t: (t >= W) & (t < H)  # noqa: E731
    ended = v["outcome"] != OPEN
    assert k["admissions"] == np.sum(acute & new & inw(v["enter"]))
    alive = acute & ended & (v["outcome"] != DEATH) & inw(v["leave"])
    assert k["discharges"] == np.sum(alive)
    assert k["deaths"] == np.sum(ended & (v["outcome"] == DEATH) & inw(v["leave"]))
    delay = (v["leave"] - v["ready"])[alive]
    assert k["delayed_patients"] == np.sum(delay > 0)
    assert k["mean_delay_days"] == pytest.approx(delay[delay > 0].mean(), rel=1e-12)
    assert k["readmissions"] == np.sum(acute & (v["episode"] != v["person"]) & inw(v["enter"]))
    # 91 days after going from acute into reablement: one person at a time
    lay = ev.layout
    reab = lay.services.index("reablement")
    away = [
        c
        for c, s in enumerate(lay.services)
        if s == "acute" or s.startswith(("care_home", "step_down"))
    ]
    leave = np.where(np.isnan(v["leave"]), H, v["leave"])
    home = checks = 0
    for j in np.flatnonzero(
        acute & (v["outcome"] == reab) & (v["leave"] >= W) & (v["leave"] < H - 91)
    ):
        t, mine = v["leave"][j] + 91, v["person"] == v["person"][j]
        dead = np.any(mine & (v["outcome"] == DEATH) & (leave <= t))
        inside = np.any(mine & np.isin(v["service"], away) & (v["enter"] <= t) & (t < leave))
        checks += 1
        home += not (dead or inside)
    assert checks > 100
    assert k["home_at_91_days_rate"] == home / checks
    # entries into the flows: the first stay (not an assessment) of each episode begun in the window
    assess = lay.services.index("assessment")
    idx = np.flatnonzero(new & (v["service"] != assess))
    idx = idx[np.lexsort((v["enter"][idx], v["episode"][idx]))]
    first = idx[np.r_[True, v["episode"][idx][1:] != v["episode"][idx][:-1]]]
    first = first[inw(v["enter"][first])]
    flows = results.flows(streamed(cfg), cfg).set_index(["source", "target"])["patients"]
    readmit = v["episode"][first] != v["person"][first]
    assert flows[("admitted", "acute")] == np.sum(~readmit & (v["service"][first] == 0))
    assert flows[("readmitted", "acute")] == np.sum(readmit & (v["service"][first] == 0))
    referred = flows[flows.index.get_level_values(0) == "community_referral"]
    assert referred.sum() == np.sum(v["service"][first] != 0) > 0
    held = np.isnan(v["leave"]) & (v["service"] != assess)
    queued = np.isnan(w["end"]) & (w["place"] < -4)  # at the front door or in the community
    assert k["in_system_end"] == np.sum(held) + np.sum(queued)


def test_tables_refuse_a_tally_made_for_another_window():
    cfg = CASES["tandem"]()
    ev = streamed(cfg)
    other = config(system_raw("tandem"), 240.0, 30.0)
    with pytest.raises(ValueError, match="warm-up"):
        results.kpis(ev, other)


def test_records_held_do_not_grow_with_the_horizon():
    """The reference workload is stationary after its warm-up, so the records a run holds at a
    checkpoint (the people in the system, and 30 days of finished records) are about the same
    whatever the horizon: at 4x the horizon, the most held may exceed that of 1x by no more than
    25% (random variation of the peak of a stationary count; a run that kept its records would
    hold about 4x as many)."""
    most = []
    for horizon in (300.0, 1200.0):
        cfg = config(system_raw("tandem"), horizon, 100.0)
        m = model.Model(model.plan(cfg.system, model.Streams(cfg.run.seed, 0), horizon))
        ev = m.run(results.measure(cfg))
        most.append(m.most_held)
        assert ev.tally.counts["records"] > 4 * m.most_held * horizon / 1200.0
    assert most[1] <= 1.25 * most[0], most


def compiled_streamed(cfg) -> model.Events:
    return compiled.simulate(cfg.system, cfg.run.seed, 0, cfg.run.horizon_days,
                             measure=results.measure(cfg))  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_engine_run_in_segments_gives_the_same_tables(name):
    """The compiled engine, tallied, runs a segment at a time, renumbering the records, waiting
    lines and attribute rows it keeps: the same tables and the same open records as the SimPy
    engine."""
    cfg = CASES[name]()
    a, b = streamed(cfg), compiled_streamed(cfg)
    assert_same_tables(tables(a, cfg), tables(b, cfg))
    for field in a.visits:
        assert np.array_equal(a.visits[field], b.visits[field], equal_nan=True), field


@pytest.mark.parametrize("name", ["stressed", "overflowing"])
def test_compiled_segments_survive_running_out_of_room(monkeypatch, name):
    """Tiny buffers and one spare readmission row: buffers grow between segments, a segment that
    overflows makes the run start again, readmission rows are topped up as they are used; none
    of it may change a table."""
    cfg = CASES[name]()
    want = tables(streamed(cfg), cfg)
    restarts, blocks = [], []
    real_full, real_block = compiled.Full.__init__, model.Plan.readmission_block

    def full(self, *args):
        restarts.append(args)
        real_full(self, *args)

    def block(self, group, b):
        blocks.append((group, b))
        return real_block(self, group, b)

    monkeypatch.setattr(compiled.Full, "__init__", full)
    monkeypatch.setattr(model.Plan, "readmission_block", block)
    monkeypatch.setattr(compiled, "ROOM", 0.005)
    monkeypatch.setattr(compiled, "SPARE_READMISSIONS", 1)
    assert_same_tables(want, tables(compiled_streamed(cfg), cfg))
    assert restarts  # it did run out
    assert max(b for _, b in blocks) >= 1  # and drew readmission rows as the run went


def test_compiled_records_held_do_not_grow_with_the_horizon():
    """As for the SimPy engine (same bound, same reason), counting records and attribute rows."""
    most = []
    for horizon in (300.0, 1200.0):
        cfg = config(system_raw("tandem"), horizon, 100.0)
        p = model.plan(cfg.system, model.Streams(cfg.run.seed, 0), horizon)
        run = compiled._Segments(
            p, results.measure(cfg), compiled.ROOM, compiled.SPARE_READMISSIONS
        )
        run.run()
        most.append(run.most_held)
    assert most[1] <= 1.25 * most[0], most
