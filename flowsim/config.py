"""Configuration schemas and validation: what a system, a scenario and a run may say.

Values come from YAML (composed by Hydra in ``cli.py``) and are checked here once, before any run.
Every rule names its field; ``validate`` turns pydantic's errors into one plain-English message.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flowsim import reasons
from flowsim.network import PROBABILITY_TOLERANCE, ROLES, check_network

REASONS = tuple(reasons.DTOC)
"""DTOC reason codes (NHS England monthly statistics): ``reasons.py``, DOMAIN.md section 2."""
REASON_NAMES = reasons.DTOC
RESPONSIBLE = ("nhs", "social_care", "both")
PATHWAYS = ("P0", "P1", "P2", "P3")
DRD_BANDS = (
    ("0", 0), ("1", 1), ("2_3", 2), ("4_6", 4), ("7_13", 7), ("14_20", 14), ("21_plus", 21)
)  # fmt: skip
"""Days from the discharge ready date to the date of discharge, in the bands of NHS England's
monthly discharge delays publication (name, first day of the band). Days count calendar dates:
ready on Monday at 22:00 and discharged on Tuesday at 09:00 is 1 day; ready and discharged on the
same date, 0 days ("discharged on their discharge ready date"). Source: NHS England, Discharge
Delays statistical work area (england.nhs.uk/statistics/statistical-work-areas/discharge-delays),
monthly "Discharge Delays (Acute)" data, from 2024; the Discharge Ready Date is the date a
patient no longer meets the criteria to reside (NHS England letter PRN00312, 2023, and "New
Discharge Ready Date", PRN00603, 2023), recorded for inpatients with a stay of one night or
longer."""
DRD_SCOPES = ("",) + tuple(f"_{p}" for p in PATHWAYS)
"""The discharge ready date KPIs are given for all pathways (no suffix) and for each (``_P1``)."""
Role = Literal[ROLES]
"""What a service is to the model and its KPIs (``Service.role``)."""
AWAY_ROLES = ("acute", "step_down", "care_home", "other")
"""Roles of places where someone is not at home (``home_at_91_days_rate``)."""
MAX_CAPACITY = 1_000_000
"""The most places a service may have (no real service has a million). Both engines count places
in 64-bit integers; a larger number is a typing slip. A service with no limit says ``unlimited``."""
UNLIMITED = 2**40
"""The number of places an ``unlimited`` service has inside the engines: more than any run can
fill (the work limits in ``runner.check_size`` keep every run far below it)."""
MAX_MEAN_DAYS = 36_500
"""A duration's mean may be at most a hundred years (a larger one is a slip in its units)."""
MAX_COUNT = 1_000_000
MAX_HORIZON_DAYS = 1e8
"""A sanity bound on ``run.horizon_days``; the work limits of ``runner.check_size`` come first."""
"""Upper bound of counts a user gives (replications, units, steps): a larger one is a slip."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
Reason = Literal[REASONS]
Responsible = Literal["nhs", "social_care", "both"]
PathwayName = Literal["P0", "P1", "P2", "P3"]


class ConfigError(ValueError):
    """Bad input: the message names the field and the rule."""


class Strict(BaseModel):
    """Base for every schema: unknown keys, NaN and infinity are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=False)


