"""Events to tables: KPIs per replication, daily series, the patient log, flows, and the files of
the outputs contract written with their provenance (summaries across replications: uncertainty.py).

Definitions (all over the measured window ``[warmup_days, horizon_days)``):

- ``admissions``: acute admissions in the window (people already in care at day 0 are not counted).
- ``discharges``: acute stays ended alive in the window; ``deaths``: deaths in any setting.
- ``in_system_end``: people in a service or waiting for one at the horizon.
- a *delay* is time spent ready to leave a service while waiting for the next one; in acute it runs
  from no criteria to reside to leaving the bed (discharge process, assessment, and the wait for a
  place). ``delayed_bed_days`` is the time-integral of delayed patients in acute beds over the
  window
  (so it is the sum of the parts of delays inside the window), split by responsible organisation
  (``_nhs``, ``_social_care``, ``_both``), by reason in each scheme (``reasons.py``: DTOC code
  ``_<reason>``, with ``_not_dtoc`` for waits that have none; NCTR category ``_nctr_<category>``,
  a wait's days split by its shares) and by what the patient waits for (``_for_<service>``,
  ``_for_discharge_process``).
- ``delayed_patients``: patients whose acute delay was positive and ended inside the window;
  ``mean_delay_days``: the mean acute delay of those patients, each delay counted whole (NaN in a
  replication with none; summaries pool it per patient: ``uncertainty.POOLED``).
- ``nctr_mean``: ``delayed_bed_days`` divided by the window's length (mean beds held by people ready
  to leave). ``acute_occupancy_mean``: mean occupied acute beds; ``acute_occupancy_p95``: the 95th
  percentile of daily mean occupancy; ``acute_days_over_95pct``: days whose mean occupancy was
  above 95% of the beds in force.
- ``boarding_hours``: hours spent waiting for an acute bed (the front door), all admissions.
- ``care_home_admissions``: entries to care_home-role services; ``readmissions``: acute admissions
  of people already discharged (within 30 days, by pathway).
- ``home_at_91_days_rate``: of people discharged from acute to a reablement-role service in the
  window (at least 91 days before the horizon), the share at home (not dead, not in a service
  whose role is acute, step_down, care_home or other) 91 days later (ASCOF 2B(1)); its
  ``home_checks``: how many there were (summaries pool the rate over them).
- "acute" in a KPI's name means the acute-role service, whatever its name
  (``config.Service.role``), or, in a system of several trusts, all their acute services
  together; a service's name appears only in per-service columns.
- costs: occupied days x cost per occupied day + capacity days x cost per capacity day, to the
  organisation that pays for the service, plus investments (``investment_cost_gbp``, by funder in
  ``investment_cost_<funder>_gbp``) to the organisation of their funder (iBCF and councils: social
  care; NHS and ICBs: NHS). ``cost_total_gbp`` is the net system cost, investments included.
  Capacity bought by an investment is costed once, by the investment.
- ``acute_bed_days``: occupied acute bed days in the window.
- ``lost_<service>`` (a service with ``when_full: lost``): people who, in the window, found the
  service full at the moment they would have started to wait for it (see
  ``config.Service.when_full``) and so left the modelled system. ``overflow_<service>`` (a service
  with ``when_full: home`` or naming another service): people who found it full and were sent
  home or to the other service instead. One column for each service with a rule other than
  ``wait``; each person turned away is counted once for each full service they met (a person sent
  on from a full service to another full one counts at both). People offered a service in the
  window = entries to it (``admissions`` in ``daily``) + those turned away from it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flowsim import investments
from flowsim.config import DRD_BANDS, DRD_SCOPES, PATHWAYS, REASONS, RESPONSIBLE, Config
from flowsim.patients import DEATH, HOME, LOST, OPEN, READMIT
from flowsim.reasons import NCTR, NOT_DTOC
from flowsim.tally import OUTCOME_SHIFT, Measure, Tally, replay, time_of_day

if TYPE_CHECKING:
    from flowsim.records import Events

KPI_CONTRACT = (
    "admissions",
    "discharges",
    "deaths",
    "in_system_end",
    "delayed_bed_days",
    "delayed_bed_days_nhs",
    "delayed_bed_days_social_care",
    "delayed_bed_days_both",
    "delayed_patients",
    "mean_delay_days",
    "acute_occupancy_mean",
    "acute_occupancy_p95",
    "nctr_mean",
    "boarding_hours",
    "care_home_admissions",
    "home_at_91_days_rate",
    "readmissions",
    "cost_nhs_gbp",
    "cost_social_care_gbp",
    "cost_total_gbp",
)
HEADLINE = (
    ("delayed_bed_days", "Delayed bed days (acute)"),
    ("nctr_mean", "Beds held by people ready to leave"),
    ("delayed_patients", "People delayed"),
    ("mean_delay_days", "Mean delay, days"),
    ("acute_occupancy_mean", "Acute beds occupied"),
    ("boarding_hours", "Boarding hours"),
    ("home_at_91_days_rate", "At home 91 days after reablement"),
    ("cost_total_gbp", "Cost to NHS and council, GBP"),
)


# -- capacity ---------------------------------------------------------------------------------


def capacity_integral(steps: list[tuple[float, int]], a, b):
    """Place-days of capacity in force over [a, b): a float, or an array for arrays ``a``, ``b``
    (``capacity_integral(steps, days, days + 1)`` is the capacity of each day)."""
    total = 0.0
    for k, (day, cap) in enumerate(steps):
        end = steps[k + 1][0] if k + 1 < len(steps) else math.inf
        total = total + cap * np.maximum(0.0, np.minimum(b, end) - np.maximum(a, day))
    return float(total) if np.ndim(total) == 0 else total


# -- the sums a replication's tables are made of ------------------------------------------------


def measure(config: Config) -> Measure:
    """What the tables of ``config`` (scenario applied) need tallied: the warm-up, and the own
    places of each service where an investment bought more (``investments.own_places``: the
    bought places are costed once, by the investment)."""
    own = {
        s: investments.own_places(config.system.services[s].capacity_steps(), bought)
        for s, bought in investments.by_service(investments.of(config)).items()
    }
    return Measure(
        warmup=float(config.run.warmup_days),
        own=own,
        keep=bool(config.run.patient_log),
        census=time_of_day(config.system.nctr_census_time),
    )


def measures(ev: Events, config: Config) -> Tally:
    """The tally of a replication: the one its engine kept while running, or, for events kept
    whole, one replayed from them (the same sums, bit for bit)."""
    want = measure(config)
    if ev.tally is not None:
        got = ev.tally.measure
        if got.warmup != want.warmup or got.own != want.own:
            raise ValueError(
                "these events were tallied for another warm-up or another scenario's investments"
            )
        return ev.tally
    t = Tally(ev.layout, ev.horizon_days, ev.n_initial, ev.capacity_steps, want)
    ev.tally = replay(t, ev.visits, ev.waits, ev.turned)
    return ev.tally


# -- KPIs -------------------------------------------------------------------------------------


def kpis(ev: Events, config: Config) -> dict[str, float]:
    """The KPI row of one replication (see the module docstring for definitions)."""
    t = measures(ev, config)
    system = config.system
    W, H = t.W, t.H
    L = H - W
    lay = ev.layout
    c = t.counts
    out: dict[str, float] = {}
    for k in ("admissions", "discharges", "deaths", "in_system_end"):
        out[k] = c[k]
    out["delayed_bed_days"] = float(t.window_held[: ev.layout.n_acute].sum())  # every trust's
    for k, r in enumerate(RESPONSIBLE):
        out[f"delayed_bed_days_{r}"] = float(t.window_acute_org[k])
    for k in reasons_used(config):
        out[f"delayed_bed_days_{k}"] = float(t.window_acute_reason[REASONS.index(k)])
    dtoc = lay.dtoc()
    if (dtoc < 0).any():
        out[f"delayed_bed_days_{NOT_DTOC}"] = float(t.window_acute_kind[dtoc < 0].sum())
    by_nctr = t.window_acute_kind @ lay.nctr()
    for k in nctr_used(config):
        out[f"delayed_bed_days_nctr_{k}"] = float(by_nctr[list(NCTR).index(k)])
    for code, s in enumerate(lay.services[lay.n_acute :], start=lay.n_acute):
        out[f"delayed_bed_days_for_{s}"] = float(t.window_acute_for[code])
    out["delayed_bed_days_for_discharge_process"] = float(t.window_acute_for[-1])
    out["delayed_patients"] = c["delayed_patients"]
    out["mean_delay_days"] = t.mean_delay()

    out.update(_beds(t, ev, system, list(range(lay.n_acute))))  # every acute trust's, together
    out["nctr_mean"] = out["delayed_bed_days"] / L
    out["nctr_share_of_occupied"] = out["nctr_mean"] / max(out["acute_occupancy_mean"], 1e-12)
    out["boarding_hours"] = 24.0 * float(t.window_held[t.S])
    out["community_wait_days"] = float(t.window_held[t.S + 1])
    out["care_home_admissions"] = c["care_home_admissions"]
    out["home_at_91_days_rate"] = t.home_at_91_rate()
    out["home_checks"] = c["home_checks"]
    out["readmissions"] = c["readmissions"]
    by_pathway = t.discharges_by_group.sum(axis=0)
    for k, p in enumerate(PATHWAYS):
        out[f"discharges_{p}"] = int(by_pathway[k])
    out.update(discharge_ready(t))
    for code, s in enumerate(lay.services):
        rule = system.services[s].when_full
        if rule == "lost":
            out[f"lost_{s}"] = int(t.window_lost[code])
        elif rule != "wait":
            out[f"overflow_{s}"] = int(t.window_overflow[code])

    # a service is costed for its own places; the places an investment bought, by the investment
    own = t.measure.own
    org = {"nhs": 0.0, "social_care": 0.0, "other": 0.0}
    for code, s in enumerate(lay.services):
        svc = system.services[s]
        place_days = capacity_integral(own.get(s, ev.capacity_steps[code]), W, H)
        occupied = t.window_own[code] if s in own else t.window_occupied[code]
        cost = svc.cost_per_occupied_day_gbp * float(occupied)
        cost += svc.cost_per_capacity_day_gbp * place_days
        out[f"cost_{s}_gbp"] = cost
        org[svc.paid_by] += cost
    out["investment_cost_gbp"] = 0.0
    for funder, cost in investments.costs(investments.of(config), W, H).items():
        out[f"investment_cost_{funder}_gbp"] = cost
        out["investment_cost_gbp"] += cost
        org[investments.organisation(funder, system.organisations)] += cost
    out["acute_bed_days"] = out["acute_occupancy_mean"] * L
    out["cost_nhs_gbp"] = org["nhs"]
    out["cost_social_care_gbp"] = org["social_care"]
    out["cost_total_gbp"] = org["nhs"] + org["social_care"] + org["other"]
    out.update(organisations(t, ev, config, out))
    return out


ORG_KPIS = (
    "admissions", "discharges", "delayed_patients", "care_home_admissions", "acute_bed_days",
    "delayed_bed_days", "delayed_bed_days_nhs", "delayed_bed_days_social_care",
    "delayed_bed_days_both", "nctr_mean",
)  # fmt: skip
"""The KPIs every organisation's breakdown gives (``org_<name>_<kpi>``), besides its cost."""


