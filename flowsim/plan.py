"""What one replication starts from, whichever engine runs it: the system as integer-coded tables,
the people in care at day 0, and every arrival in time order, all drawn from the named streams.

Both engines (``model.py``, SimPy; ``compiled.py``, a Numba event loop) read a ``Plan``, so they
see the same patients with the same random numbers: their trajectories can be compared directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from flowsim import distributions, patients
from flowsim.config import PATHWAYS, RESPONSIBLE, System
from flowsim.patients import HOME, Cohort, Layout
from flowsim.streams import Streams

WAIT = -9
"""``Plan.when_full`` code of a service whose line people join when it is full."""
READMISSION_BLOCK = 512
"""Readmissions of a group (at a trust: a readmission key, ``Layout.n_keys``) draw their
attributes in blocks of this many rows (row k of a key's readmission streams always goes to its
k-th readmission)."""


@dataclass
class Start:
    """People in care at day 0 in one service: ``what`` is ``"occupancy"`` (in a place there) or
    ``"queue"`` (in an acute bed, ready to leave, waiting for a place there)."""

    code: int
    what: str
    cohort: Cohort


@dataclass
class Arrivals:
    """Every arrival stream's arrival times, merged in time order; their attributes are drawn
    when asked for, a block of rows at a time (``cohort``) or all at once (``cohorts``).

    ``kinds[s]`` is ``"front_door"``, ``"ready_to_leave"`` or the service code a community
    referral goes to; the k-th arrival in time order is row ``index[k]`` of stream ``stream[k]``.
    """

    kinds: list
    names: list[str]
    by_stream: list[np.ndarray]
    """Each stream's arrival times."""
    times: np.ndarray
    stream: np.ndarray
    index: np.ndarray
    source: tuple
    """(system, layout, streams) to draw attributes from."""

    def cohort(self, s: int, start: int = 0, n: int | None = None) -> Cohort:
        """Attributes of rows ``start .. start + n`` of stream ``s`` (the same numbers as drawing
        the stream whole)."""
        times = self.by_stream[s][start : None if n is None else start + n]
        return patients.arrival_cohort(*self.source, self.names[s], times, start)

    @cached_property
    def cohorts(self) -> list[Cohort]:
        """Every stream's attributes, whole."""
        return [self.cohort(s) for s in range(len(self.names))]


@dataclass
class Plan:
    """The engine-neutral set-up of one replication (see the module docstring)."""

    system: System
    streams: Streams
    horizon: float
    layout: Layout
    capacity_steps: list[list[tuple[float, int]]]
    open_days: list[list[bool]]
    to: list[list[int]]
    """``to[p][g]``: the service code (or ``HOME``) pathway ``p`` leads to for group ``g``."""
    proc_wait: list[tuple[int, int]]
    """(reason, responsible) codes of each pathway's discharge process (reason: the kind of wait,
    ``Layout.waits``)."""
    needs_assessment: list[bool]
    d2a: list[bool]
    readmit_p: list[float]
    wait_code: list[tuple[int, int]]
    """(reason, responsible) codes of a wait to enter each service (-1, -1 if none; reason: the
    kind of wait, ``Layout.waits``)."""
    when_full: list[int]
    """Where someone goes who finds each service full: ``WAIT`` (its line), ``LOST``, ``HOME``,
    or another service's code (``config.Service.when_full``)."""
    assess_of: list[int]
    """Each acute service's assessment team (by acute code), or -1."""
    escalate: bool
    """Deconditioning is on: a delayed patient's pathway may escalate (P1 -> P2 -> P3)."""
    starts: list[Start]
    arrivals: Arrivals

    @property
    def n_initial(self) -> int:
        """People in care at day 0: episodes numbered below this are not admissions."""
        return sum(len(s.cohort) for s in self.starts)

    def readmission_block(self, key: int, block: int) -> Cohort:
        """Attributes for readmissions ``block * READMISSION_BLOCK ...`` of readmission ``key``
        (a group, at the trust that discharged them: ``Layout.n_keys``). The first trust's streams
        are named by the group alone."""
        n = READMISSION_BLOCK
        lay = self.layout
        group, acute = key % len(lay.groups), key // len(lay.groups)
        trust = f"{lay.services[acute]}." if acute else ""
        return patients.draw(
            self.system,
            lay,
            self.streams,
            f"readmission.{trust}{lay.groups[group]}.block{block}",
            np.zeros(n),
            group=np.full(n, group, dtype=np.int64),
            acute=acute,
        )