class Dist(Strict):
    """A duration distribution in days.

    ``dist`` is one of ``exponential`` (``mean``), ``lognormal`` (``mean`` + ``sd``, ``median`` +
    ``mean``, or ``mu`` + ``sigma`` of the underlying normal, as PathSimR's fits give them),
    ``gamma`` (``mean`` + ``sd``, or ``shape`` + ``scale``), ``weibull`` (``shape`` + ``scale``),
    ``fixed`` (``value``), ``empirical`` (``values`` or a one-column ``csv``). ``max`` caps every
    draw (a draw above it is set to it). ``zero_probability`` makes that share of draws
    exactly 0 (e.g. discharged the same hour as ready to leave), the rest from the distribution.

    Given whole on the command line (``'system.services.X.stay={dist: gamma, mean: 12, sd: 8}'``),
    a distribution replaces the old one rather than being merged into it (``cli.py``).
    """

    dist: Literal["exponential", "lognormal", "gamma", "weibull", "fixed", "empirical"]
    mean: Annotated[float, Field(gt=0.0, le=MAX_MEAN_DAYS)] | None = None
    sd: PositiveFloat | None = None
    median: Annotated[float, Field(gt=0.0, le=MAX_MEAN_DAYS)] | None = None
    shape: PositiveFloat | None = None
    scale: PositiveFloat | None = None
    mu: float | None = None
    sigma: PositiveFloat | None = None
    value: Annotated[float, Field(ge=0.0, le=MAX_MEAN_DAYS)] | None = None
    values: list[NonNegativeFloat] | None = None
    csv: str | None = None
    max: PositiveFloat | None = None
    zero_probability: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    source: str = ""

    @model_validator(mode="after")
    def _parameters(self) -> Dist:
        given = {
            k
            for k in (
                *("mean", "sd", "median", "shape", "scale", "mu", "sigma"),
                *("value", "values", "csv"),
            )
            if getattr(self, k) is not None
        }
        allowed = {
            "exponential": [{"mean"}],
            "lognormal": [{"mean", "sd"}, {"median", "mean"}, {"mu", "sigma"}],
            "gamma": [{"mean", "sd"}, {"shape", "scale"}],
            "weibull": [{"shape", "scale"}],
            "fixed": [{"value"}],
            "empirical": [{"values"}, {"csv"}],
        }[self.dist]
        if given not in allowed:
            options = " or ".join("+".join(sorted(a)) for a in allowed)
            raise ValueError(
                f"dist '{self.dist}' takes {options}; got {sorted(given) or 'nothing'}"
            )
        if self.dist == "lognormal" and self.median is not None and self.mean <= self.median:
            raise ValueError(
                "lognormal by median and mean needs mean > median (a right-skewed stay)"
            )
        if self.mu is not None and self.mu + self.sigma**2 / 2 > math.log(MAX_MEAN_DAYS):
            raise ValueError(
                f"lognormal mu {self.mu:g}, sigma {self.sigma:g}: the mean stay "
                f"exp(mu + sigma^2/2) is over {MAX_MEAN_DAYS:,} days; mu and sigma are of the "
                f"log of the stay in days"
            )
        if self.dist == "empirical" and self.values is not None and len(self.values) == 0:
            raise ValueError("empirical 'values' must not be empty")
        if self.csv is not None:
            self.values = read_values_csv(self.csv)
            self.csv = None
        return self


class CapacityStep(Strict):
    """From ``from_day`` on, the service has ``capacity`` places."""

    from_day: NonNegativeFloat
    capacity: Annotated[int, Field(ge=0, le=MAX_CAPACITY)]


class Wait(Strict):
    """How a wait (to enter a service, or a pathway's discharge process) is recorded: its reason
    in each national scheme (``reasons.py``) and the organisation responsible.

    ``reason``: the DTOC code, or none (a simple discharge's own processes had no DTOC code).
    ``nctr_reason``: the NCTR category, or categories with the shares of the wait's days counted
    under each (e.g. ``{medicines: 0.4, transport: 0.3, discharge_summary: 0.3}``); given none,
    the category the DTOC code maps to. At least one of the two must be given.
    """

    reason: Reason | None = None
    nctr_reason: str | dict[str, Annotated[float, Field(gt=0.0)]] | None = None
    responsible: Responsible

    @field_validator("nctr_reason")
    @classmethod
    def _known_categories(cls, v):
        for code in [v] if isinstance(v, str) else (v or {}):
            if code not in reasons.NCTR:
                raise ValueError(
                    f"unknown NCTR category {code!r} (known: {', '.join(reasons.NCTR)})"
                )
        return v

    @model_validator(mode="after")
    def _some_reason(self) -> Wait:
        if self.reason is None and self.nctr_reason is None:
            raise ValueError("give the wait's reason (DTOC code) or nctr_reason, or both")
        if isinstance(self.nctr_reason, dict):
            total = sum(self.nctr_reason.values())
            if not self.nctr_reason or abs(total - 1.0) > PROBABILITY_TOLERANCE:
                raise ValueError(f"nctr_reason: the shares must sum to 1 (they sum to {total:g})")
        return self

    @property
    def nctr(self) -> dict[str, float]:
        """The NCTR categories this wait's days count under, with their shares."""
        return reasons.nctr_shares(self.reason, self.nctr_reason)