def _beds(t: Tally, ev: Events, system, picked: list[int]) -> dict[str, float]:
    """How full the acute beds ``picked`` (acute codes, counted together) were over the window:
    ``acute_occupancy_mean``, ``_p95`` (of daily means), ``_rate`` (of the beds in force; NaN for
    unlimited beds) and ``acute_days_over_95pct``."""
    W, H = t.W, t.H
    L = H - W
    out = {"acute_occupancy_mean": float(t.window_occupied[picked].sum()) / L}
    measured = t.occupancy[picked].sum(axis=0)[int(math.ceil(W)) : int(math.floor(H))]
    out["acute_occupancy_p95"] = float(np.percentile(measured, 95)) if measured.size else math.nan
    cap = sum(capacity_integral(ev.capacity_steps[k], W, H) for k in picked) / L
    if any(system.services[system.acutes[k]].unlimited for k in picked):
        cap = math.nan  # no beds to be a share of
    out["acute_occupancy_rate"] = out["acute_occupancy_mean"] / cap
    measured_days = np.arange(int(math.ceil(W)), int(math.floor(H)), dtype=np.float64)
    daily_cap = sum(capacity_integral(ev.capacity_steps[k], measured_days, measured_days + 1.0)
                    for k in picked)  # fmt: skip
    out["acute_days_over_95pct"] = int(np.sum(measured > 0.95 * daily_cap))
    return out


