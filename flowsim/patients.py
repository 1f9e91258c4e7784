"""Patients' attributes, drawn at arrival from their own named streams.

Every attribute of a patient (group, pathway need, treatment stay, onward stays and routes) is a
function of uniforms from a stream named after the arrival stream and the attribute, indexed by the
patient's place in that arrival stream. A capacity change therefore never changes which random
numbers a patient receives: common random numbers across scenarios.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np

from flowsim import distributions, kernels
from flowsim.config import PATHWAYS, REASONS, Arrival, System, Wait, read_rates_csv
from flowsim.reasons import NCTR
from flowsim.streams import Streams

ACUTE_DOORS = ("front_door", "ready_to_leave")
"""An arrival's ``to`` that is an admission to an acute trust (``Arrival.acute``)."""
HOME, DEATH = -1, -2
"""Place codes for leaving the system (services are coded 0, 1, ... in ``Layout.services``)."""
READMIT = -3
"""Outcome code: the stay ended because the patient was readmitted to hospital."""
OPEN = -4
"""Outcome code: still there at the end of the horizon."""
FRONT_DOOR = -5
"""Place code: waiting for an acute bed (boarding)."""
COMMUNITY = -6
"""Place code: waiting at home (a community referral)."""
PROCESS = -7
"""What a wait is for: the discharge process (medicines, transport, arranging support)."""
LOST = -8
"""Outcome code: turned away by a full service whose ``when_full`` is ``lost``; out of the model."""


@dataclass
class Layout:
    """Integer codes for services, groups and pathways, shared by the model and the results.

    The acute services (one per acute trust; usually one) are codes 0 .. ``n_acute`` - 1, the
    assessment teams (if any) next, then the downstream services in the order the system lists
    them. ``roles[code]`` is each service's role (``config.Service.role``): what a service does
    is read from its role, never its name."""

    services: list[str]
    groups: list[str]
    downstream: list[str]
    roles: list[str]
    waits: list[Wait] = field(default_factory=list)
    """How each kind of wait is recorded (``config.Wait``): the pathways' discharge processes in
    pathway order, then the waits to enter services in code order. A wait record's ``reason`` is
    its index here; ``dtoc`` and ``nctr`` read the schemes' codes from it."""

    assess_of: list[int] = field(default_factory=list)
    """The code of each acute service's assessment team (by acute code), or -1."""

    @classmethod
    def of(cls, system: System) -> Layout:
        head = system.acutes + system.by_role("assessment")
        services = head + system.downstream()
        roles = [system.services[s].role for s in services]
        waits = [system.discharge.pathways[p].process_wait for p in PATHWAYS
                 if p in system.discharge.pathways]  # fmt: skip
        waits += [system.services[s].wait for s in services if system.services[s].wait]
        assess_of = [services.index(t) if (t := system.assessment_for(a)) else -1
                     for a in system.acutes]  # fmt: skip
        return cls(services, list(system.groups), system.downstream(), roles, waits, assess_of)

    @property
    def n_acute(self) -> int:
        """The number of acute services (codes 0 .. n_acute - 1)."""
        return self.roles.count("acute")

    @property
    def n_keys(self) -> int:
        """Readmission keys: a group at an acute trust (``group + groups x acute code``)."""
        return len(self.groups) * self.n_acute

    def is_acute(self, codes: np.ndarray) -> np.ndarray:
        """Whether each place code is an acute service."""
        return (codes >= 0) & (codes < self.n_acute)

    def wait_kind(self, wait: Wait) -> int:
        """The code of a wait's kind (its index in ``waits``)."""
        return next(k for k, w in enumerate(self.waits) if w == wait)

    def dtoc(self) -> np.ndarray:
        """Each kind's DTOC code (an index of ``config.REASONS``; -1: no DTOC code)."""
        return np.array(
            [REASONS.index(w.reason) if w.reason else -1 for w in self.waits], dtype=np.int64
        )

    def nctr(self) -> np.ndarray:
        """Each kind's shares of its days over the NCTR categories (``reasons.NCTR`` order)."""
        out = np.zeros((len(self.waits), len(NCTR)))
        for k, w in enumerate(self.waits):
            for code, share in w.nctr.items():
                out[k, list(NCTR).index(code)] = share
        return out

    def codes(self, *roles: str) -> np.ndarray:
        """The codes of the services with any of these roles."""
        return np.array([c for c, r in enumerate(self.roles) if r in roles], dtype=np.int64)

    @property
    def assessment(self) -> int:
        """The (first) assessment service's code, or -1."""
        return self.roles.index("assessment") if "assessment" in self.roles else -1

    def assessments(self) -> np.ndarray:
        """The codes of the assessment teams."""
        return self.codes("assessment")

    def code(self, place: str) -> int:
        if place == "home":
            return HOME
        if place == "death":
            return DEATH
        if place == "lost":
            return LOST
        return self.services.index(place)