class Service(Strict):
    """A care setting with finite places, a stay, and routing of what happens next.

    ``capacity`` is a whole number of places (at most ``MAX_CAPACITY``), a schedule of
    ``{from_day, capacity}`` steps, or ``unlimited`` (no one ever waits for a place; such a service
    has no capacity cost, and its daily capacity is shown as empty).

    A service's name is only its label (in tables, KPI and column names, figures); what it does
    is its ``role``.
    """

    role: Role | None = None
    """What the service is to the model and its KPIs (its name is only a label):

    - ``acute``: the hospital's beds (one service; one per acute trust in a system of several,
      each run by its trust: ``Arrival.acute`` says whose front door an admission comes to).
      Admissions queue at the front door for it; after treatment a patient leaves by a discharge
      pathway; time ready to leave in it is a delay. ``acute_occupancy_*``, ``nctr_mean``,
      ``delayed_*``, ``admissions``, ``discharges`` and ``readmissions`` are about these beds
      (all trusts together; each trust's own in ``org_<trust>_*``). A readmission returns to the
      trust that discharged the patient.
    - ``assessment``: the discharge assessment team (one shared, or one per acute trust, run by
      that trust), used by pathways with ``assessment: true``; it is not a place (the person
      keeps their bed meanwhile).
    - ``reablement``: short-term support at home (pathway 1). Someone discharged from acute care
      into a reablement service is checked 91 days later for ``home_at_91_days_rate``.
    - ``step_down``: bedded intermediate care (pathway 2): not at home.
    - ``home_care``: long-term care at home: at home.
    - ``care_home``: residential or nursing care home beds (pathway 3): not at home; entries
      after the warm-up are ``care_home_admissions``.
    - ``other``: any other place after acute care (e.g. a hospice): not at home.

    Every service but the acute and assessment ones is *downstream*: it needs a ``stay``, routing
    (``next``) and a ``wait`` code, and may be a pathway's or an arrival's destination. The role
    may be left out only by a service named after one (``acute``, ``assessment``,
    ``reablement``, ``step_down``, ``home_care``, ``care_home``), which then has that role."""
    capacity: int | Literal["unlimited"] | list[CapacityStep]
    stay: Dist | None = None
    stay_by_group: dict[str, Dist] = {}
    next: dict[str, Probability] = {}
    next_by_group: dict[str, dict[str, Probability]] = {}
    wait: Wait | None = None
    cost_per_occupied_day_gbp: NonNegativeFloat = 0.0
    cost_per_capacity_day_gbp: NonNegativeFloat = 0.0
    paid_by: Literal["nhs", "social_care"] = "nhs"
    organisation: str | None = None
    """The organisation that runs the service (a name in ``System.organisations``): its costs and
    places count in that organisation's breakdown."""
    start_occupancy: Annotated[int, Field(ge=0, le=MAX_CAPACITY)] = 0
    start_queue: Annotated[int, Field(ge=0, le=MAX_CAPACITY)] = 0
    open_days: Annotated[list[bool], Field(min_length=7, max_length=7)] = [True] * 7
    """Days of the week (Monday first) on which the service takes people in; people already in
    a place stay. E.g. no weekend discharges: ``[true, true, true, true, true, false, false]``."""
    when_full: str = "wait"
    """What happens to someone who finds the service full, at the moment they would start to wait
    for it (a community referral arriving; a patient ready to leave acute care, after the
    discharge process and any assessment, or after deconditioning changed where they need to go;
    a stay ending in a service whose routing leads here). "Full" means no place can be taken at
    that instant: every place is occupied, or the door is closed that day (``open_days``).

    - ``wait`` (the default): they keep their current place (or wait at home, for a referral) in
      the service's first-come-first-served line until a place is free (blocking after service).
    - ``lost``: they leave the modelled system at once (a stay they were in ends with outcome
      ``lost``; no readmission follows), counted as lost to this service. A loss system: with
      Poisson arrivals and c places it is Erlang's M/G/c/c, whose blocking is B(c, a).
    - ``home``: they go home at once instead (readmission as for anyone going home).
    - the name of another downstream service: they go there instead, and that service's own
      ``when_full`` rule applies if it is full too.

    A service with a rule other than ``wait`` never has a line: anyone who cannot have a place at
    once goes elsewhere. Only for services after acute care (not ``acute`` or ``assessment``);
    no ``start_queue``; overflow targets may not form a cycle."""
    source: str = ""

    @field_validator("capacity", mode="before")
    @classmethod
    def _places(cls, value: Any) -> Any:
        """One plain message for a capacity that is no whole number of places in range."""
        if isinstance(value, list | dict) or value == "unlimited":
            return value
        rule = f"a whole number of places from 1 to {MAX_CAPACITY:,}, a schedule, or 'unlimited'"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be {rule}")
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number: {rule}")
        if value <= 0:
            raise ValueError(f"Input should be greater than 0: {rule}")
        if value != int(value) or value > MAX_CAPACITY:
            raise ValueError(f"must be {rule}")
        return int(value)

    @model_validator(mode="after")
    def _schedule(self) -> Service:
        if not any(self.open_days):
            raise ValueError("open_days: the service must take people in on at least one day")
        if self.unlimited and self.cost_per_capacity_day_gbp > 0:
            raise ValueError(
                "cost_per_capacity_day_gbp: an unlimited service has no capacity to pay for "
                "(cost it per occupied day)"
            )
        if isinstance(self.capacity, list):
            if not self.capacity:
                raise ValueError("capacity schedule must not be empty")
            if self.capacity[0].from_day != 0:
                raise ValueError("capacity schedule must start at from_day 0")
            days = [s.from_day for s in self.capacity]
            if any(b <= a for a, b in zip(days, days[1:])):
                raise ValueError("capacity schedule from_day values must increase")
        return self

    @property
    def unlimited(self) -> bool:
        return self.capacity == "unlimited"

    def capacity_steps(self) -> list[tuple[float, int]]:
        """The capacity as ``[(from_day, capacity), ...]`` starting at day 0 (``UNLIMITED`` places
        for an unlimited service)."""
        if isinstance(self.capacity, list):
            return [(s.from_day, s.capacity) for s in self.capacity]
        return [(0.0, UNLIMITED if self.unlimited else int(self.capacity))]

    def stay_for(self, group: str) -> Dist:
        return self.stay_by_group.get(group, self.stay)

    def next_for(self, group: str) -> dict[str, float]:
        return self.next_by_group.get(group, self.next)