def organisations(t: Tally, ev: Events, config: Config, kpis: dict) -> dict[str, float]:
    """Each organisation's share of the system (``System.organisations``), as
    ``org_<name>_<kpi>``: a council's for its residents (its patient groups: their acute
    admissions, discharges (and by pathway), readmissions, people delayed and their mean delay,
    care home admissions, acute bed days, delayed bed days split by responsible organisation and
    by reason in both schemes, beds held by them when ready to leave, the discharge ready date
    measures as ``discharge_ready``'s for all pathways, and the share at home 91 days after
    reablement); a trust's for everyone in its acute beds, with its own beds' occupancy
    (``_beds``) and ``boarding_hours`` (and, of several trusts, no care home admissions: they are
    no one trust's; its ``deaths`` are those in its acute beds, a council's its residents'
    anywhere). ``community_wait_days``: days waited in the community for the services it
    runs. ``org_<name>_cost_gbp``: the costs of the services it runs plus the investments it
    funds. The councils' residents add up to the whole system, as do the trusts' beds. Shares and
    means per patient are pooled over replications in summaries (``uncertainty.ORG_POOLED``)."""
    system = config.system
    if not system.organisations:
        return {}
    L = t.H - t.W
    lay = t.layout
    groups, G = list(lay.groups), len(lay.groups)
    acutes = {system.services[a].organisation: k for k, a in enumerate(system.acutes)}
    out: dict[str, float] = {}
    for name, org in system.organisations.items():
        if org.kind == "council":  # its residents, at every trust
            rows = [groups.index(g) + G * k for g in org.groups for k in range(lay.n_acute)]
        elif name in acutes:  # everyone in its acute beds
            rows = list(range(G * acutes[name], G * (acutes[name] + 1)))
        else:  # a trust without acute beds: the whole system
            rows = list(range(lay.n_keys))
        p = f"org_{name}_"
        for k in ("admissions", "discharges", "delayed_patients", "care_home_admissions",
                  "readmissions"):  # fmt: skip
            if k == "care_home_admissions" and org.kind != "council" and lay.n_acute > 1:
                continue  # one of several trusts: a care home admission is no trust's
            out[p + k] = int(t.by_group[k][rows].sum())
        # a council's residents' deaths anywhere; a trust's, in its acute beds
        died = "deaths" if org.kind == "council" else "deaths_in_acute"
        out[p + "deaths"] = int(t.by_group[died][rows].sum())
        n = out[p + "delayed_patients"]
        out[p + "mean_delay_days"] = float(t.delay_by_group[rows].sum()) / n if n else math.nan
        if t.reablement.size:  # ASCOF 2B(1) of those who left its beds (a trust) or its residents
            checks, home = (int(x) for x in t.home_by_group[rows].sum(axis=0))
            out[p + "home_checks"] = checks
            out[p + "home_at_91_days_rate"] = home / checks if checks else math.nan
        out[p + "acute_bed_days"] = float(t.window_acute_by_group[rows].sum())
        delayed = t.window_delayed_by_group[rows].sum(axis=0)
        out[p + "delayed_bed_days"] = float(delayed.sum())
        for k, r in enumerate(RESPONSIBLE):
            out[p + f"delayed_bed_days_{r}"] = float(delayed[k])
        out[p + "nctr_mean"] = out[p + "delayed_bed_days"] / L
        for k, pathway in enumerate(PATHWAYS):
            out[p + f"discharges_{pathway}"] = int(t.discharges_by_group[rows, k].sum())
        for k, v in {**_reasons_of(t, rows, config), **_ready_of(t, rows)}.items():
            out[p + k] = v
        runs = [s for s, svc in system.services.items() if svc.organisation == name]
        waited = [lay.services.index(s) for s in runs if s in lay.services]
        out[p + "community_wait_days"] = float(t.window_community_for[waited].sum())
        if name in acutes:  # a trust's own beds: how full, how often near full, its front door
            code = acutes[name]
            out.update({p + k: v for k, v in _beds(t, ev, system, [code]).items()})
            out[p + "boarding_hours"] = 24.0 * float(t.window_boarding_by_acute[code])
        out[p + "cost_gbp"] = sum(kpis[f"cost_{s}_gbp"] for s in runs) + kpis.get(
            f"investment_cost_{name}_gbp", 0.0
        )
    return out