def plan(
    system: System,
    streams: Streams,
    horizon_days: float,
    capacity_steps: dict[str, list[tuple[float, int]]] | None = None,
) -> Plan:
    """Draw everything one replication needs before its first event."""
    layout = Layout.of(system)
    steps = capacity_steps or {}
    p = Plan(
        system=system,
        streams=streams,
        horizon=float(horizon_days),
        layout=layout,
        capacity_steps=[steps.get(s, system.services[s].capacity_steps()) for s in layout.services],
        open_days=[list(system.services[s].open_days) for s in layout.services],
        assess_of=list(layout.assess_of),
        escalate=system.deconditioning.enabled and system.deconditioning.probability_per_day > 0,
        starts=[],
        arrivals=None,  # type: ignore[arg-type]
        **_tables(system, layout),
    )
    p.starts = _starts(p)
    p.arrivals = _arrivals(system, layout, streams, p.horizon)
    return p


def _tables(system: System, lay: Layout) -> dict:
    """Per-pathway and per-service lookups as lists, indexed by integer codes."""
    G = len(lay.groups)
    out = {
        "to": [[HOME] * G for _ in PATHWAYS],
        "proc_wait": [(-1, -1)] * len(PATHWAYS),
        "needs_assessment": [False] * len(PATHWAYS),
        "d2a": [False] * len(PATHWAYS),
        "readmit_p": [0.0] * len(PATHWAYS),
    }
    for k, name in enumerate(PATHWAYS):
        pw = system.discharge.pathways.get(name)
        if pw is None:
            continue
        out["to"][k] = [lay.code(pw.to_for(g)) for g in lay.groups]
        out["proc_wait"][k] = (
            lay.wait_kind(pw.process_wait),
            RESPONSIBLE.index(pw.process_wait.responsible),
        )
        out["needs_assessment"][k] = pw.assessment
        out["d2a"][k] = pw.discharge_to_assess
        out["readmit_p"][k] = pw.readmission_30d_probability
    out["wait_code"] = [(-1, -1)] * len(lay.services)
    for k, s in enumerate(lay.services):
        w = system.services[s].wait
        if w is not None:
            out["wait_code"][k] = (lay.wait_kind(w), RESPONSIBLE.index(w.responsible))
    out["when_full"] = [
        WAIT if (rule := system.services[s].when_full) == "wait" else lay.code(rule)
        for s in lay.services
    ]
    return out


def _starts(p: Plan) -> list[Start]:
    """People already in care at day 0: residual stays from the equilibrium distribution."""
    sys, lay, streams = p.system, p.layout, p.streams
    mix = patients.group_mix(sys, lay)
    out = []
    for code, s in enumerate(lay.services):
        svc = sys.services[s]
        for what, n in (("occupancy", svc.start_occupancy), ("queue", svc.start_queue)):
            if n == 0:
                continue
            name = f"start.{s}.{what}"
            if what == "queue":  # in an acute bed, ready to leave, waiting for s
                group, pathway = _queue_groups(p, s, mix, streams.uniforms(f"{name}.group", n))
                cohort = patients.draw(sys, lay, streams, name, np.zeros(n), group=group)
                cohort.pathway = pathway
            else:
                weights = mix * _reaches(p, code)
                group = choose(
                    streams.uniforms(f"{name}.group", n), weights if weights.sum() > 0 else mix
                )
                acute = code if code < lay.n_acute else 0  # in a trust's beds: its patients
                cohort = patients.draw(sys, lay, streams, name, np.zeros(n), group=group,
                                       acute=acute)  # fmt: skip
                _residual(p, cohort, code, svc, name, group)
            out.append(Start(code, what, cohort))
    return out


