"""The discharge ready date measures (NHS England's monthly discharge delays publication;
``tally.DRD_BANDS``, ``results.discharge_ready``): the running tally gives what the definitions
give when applied by hand, patient by patient, to the whole event log of a run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_default_system import default_config

from flowsim import model, results, uncertainty
from flowsim.config import DRD_BANDS, PATHWAYS
from flowsim.patients import DEATH, OPEN
from flowsim.tally import Measure, time_of_day

H, W = 240.0, 60.0


@pytest.fixture(scope="module", params=["23:59", "08:30"])
def run(request):
    """One replication of the default system kept whole (every stay), with its KPIs tallied from
    the same records, for the sitrep's 23:59 census and a morning board round."""
    cfg = default_config(replications=1, horizon_days=H, warmup_days=W, seed=17)
    cfg.system.nctr_census_time = request.param
    ev = model.simulate(cfg.system, cfg.run.seed, 0, H)
    return cfg, ev, results.kpis(ev, cfg)


def by_hand(ev, census: float) -> dict[str, float]:
    """The definitions applied to each acute stay of the event log."""
    v = ev.visits
    acute = v["service"] == 0
    leave, ready, enter = v["leave"], v["ready"], v["enter"]
    out: dict[str, float] = {}
    for scope, pathways in [("", range(4))] + [(f"_{p}", [k]) for k, p in enumerate(PATHWAYS)]:
        mine = acute & np.isin(v["pathway"], list(pathways))
        rows = []
        for k in np.flatnonzero(mine):
            left_alive = v["outcome"][k] not in (OPEN, DEATH) and W <= leave[k] < H
            if left_alive and math.floor(leave[k]) > math.floor(enter[k]):  # a night or more
                rows.append(math.floor(leave[k]) - math.floor(ready[k]))
        days = np.array(rows)
        n = days.size
        out[f"drd_discharges{scope}"] = n
        out[f"drd_delayed_discharges{scope}"] = int(np.sum(days > 0))
        edges = [b for _, b in DRD_BANDS] + [math.inf]
        for (name, lo), hi in zip(DRD_BANDS, edges[1:]):
            out[f"drd_days_{name}_share{scope}"] = np.sum((days >= lo) & (days < hi)) / n
        out[f"drd_mean_days{scope}"] = days.mean()
        out[f"drd_mean_days_delayed{scope}"] = days[days > 0].mean()
        # the census: each day d with d + census in the window, people ready and still in a bed
        points = [d + census for d in range(int(H) + 1) if W <= d + census < H]
        end = np.where(np.isnan(leave), math.inf, leave)
        counts = [np.sum(mine & (ready <= t) & (t < end)) for t in points]
        out[f"nctr_census_mean{scope}"] = float(np.mean(counts))
    return out


def test_the_tally_gives_the_definitions_applied_patient_by_patient(run):
    cfg, ev, kpis = run
    want = by_hand(ev, time_of_day(cfg.system.nctr_census_time))
    for k, value in want.items():
        # counts exactly; shares and means are the same sums divided (floating point aside)
        assert kpis[k] == pytest.approx(value, rel=1e-12), k
    # the run is big enough that every band below three weeks and every pathway is exercised
    assert want["drd_discharges_P3"] > 0 and want["drd_days_7_13_share"] > 0


def test_the_measures_hang_together(run):
    """Bands are a partition; the mean over delayed discharges is the mean over all of them
    scaled by the share delayed; the pathways add up to all; the sitrep count at 23:59 sits near
    the time-average of beds held by people ready to leave (``nctr_mean``), since both count the
    same people (within 15%: a single daily snapshot of a queue that swings over the day)."""
    cfg, _, k = run
    for scope in ("",) + tuple(f"_{p}" for p in PATHWAYS):
        shares = [k[f"drd_days_{name}_share{scope}"] for name, _ in DRD_BANDS]
        assert sum(shares) == pytest.approx(1.0, abs=1e-12), scope
        n, d = k[f"drd_discharges{scope}"], k[f"drd_delayed_discharges{scope}"]
        assert 1 - shares[0] == pytest.approx(d / n, rel=1e-12)
        assert k[f"drd_mean_days_delayed{scope}"] * d == pytest.approx(
            k[f"drd_mean_days{scope}"] * n, rel=1e-12
        )
    assert k["drd_discharges"] == sum(k[f"drd_discharges_{p}"] for p in PATHWAYS)
    assert k["nctr_census_mean"] == pytest.approx(
        sum(k[f"nctr_census_mean_{p}"] for p in PATHWAYS), rel=1e-12
    )
    # stays of a night or more are most of the discharges, not all
    assert 0.5 * k["discharges"] < k["drd_discharges"] < k["discharges"]
    if cfg.system.nctr_census_time == "23:59":
        assert k["nctr_census_mean"] == pytest.approx(k["nctr_mean"], rel=0.15)


def test_shares_and_means_are_pooled_per_patient_across_replications():
    """A replication with few discharges on a pathway must not weigh as much as a busy one: the
    summary pools the shares and means over each scope's discharges."""
    for scope in ("", "_P2"):
        assert uncertainty.POOLED[f"drd_days_0_share{scope}"] == f"drd_discharges{scope}"
        assert uncertainty.POOLED[f"drd_mean_days_delayed{scope}"] == (
            f"drd_delayed_discharges{scope}"
        )
    assert set(results.drd_kpis("_P1")) <= set(uncertainty.POOLED) | {
        "drd_discharges_P1", "drd_delayed_discharges_P1", "nctr_census_mean_P1"
    }  # fmt: skip


def test_the_census_time_is_checked():
    from flowsim.config import ConfigError, validate

    cfg = default_config(replications=1)
    raw = cfg.model_dump(mode="json")
    for bad in ("24:00", "7:30", "noon"):
        raw["system"]["nctr_census_time"] = bad
        with pytest.raises(ConfigError, match="nctr_census_time"):
            validate(raw)
    assert Measure().census == time_of_day("23:59")