def _reasons_of(t: Tally, rows: list[int], config: Config) -> dict[str, float]:
    """The delayed bed days of the tally's keys ``rows`` by reason, in both schemes, named as the
    system's KPIs are (``kpis``)."""
    lay, out = t.layout, {}
    dtoc = lay.dtoc()
    by_kind = t.window_kind_by_group[rows].sum(axis=0)
    for k in reasons_used(config):
        out[f"delayed_bed_days_{k}"] = float(by_kind[dtoc == REASONS.index(k)].sum())
    if (dtoc < 0).any():
        out[f"delayed_bed_days_{NOT_DTOC}"] = float(by_kind[dtoc < 0].sum())
    by_nctr = by_kind @ lay.nctr()
    for k in nctr_used(config):
        out[f"delayed_bed_days_nctr_{k}"] = float(by_nctr[list(NCTR).index(k)])
    waited = t.window_for_by_group[rows].sum(axis=0)  # and by what is waited for
    for code, s in enumerate(lay.services[lay.n_acute :], start=lay.n_acute):
        out[f"delayed_bed_days_for_{s}"] = float(waited[code])
    out["delayed_bed_days_for_discharge_process"] = float(waited[-1])
    return out


def _ready_of(t: Tally, rows: list[int]) -> dict[str, float]:
    """The discharge ready date measures of the tally's keys ``rows``, for all pathways and for
    each, named as ``discharge_ready``'s."""
    day = np.arange(t.census_by_group.shape[-1]) + t.measure.census
    window = (day >= t.W) & (day < t.H)
    out: dict[str, float] = {}
    for scope, pw in zip(DRD_SCOPES, [slice(None)] + [[k] for k in range(len(PATHWAYS))]):
        bands = t.drd_by_group[rows][:, pw].sum(axis=(0, 1))
        n, on_date = int(bands.sum()), int(bands[0])
        days = float(t.drd_days_by_group[rows][:, pw].sum())
        out[f"drd_discharges{scope}"] = n
        out[f"drd_delayed_discharges{scope}"] = n - on_date
        for (band, _), k in zip(DRD_BANDS, bands):
            out[f"drd_days_{band}_share{scope}"] = int(k) / n if n else math.nan
        out[f"drd_mean_days{scope}"] = days / n if n else math.nan
        out[f"drd_mean_days_delayed{scope}"] = days / (n - on_date) if n > on_date else math.nan
        census = np.cumsum(t.census_by_group[rows][:, pw].sum(axis=(0, 1)))[window]
        out[f"nctr_census_mean{scope}"] = float(census.mean()) if census.size else math.nan
    return out