class Pathway(Strict):
    """A discharge pathway: where it leads, the discharge process, and readmission risk."""

    to: str
    to_by_group: dict[str, str] = {}
    process: Dist
    process_wait: Wait
    assessment: bool = False
    discharge_to_assess: bool = False
    readmission_30d_probability: Probability = 0.0
    source: str = ""

    def to_for(self, group: str) -> str:
        return self.to_by_group.get(group, self.to)


class Discharge(Strict):
    """How patients leave acute care: pathway need by group, deaths, readmissions."""

    pathways: dict[PathwayName, Pathway]
    pathway_shares_by_group: dict[str, dict[PathwayName, Probability]]
    death_in_hospital_probability_by_group: dict[str, Probability] = {}
    readmission_delay: Dist = Dist(dist="exponential", mean=10.0, max=30.0)
    source: str = ""


class Deconditioning(Strict):
    """Per-day probability that a delayed patient's need escalates (P1 -> P2 -> P3).

    Applies to time spent ready to leave an acute bed. The rate is an explicit, uncertain
    assumption.
    """

    enabled: bool = True
    probability_per_day: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01
    source: str = ""


class Arrival(Strict):
    """A non-stationary Poisson arrival stream.

    ``to`` is ``front_door`` (an admission: waits for an acute bed), ``ready_to_leave`` (a patient
    already in an acute bed with no criteria to reside, on ``pathway``), or a service name (a
    community referral, waiting at home). The rate on a day is ``rate_per_day x day_of_week[weekday]
    x month[month]``, or read from ``rates_csv`` (columns ``date,rate_per_day``). ``treatment`` and
    ``pathway_shares`` replace the acute stay and the pathway shares for this stream (e.g.
    electives).
    """

    to: str
    acute: str | None = None
    """The acute service (the trust) an admission or a ready-to-leave arrival goes to: needed
    when the system has several acute trusts (each trust's arrivals are their own streams, their
    ``group_shares`` the localities and ages of that trust's patients)."""
    elective: bool = False
    pathway: PathwayName | None = None
    rate_per_day: PositiveFloat | None = None
    day_of_week: Annotated[list[NonNegativeFloat], Field(min_length=7, max_length=7)] = [1.0] * 7
    month: Annotated[list[NonNegativeFloat], Field(min_length=12, max_length=12)] = [1.0] * 12
    rates_csv: str | None = None
    group_shares: dict[str, Probability]
    treatment: Dist | None = None
    pathway_shares: dict[PathwayName, Probability] | None = None
    source: str = ""

    @model_validator(mode="after")
    def _rate(self) -> Arrival:
        if (self.rate_per_day is None) == (self.rates_csv is None):
            raise ValueError("give exactly one of rate_per_day or rates_csv")
        if self.to == "ready_to_leave" and self.pathway is None:
            raise ValueError("an arrival to 'ready_to_leave' needs a pathway")
        if self.rate_per_day is not None and max(self.day_of_week) == 0:
            raise ValueError("day_of_week factors are all zero")
        if self.rate_per_day is not None and max(self.month) == 0:
            raise ValueError("month factors are all zero")
        return self