def _residual(p: Plan, cohort: Cohort, code: int, svc, name: str, group) -> None:
    st = p.streams
    n = len(group)
    out = np.empty(n)
    for k, g in enumerate(p.layout.groups):
        mask = group == k
        if mask.any():
            m = int(mask.sum())
            out[mask] = distributions.residual(
                svc.stay_for(g),
                st.uniforms(f"{name}.pick.{g}", m),
                st.uniforms(f"{name}.fraction.{g}", m),
                st.uniforms(f"{name}.pool.{g}", 20_000),
            )
    if code < p.layout.n_acute:
        cohort.treatment = out
    else:
        cohort.stay[code] = out


def _reaches(p: Plan, code: int) -> np.ndarray:
    """1 for each group whose patients can reach service ``code`` (by a pathway, an arrival
    stream or onward routing), else 0: people found there at the start are of these groups."""
    sys, lay = p.system, p.layout
    out = np.zeros(len(lay.groups))
    for k, g in enumerate(lay.groups):
        frontier = {p.to[q][k] for q in range(len(PATHWAYS))}
        frontier |= {
            lay.code(a.to)
            for a in sys.arrivals.values()
            if a.group_shares.get(g, 0) > 0 and a.to not in ("front_door", "ready_to_leave")
        }
        frontier = {c for c in frontier if c >= 0} | set(range(lay.n_acute))
        seen: set[int] = set()
        while frontier:
            c = frontier.pop()
            seen.add(c)
            if lay.services[c] in sys.services and c >= lay.n_acute:
                nxt = sys.services[lay.services[c]].next_for(g)
                frontier |= {
                    lay.code(t) for t, q in nxt.items() if q > 0 and lay.code(t) >= 0
                } - seen
        out[k] = float(code in seen or lay.roles[code] == "assessment")
    return out


def _queue_groups(p: Plan, service: str, mix: np.ndarray, u: np.ndarray):
    """Groups and pathways of people queued at the start for ``service``: the groups whose
    pathway leads there, in proportion to the group mix."""
    lay = p.layout
    code = lay.code(service)
    options = [
        (g, q) for g in range(len(lay.groups)) for q in range(len(PATHWAYS)) if p.to[q][g] == code
    ]
    weights = np.array([mix[g] for g, _ in options])
    if weights.sum() == 0:
        weights = np.ones(len(options))
    pick = choose(u, weights / weights.sum())
    return (
        np.array([options[j][0] for j in pick], dtype=np.int64),
        np.array([options[j][1] for j in pick], dtype=np.int64),
    )


def _arrivals(system: System, layout: Layout, streams: Streams, horizon: float) -> Arrivals:
    """All arrival streams merged in time order (stable: ties keep the streams' order)."""
    names = list(system.arrivals)
    times = patients.arrival_times(system, streams, horizon)
    kinds = []
    for name in names:
        to = system.arrivals[name].to
        kinds.append(to if to in ("front_door", "ready_to_leave") else layout.code(to))
    source = (system, layout, streams)
    if not times:
        empty = np.empty(0, dtype=np.int64)
        return Arrivals(kinds, names, times, np.empty(0), empty, empty, source)
    stream = [np.full(len(t), k, dtype=np.int64) for k, t in enumerate(times)]
    index = [np.arange(len(t), dtype=np.int64) for t in times]
    t = np.concatenate(times)
    # one stream is already in time order (as is the stable sort of several)
    order = np.arange(len(t)) if len(times) == 1 else np.argsort(t, kind="stable")
    return Arrivals(
        kinds, names, times, t[order], np.concatenate(stream)[order],
        np.concatenate(index)[order], source,
    )  # fmt: skip


def choose(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Indices drawn from ``weights`` (not necessarily normalised) by the uniforms ``u``."""
    cum = np.cumsum(weights)
    return np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(weights) - 1)