def drd_kpis(scope: str = "") -> list[str]:
    """The discharge ready date KPI columns of one scope (``""``, ``"_P0"``, ...)."""
    bands = [f"drd_days_{name}_share{scope}" for name, _ in DRD_BANDS]
    return [
        f"drd_discharges{scope}",
        f"drd_delayed_discharges{scope}",
        *bands,
        f"drd_mean_days{scope}",
        f"drd_mean_days_delayed{scope}",
        f"nctr_census_mean{scope}",
    ]


def discharge_ready(t: Tally) -> dict[str, float]:
    """The measures NHS England publishes monthly on the Discharge Ready Date (``tally.DRD_BANDS``
    gives the definitions and sources), over the window, for all pathways and for each:

    - ``drd_discharges``: acute discharges (alive) of stays of a night or more;
      ``drd_delayed_discharges``: those discharged after their discharge ready date;
    - ``drd_days_<band>_share``: the share discharged ``0``, ``1``, ``2_3``, ``4_6``, ``7_13``,
      ``14_20`` or ``21_plus`` days after it (``drd_days_0_share``: discharged on their discharge
      ready date);
    - ``drd_mean_days``: mean days from it to discharge, over all those discharges (0-day delays
      included); ``drd_mean_days_delayed``: over the delayed ones only;
    - ``nctr_census_mean``: the mean number of people in acute beds who no longer meet the
      criteria to reside, counted each day at ``System.nctr_census_time``.

    Shares and means are per patient: summaries pool them over replications
    (``uncertainty.POOLED``). The pathway is the one a patient left by."""
    return _ready_of(t, list(range(t.layout.n_keys)))