class Organisation(Strict):
    """One organisation of a local system: an acute ``trust`` (runs the acute service), or a
    ``council`` (a locality: its ``groups`` are the patient groups who live there and use its
    services). A system of several organisations reports every organisation's share of the
    KPIs, delays and costs (``results.organisations``)."""

    kind: Literal["trust", "council"]
    label: str = ""
    groups: list[str] = []
    source: str = ""


class System(Strict):
    """A local health and care system: groups, arrivals, services, discharge and deconditioning."""

    name: str
    description: str = ""
    population: Annotated[int, Field(gt=0)] | None = None
    price_year: str = ""
    start_date: dt.date = dt.date(2025, 4, 1)
    groups: Annotated[list[str], Field(min_length=1)]
    arrivals: Annotated[dict[str, Arrival], Field(min_length=1)]
    services: dict[str, Service]
    discharge: Discharge
    deconditioning: Deconditioning = Deconditioning()
    organisations: dict[str, Organisation] = {}
    """The trusts and councils of the system, by short name (none: one system, no breakdown)."""
    reason_scheme: Literal[reasons.SCHEMES] = "nctr"
    """The delay reasons the printout, report and workbook lead with: ``nctr`` (today's national
    categories) or ``dtoc`` (the codes of 2010-2020); both are always in the tables."""
    nctr_census_time: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "23:59"
    """The time of day ("HH:MM") at which people ready to leave acute beds are counted each day
    (``nctr_census_mean``): the acute discharge sitrep's snapshot [U], or a local board round."""

    @model_validator(mode="after")
    def _network(self) -> System:
        check_network(self)
        return self

    def by_role(self, *roles: str) -> list[str]:
        """The names of the services with any of these roles, in the system's order."""
        return [s for s, svc in self.services.items() if svc.role in roles]

    @property
    def acute(self) -> str:
        """The name of the first acute-role service (the only one, unless the system has several
        acute trusts: ``acutes``)."""
        return self.by_role("acute")[0]

    @property
    def acutes(self) -> list[str]:
        """The names of the acute-role services (one per acute trust), in the system's order."""
        return self.by_role("acute")

    @property
    def assessment(self) -> str | None:
        """The name of the first assessment-role service, or None."""
        return next(iter(self.by_role("assessment")), None)

    def assessment_for(self, acute: str) -> str | None:
        """The assessment service of an acute trust's patients: the one service, or, with one per
        trust, the one run by the acute service's organisation."""
        found = self.by_role("assessment")
        if len(found) <= 1:
            return next(iter(found), None)
        org = self.services[acute].organisation
        return next((s for s in found if self.services[s].organisation == org), None)

    def acute_of(self, arrival: Arrival) -> str:
        """The acute service an admission or ready-to-leave arrival goes to."""
        return arrival.acute or self.acute

    def councils(self) -> dict[str, list[str]]:
        """Each council's patient groups (its residents), by name."""
        return {n: o.groups for n, o in self.organisations.items() if o.kind == "council"}

    def downstream(self) -> list[str]:
        """Services after acute care: every service but the acute and assessment ones."""
        return [s for s, svc in self.services.items() if svc.role not in ("acute", "assessment")]