@dataclass
class Cohort:
    """Columns of pre-drawn attributes for ``n`` patients (one row each)."""

    time: np.ndarray
    group: np.ndarray
    pathway: np.ndarray
    treatment: np.ndarray
    dies: np.ndarray
    process: np.ndarray
    assess: np.ndarray
    decondition: np.ndarray  # (n, 2): days from ready-to-leave to each escalation
    u_readmit: np.ndarray
    readmit_delay: np.ndarray
    acute: np.ndarray
    """The code of the acute service (trust) the patient is admitted to."""
    rkey: np.ndarray
    """The patient's readmission key: their group at their trust (``Layout.n_keys``)."""
    stay: dict[int, np.ndarray] = field(default_factory=dict)
    route: dict[int, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.time)


def rates_by_day(arrival: Arrival, start_date: dt.date, n_days: int) -> np.ndarray:
    """The arrival rate (per day) on each simulated day from ``start_date``."""
    if arrival.rates_csv is not None:
        table = read_rates_csv(arrival.rates_csv)
        return np.array([table[start_date + dt.timedelta(days=d)] for d in range(n_days)])
    days = np.datetime64(start_date, "D") + np.arange(n_days)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    month = days.astype("datetime64[M]").astype(np.int64) % 12
    dow = np.asarray(arrival.day_of_week, dtype=np.float64)
    by_month = np.asarray(arrival.month, dtype=np.float64)
    return arrival.rate_per_day * dow[weekday] * by_month[month]


def draw(
    system: System,
    layout: Layout,
    streams: Streams,
    name: str,
    time: np.ndarray,
    group_shares: dict[str, float] | None = None,
    group: np.ndarray | None = None,
    pathway: str | None = None,
    arrival: Arrival | None = None,
    start: int = 0,
    acute: int = 0,
) -> Cohort:
    """Attributes for patients of the stream ``name`` arriving at ``time``: its rows ``start``
    onwards (a block of a longer cohort, with the same numbers as drawing it whole), admitted to
    acute service ``acute`` (a code; their trust).

    The group comes from ``group`` or is drawn from ``group_shares``; the pathway is ``pathway`` or
    drawn from the group's pathway shares.
    """
    n = len(time)
    u = lambda attr: streams.uniforms(f"{name}.{attr}", n, start)  # noqa: E731
    # A draw that cannot change anything (one possible group, no deaths, no readmissions, fixed
    # process times, one next place) is skipped: streams are named, so skipping one moves no other.
    if group is None:
        shares = np.array([[group_shares.get(g, 0.0) for g in layout.groups]])
        if np.count_nonzero(shares) == 1:
            group = np.full(n, int(np.argmax(shares)), dtype=np.int64)
        else:
            group = kernels.categorical(u("group"), np.zeros(n, np.int64), shares)
    group = np.asarray(group, dtype=np.int64)
    d = system.discharge
    if pathway is None:
        own = arrival.pathway_shares if arrival is not None else None
        table = np.array(
            [
                [(own or d.pathway_shares_by_group[g]).get(p, 0.0) for p in PATHWAYS]
                for g in layout.groups
            ]
        )
        path = kernels.categorical(u("pathway"), group, table)
    else:
        path = np.full(n, PATHWAYS.index(pathway), dtype=np.int64)

    acute_name = layout.services[acute]
    if arrival is not None and arrival.treatment is not None:
        treatment = distributions.ppf(arrival.treatment, u("treatment"))
    else:
        treatment = _by_group(u("treatment"), group, layout, system.services[acute_name].stay_for)
    death_p = np.array(
        [d.death_in_hospital_probability_by_group.get(g, 0.0) for g in layout.groups]
    )
    dies = u("death") < death_p[group] if death_p.any() else np.zeros(n, dtype=np.bool_)
    process = np.zeros(n)
    fixed = all(pw.process.dist == "fixed" and pw.process.zero_probability == 0
                for pw in d.pathways.values())  # fmt: skip
    u_process = np.zeros(n) if fixed else u("process")
    for k, p in enumerate(PATHWAYS):
        mask = path == k
        if p in d.pathways and mask.any():
            process[mask] = distributions.ppf(d.pathways[p].process, u_process[mask])
    team = system.assessment_for(acute_name)
    if team is not None:  # the stream keeps the name "assessment" (common numbers)
        assess = _by_group(u("assessment"), group, layout, system.services[team].stay_for)
    else:
        assess = np.zeros(n)
    decon = system.deconditioning
    if decon.enabled and decon.probability_per_day > 0:
        rate = -math.log1p(-decon.probability_per_day)
        decondition = -np.log1p(-streams.uniforms(f"{name}.decondition", (n, 2), start)) / rate
    else:
        decondition = np.full((n, 2), np.inf)
    readmits = any(pw.readmission_30d_probability > 0 for pw in d.pathways.values())
    cohort = Cohort(
        time=np.asarray(time, dtype=np.float64),
        group=group,
        pathway=path,
        treatment=treatment,
        dies=dies,
        process=process,
        assess=assess,
        decondition=decondition,
        u_readmit=u("readmit") if readmits else np.ones(n),
        readmit_delay=(
            distributions.ppf(d.readmission_delay, u("readmit_delay")) if readmits else np.zeros(n)
        ),
        acute=np.full(n, acute, dtype=np.int64),
        rkey=group + len(layout.groups) * acute,
    )
    for s in layout.downstream:
        code = layout.code(s)
        svc = system.services[s]
        cohort.stay[code] = _by_group(u(f"{s}.stay"), group, layout, svc.stay_for)
        targets = sorted(
            {t for g in layout.groups for t in svc.next_for(g)},
            key=lambda t: _route_order(t, system),
        )
        table = np.array([[svc.next_for(g).get(t, 0.0) for t in targets] for g in layout.groups])
        codes = np.array([layout.code(t) for t in targets], dtype=np.int64)
        if np.all(np.count_nonzero(table, axis=1) == 1):  # one next place per group: no draw
            cohort.route[code] = codes[np.argmax(table, axis=1)][group]
        else:
            cohort.route[code] = codes[kernels.categorical(u(f"{s}.route"), group, table)]
    return cohort