def _waits(config: Config) -> list:
    s = config.system
    out = [svc.wait for svc in s.services.values() if svc.wait is not None]
    return out + [p.process_wait for p in s.discharge.pathways.values()]


def reasons_used(config: Config) -> list[str]:
    """DTOC reason codes that some wait in this system is recorded under, in code order."""
    used = {w.reason for w in _waits(config)}
    return [r for r in REASONS if r in used]


def nctr_used(config: Config) -> list[str]:
    """NCTR categories that some wait's days are counted under, in ``reasons.NCTR`` order."""
    used = {code for w in _waits(config) for code in w.nctr}
    return [r for r in NCTR if r in used]


# -- daily series and the patient log -----------------------------------------------------------


def daily(ev: Events, config: Config) -> pd.DataFrame:
    """One row per (day, place): occupancy, capacity, admissions, exits, waits and delays.

    ``delayed_mean`` counts people in the place who are ready to leave and waiting (by reason in
    ``delayed_<reason>``, by responsible organisation in ``delayed_<nhs|social_care|both>``);
    ``discharges_P0`` .. ``_P3`` count acute stays ended alive on the day, by pathway (0 for
    other places); ``exits_<home|death|readmission|service>`` count stays ended on the day by
    where the person went (and ``exits_lost``, when a service has ``when_full: lost``);
    ``waiting_mean`` counts people waiting to enter it, wherever they wait.
    ``front_door`` is the queue for an acute bed. Days in the warm-up are flagged ``warmup``.
    ``role`` is the place's role (``config.Service.role``; ``front_door`` for the front door), so
    code reading the table finds the acute service by its role, not its name.
    """
    t = measures(ev, config)
    n_days, S = t.n_days, t.S
    lay = ev.layout
    reasons = reasons_used(config)
    days = np.arange(n_days)
    zeros = np.zeros(n_days, dtype=np.int64)
    destinations = (("home", HOME), ("death", DEATH), ("readmission", READMIT)) + tuple(
        (x, lay.services.index(x)) for x in lay.downstream
    )
    if any(config.system.services[s].when_full == "lost" for s in lay.services):
        destinations += (("lost", LOST),)
    frames = []
    for code, s in [*enumerate(lay.services), (S, "front_door")]:
        service = code < S
        frame = {
            "day": days,
            "service": s,
            "role": lay.roles[code] if service else "front_door",
            "occupancy_mean": t.occupancy[code] if service else t.held[S],
            "capacity": (
                capacity_integral(ev.capacity_steps[code], days, days + 1.0)
                if service and not config.system.services[s].unlimited
                else np.full(n_days, np.nan)  # no limit: the front door, unlimited services
            ),
            "admissions": t.admissions[code] if service else t.front_door_starts,
            "exits": t.exits[code] if service else t.front_door_ends,
        }
        for name, dest in destinations:  # where people went
            frame[f"exits_{name}"] = t.exits_to[code, dest + OUTCOME_SHIFT] if service else zeros
        frame["delayed_mean"] = t.held[code]
        for r in reasons:
            frame[f"delayed_{r}"] = t.held_reason[code, REASONS.index(r)]
        for k, org in enumerate(RESPONSIBLE):
            frame[f"delayed_{org}"] = t.held_org[code, k]
        for k, pathway in enumerate(PATHWAYS):  # acute stays ended alive, by pathway
            acute = service and code < lay.n_acute
            row = code * len(PATHWAYS) + k
            frame[f"discharges_{pathway}"] = t.discharges[row] if acute else zeros
        frame["waiting_mean"] = t.waiting[code] if service else np.zeros(n_days)
        frames.append(pd.DataFrame(frame))
    out = pd.concat(frames, ignore_index=True)
    out["warmup"] = out["day"] < config.run.warmup_days
    return out