class Investment(Strict):
    """A change to one numeric parameter (``lever``, a dotted path in the system).

    Exactly one of ``add`` (units, e.g. places), ``budget_gbp`` (turned into whole units through
    ``cost_gbp_per_unit_year`` over the funded days) or ``multiply``. Days count from the end of
    the warm-up. Cost: units x days x ``cost_gbp_per_unit_year`` / 365, plus ``cost_gbp_per_year``
    x days / 365, charged to ``funder``. What it buys over which simulation days is resolved by
    ``investments.resolve``.
    """

    lever: str
    add: float | None = None
    budget_gbp: NonNegativeFloat | None = None
    multiply: PositiveFloat | None = None
    start_day: NonNegativeFloat = 0.0
    end_day: PositiveFloat | None = None
    funder: str = "ibcf"
    cost_gbp_per_unit_year: NonNegativeFloat = 0.0
    cost_gbp_per_year: NonNegativeFloat = 0.0
    price_year: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _one_change(self) -> Investment:
        given = [k for k in ("add", "budget_gbp", "multiply") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of add, budget_gbp or multiply (got {given})")
        if self.end_day is not None and self.end_day <= self.start_day:
            raise ValueError("end_day: must be after start_day")
        return self


class Scenario(Strict):
    """What a what-if changes; the baseline changes nothing.

    ``changes`` sets system parameters for the whole run (dotted path -> value);
    ``investments`` are funded, costed changes; ``measured_days`` asks for a measured window of
    that length (e.g. two years to see what happens after funding stops).
    """

    name: str = "baseline"
    description: str = "The system as configured, no investment."
    changes: dict[str, Any] = {}
    investments: list[Investment] = []
    measured_days: PositiveFloat | None = None


class Run(Strict):
    """How to run: seed, replications, horizon (including warm-up), warm-up, workers, logging,
    the engine (``simpy``, or ``compiled``: the same model as a Numba event loop, several times
    faster, with identical results), and the summit pack (``report``; ``figures``: PNG/SVG images
    through a browser)."""

    seed: Annotated[int, Field(ge=0, lt=2**63)] = 2026
    replications: Annotated[int, Field(gt=0, le=MAX_COUNT)] = 20
    horizon_days: Annotated[float, Field(gt=0.0, le=MAX_HORIZON_DAYS)] = 545.0
    warmup_days: NonNegativeFloat = 180.0
    jobs: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 2
    patient_log: bool = False
    progress: bool = True
    engine: Literal["simpy", "compiled"] = "simpy"
    report: bool = True
    figures: bool = True
    allow_large: bool = False
    """Run even past the work and memory limits of ``runner.check_size`` (never past the
    machine's memory)."""

    @model_validator(mode="after")
    def _window(self) -> Run:
        if self.warmup_days >= self.horizon_days:
            raise ValueError(
                f"warmup_days: must be shorter than horizon_days ({self.warmup_days:g} >= "
                f"{self.horizon_days:g}); KPIs are measured after the warm-up"
            )
        return self


class CapacitySweep(Strict):
    """Cost against capacity for one service (``flowsim appraise.capacity_sweep.service=...``)."""

    service: str | None = None
    capacities: list[Annotated[int, Field(gt=0, le=MAX_CAPACITY)]] = []
    capacity_cost_per_day_gbp: NonNegativeFloat | None = None
    delay_cost_per_day_gbp: NonNegativeFloat = 395.0
    delay_kpi: str = "delayed_bed_days"
    target_kpi: str | None = None
    target: float | None = None
    confidence: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95


class LeverOption(Strict):
    """A capacity the allocator may buy, in steps of ``step`` units up to ``max_units``."""

    service: str
    unit_cost_gbp_per_year: PositiveFloat
    max_units: Annotated[int, Field(gt=0, le=MAX_CAPACITY)]
    step: Annotated[int, Field(gt=0, le=MAX_CAPACITY)] = 1


class Allocate(Strict):
    """Find the mix of levers that minimises ``objective`` spending at most ``budget_gbp`` over
    the measured window."""

    budget_gbp: NonNegativeFloat = 0.0
    objective: str = "delayed_bed_days"
    levers: list[LeverOption] = []
    method: Literal["auto", "grid", "optuna"] = "auto"
    trials: Annotated[int, Field(gt=0, le=MAX_COUNT)] = 40


class Appraise(Strict):
    """Appraisals beyond a single what-if; when any is set, the command runs it instead."""

    capacity_sweep: CapacitySweep = CapacitySweep()
    bottleneck_units: Annotated[int, Field(ge=0, le=MAX_CAPACITY)] = 0
    allocate: Allocate = Allocate()


class Config(Strict):
    """Everything one invocation needs."""

    system: System
    scenario: Scenario = Scenario()
    run: Run = Run()
    compare: list[str] = []
    """More scenarios (names in scenarios/) to compare with the baseline in the same command."""
    appraise: Appraise = Appraise()

    @model_validator(mode="after")
    def _appraisal_services(self) -> Config:
        a = self.appraise
        named = [("capacity_sweep.service", a.capacity_sweep.service)] + [
            (f"allocate.levers.{k}.service", lv.service) for k, lv in enumerate(a.allocate.levers)
        ]
        for where, service in named:
            if service is not None and service not in self.system.services:
                raise ValueError(f"appraise.{where}: unknown service {service!r}")
        for where, service in named:
            if service is not None and self.system.services[service].unlimited:
                raise ValueError(f"appraise.{where}: {service} has unlimited capacity")
        sweep = a.capacity_sweep
        if sweep.service is not None and not sweep.capacities:
            raise ValueError("appraise.capacity_sweep.capacities: list the capacities to try")
        if sweep.service is not None:
            services = self.system.services
            least = services[sweep.service].start_occupancy
            acute = sweep.service == self.system.acute
            if acute:
                least += sum(s.start_queue for s in services.values())
            low = [c for c in sweep.capacities if c < least]
            if low:
                raise ValueError(
                    f"appraise.capacity_sweep.capacities: {low[0]} places cannot hold the "
                    f"{least} people {sweep.service} starts with (services.{sweep.service}."
                    f"start_occupancy{' plus start_queue' if acute else ''}); "
                    f"sweep capacities of at least {least}"
                )
        return self

    @model_validator(mode="after")
    def _rates_cover_horizon(self) -> Config:
        for name, arrival in self.system.arrivals.items():
            if arrival.rates_csv is not None:
                field = f"system.arrivals.{name}.rates_csv"
                try:
                    rates = read_rates_csv(arrival.rates_csv)
                except ValueError as err:
                    raise ValueError(f"{field}: {err}") from None
                start = self.system.start_date
                days = (
                    start + dt.timedelta(days=k) for k in range(math.ceil(self.run.horizon_days))
                )
                missing = next((d for d in days if d not in rates), None)
                if missing is not None:
                    raise ValueError(
                        f"{field}: {arrival.rates_csv} has no rate for {missing}; it must cover "
                        f"every day from start_date ({start}) for horizon_days"
                    )
        return self


# ----------------------------------------------------------------------------------------------
# files


def resolve_path(path: str) -> Path:
    """A data file path: absolute, relative to the working directory, or to the project root.

    The project root is ``$FLOWSIM_ROOT`` when set, else the folder above ``configs/``.
    """
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    root = Path(os.environ.get("FLOWSIM_ROOT", Path(__file__).resolve().parent.parent))
    return root / p


def yaml_problem(err: yaml.MarkedYAMLError, name: str) -> str:
    """A YAML syntax error in one line: the file, the line and column, and what is wrong."""
    mark = err.problem_mark
    what = "; ".join(x for x in (err.context, err.problem) if x)
    return f"{name}, line {mark.line + 1}, column {mark.column + 1}: YAML syntax error ({what})"


def read_yaml(path: str | Path) -> Any:
    """A YAML file's data; ``ConfigError`` naming the file (and line and column) if it cannot be
    read or parsed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        if err.problem_mark is None:
            raise ConfigError(f"{path}: YAML syntax error ({err.problem})") from None
        raise ConfigError(yaml_problem(err, str(path))) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: YAML syntax error ({err})") from None


def _open_csv(path: str):
    p = resolve_path(path)
    if not p.is_file():
        raise ValueError(f"file not found: {path}")
    return p.open(newline="", encoding="utf-8-sig")  # utf-8-sig drops a BOM


def read_values_csv(path: str) -> list[float]:
    """Observed durations (days) from a CSV: one column, an optional header line."""
    values: list[float] = []
    with _open_csv(path) as fh:
        for i, row in enumerate(csv.reader(fh), start=1):
            if not row or not row[0].strip():
                continue
            try:
                v = float(row[0].replace(",", ""))
            except ValueError:
                if i == 1:
                    continue  # a header
                raise ValueError(f"{path} line {i}: {row[0]!r} is not a number") from None
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{path} line {i}: {row[0]!r} must be a finite number >= 0")
            values.append(v)
    if not values:
        raise ValueError(f"{path}: no values")
    return values


def read_rates_csv(path: str) -> dict[dt.date, float]:
    """Dated arrival rates: columns ``date`` (YYYY-MM-DD) and ``rate_per_day``."""
    rates: dict[dt.date, float] = {}
    with _open_csv(path) as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or {"date", "rate_per_day"} - {
            f.strip() for f in reader.fieldnames
        }:
            raise ValueError(
                f"{path}: needs columns 'date' and 'rate_per_day' (found {reader.fieldnames})"
            )
        for i, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            try:
                day = dt.date.fromisoformat(row["date"])
            except ValueError:
                raise ValueError(
                    f"{path} line {i}: date {row['date']!r} is not YYYY-MM-DD"
                ) from None
            try:
                rate = float(row["rate_per_day"])
            except ValueError:
                raise ValueError(
                    f"{path} line {i}: rate_per_day {row['rate_per_day']!r} is not a number"
                ) from None
            if not math.isfinite(rate) or rate < 0:
                raise ValueError(f"{path} line {i}: rate_per_day must be a finite number >= 0")
            if day in rates:
                raise ValueError(f"{path} line {i}: date {day} appears twice")
            rates[day] = rate
    if not rates:
        raise ValueError(f"{path}: no rows")
    return rates


# ----------------------------------------------------------------------------------------------
# entry point


def _format_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(
            str(p) for p in e["loc"] if not str(p).startswith(("function-after", "constrained"))
        )
        # pydantic adds union-branch names to loc (e.g. 'int', 'list[CapacityStep]'); drop them
        parts = [p for p in loc.split(".") if p and "[" not in p and p not in ("int", "float")]
        where = ".".join(parts)
        msg = e["msg"].removeprefix("Value error, ")
        inner = re.match(r"^([A-Za-z_][\w.]*): ", msg)
        if inner and where:  # a cross-field rule names its own sub-field
            where, msg = f"{where}.{inner.group(1)}", msg[inner.end() :]
        got = e.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        lines.append(f"{where}: {msg}{shown}" if where else f"{msg}{shown}")
    # a union (integer, 'unlimited' or schedule) reports each branch: drop a branch's type
    # mismatch when the same field, or a field inside it, has another message; keep each line once
    fields = [ln.split(":")[0] for ln in lines]
    branch = (
        "Input should be a valid list",
        "Input should be a valid integer",
        "Input should be '",
    )

    def other(k: int) -> bool:
        return any(
            j != k
            and (g == fields[k] or g.startswith(fields[k] + "."))
            and not any(b in lines[j] for b in branch)
            for j, g in enumerate(fields)
        )

    lines = [ln for k, ln in enumerate(lines) if not (any(b in ln for b in branch) and other(k))]
    return "\n".join(dict.fromkeys(lines))


def validate(raw: dict[str, Any]) -> Config:
    """Check a plain-dict config; raise ``ConfigError`` naming the field and the rule."""
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None