def _route_order(target: str, system: System) -> tuple[str, str]:
    """The order of a routing table's targets for its draw: a service by its role, then its name;
    ``home`` or ``death`` by that word. So a uniform picks the same target whatever the services
    are called (with roles named as the services of the default system, this is the order of
    their names)."""
    svc = system.services.get(target)
    return (svc.role if svc is not None else target, target)


def _by_group(u: np.ndarray, group: np.ndarray, layout: Layout, dist_for) -> np.ndarray:
    out = np.empty(len(u))
    for k, g in enumerate(layout.groups):
        mask = group == k
        if mask.any():
            out[mask] = distributions.ppf(dist_for(g), u[mask])
    return out


def arrival_times(system: System, streams: Streams, horizon_days: float) -> list[np.ndarray]:
    """Arrival times over the horizon of each arrival stream (in ``system.arrivals`` order)."""
    n_days = math.ceil(horizon_days)
    out = []
    for name, arrival in system.arrivals.items():
        rates = rates_by_day(arrival, system.start_date, n_days)
        times = kernels.arrival_times(rates, streams.generator(f"arrivals.{name}.times"))
        out.append(times[times < horizon_days])
    return out


def arrival_cohort(
    system: System, layout: Layout, streams: Streams, name: str, times: np.ndarray, start: int = 0
) -> Cohort:
    """Attributes of the arrivals of stream ``name`` at ``times``, its rows ``start`` onwards."""
    arrival = system.arrivals[name]
    return draw(
        system,
        layout,
        streams,
        f"arrivals.{name}",
        times,
        group_shares=arrival.group_shares,
        pathway=arrival.pathway,
        arrival=arrival,
        start=start,
        acute=layout.code(system.acute_of(arrival)) if arrival.to in ACUTE_DOORS else 0,
    )


def arrivals(
    system: System, layout: Layout, streams: Streams, horizon_days: float
) -> list[tuple[str, Cohort]]:
    """Every arrival stream's patients over the horizon, each from its own streams."""
    return [
        (name, arrival_cohort(system, layout, streams, name, times))
        for name, times in zip(system.arrivals, arrival_times(system, streams, horizon_days))
    ]


def group_mix(system: System, layout: Layout) -> np.ndarray:
    """The rate-weighted share of each group across arrival streams (for people already in care at
    the start, whose group is not otherwise known)."""
    w = np.zeros(len(layout.groups))
    for arrival in system.arrivals.values():
        rate = (
            arrival.rate_per_day
            if arrival.rate_per_day is not None
            else float(np.mean(list(read_rates_csv(arrival.rates_csv).values())))
        )
        for g, share in arrival.group_shares.items():
            w[layout.groups.index(g)] += rate * share
    return w / w.sum()