def patient_log(ev: Events) -> pd.DataFrame:
    """The event log: one row per stay in a service (``ready`` = ready to leave; ``outcome`` = where
    the person went next)."""
    lay = ev.layout
    names = {
        **dict(enumerate(lay.services)),
        HOME: "home",
        DEATH: "death",
        READMIT: "readmission",
        OPEN: "still_in_service",
        LOST: "lost",
    }
    v = ev.visits
    return pd.DataFrame(
        {
            "episode": v["episode"],
            "person": v["person"],
            "service": pd.Categorical.from_codes(v["service"], lay.services),
            "group": pd.Categorical.from_codes(v["group"], lay.groups),
            "pathway": pd.Categorical.from_codes(v["pathway"], list(PATHWAYS)),
            "enter_day": v["enter"],
            "ready_day": v["ready"],
            "leave_day": v["leave"],
            "outcome": [names[int(o)] for o in v["outcome"]],
        }
    )


def flows(ev: Events, config: Config) -> pd.DataFrame:
    """Patients moving between places in the measured window, for the flow (Sankey) diagram.

    One row per (source, target): ``admitted`` / ``readmitted`` / ``community_referral`` into a
    service; the acute service (by its name) into the discharge pathway it ended on (``P0`` ..
    ``P3``) or ``death``; a pathway into where its people went; each other service into its onward
    places (a service, ``home``, ``death`` or ``readmission``, or ``lost``: turned away by a full
    service with ``when_full: lost``). A community referral turned away at once by a full service
    goes to where its rule sent it (``community_referral`` -> ``lost`` or ``home``, or into the
    other service). Assessments happen in an acute bed and are not a place here. People already in
    care at the start enter no flow. Entries come first; exits follow in the order they first
    occurred.
    """
    t = measures(ev, config)
    lay = ev.layout
    names = {**dict(enumerate(lay.services)), HOME: "home", DEATH: "death", READMIT: "readmission",
             LOST: "lost"}  # fmt: skip
    counts: dict[tuple[str, str], int] = {}

    def add(source: str, target: str, n: int) -> None:
        if n:
            counts[(source, target)] = counts.get((source, target), 0) + n

    for code in range(lay.n_acute):
        for kind in ("readmitted", "admitted"):
            add(kind, lay.services[code], t.entries.get((kind, code), 0))
    for (kind, code), n in sorted(t.entries.items(), key=lambda item: item[0][1]):
        if kind == "community_referral":
            add(kind, names[code], n)
    for (k, x, y), (n, _) in sorted(t.flow_exits.items(), key=lambda item: item[1][1]):
        if k == 1:  # y is the acute service
            add(lay.services[y], PATHWAYS[x], n)
        elif k == 2:
            add(PATHWAYS[x], names[y], n)
        else:
            add(names[x], names[y], n)
    return pd.DataFrame(
        [{"source": s, "target": t, "patients": n} for (s, t), n in counts.items()],
        columns=["source", "target", "patients"],
    )
