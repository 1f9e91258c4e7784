"""The compiled engine (``run.engine=compiled``): the model of ``model.py`` run by the Numba event
loop of ``eventloop.py``, for calibration and allocation loops that run the model thousands of
times.

It reads the same ``Plan`` as the SimPy engine (so the same patients with the same random numbers)
and returns the same ``Events``, so every table and KPI is computed by the same code; fed the same
plan, the two engines give the same trajectories, event for event (``tests/test_compiled.py``).
Buffers are sized from the plan; a replication that outgrows one (or uses more readmission rows
than were drawn) is run again with more, which changes nothing in its results.
"""

from __future__ import annotations

import math

import numpy as np

from flowsim.eventloop import FULL_READMISSIONS, OK, P_FLOAT, P_INT
from flowsim.eventloop import run as _run
from flowsim.model import VISIT_FIELDS, WAIT_FIELDS, Events, close
from flowsim.patients import HOME
from flowsim.plan import READMISSION_BLOCK, Plan, plan
from flowsim.records import columns
from flowsim.streams import Streams
from flowsim.tally import Measure, Tally, replay

ROOM = 1.0
"""Buffers hold ROOM x (3 stays, 2 waits, 2 processes) per patient row to start with; a run that
outgrows them is repeated with twice the room."""


# -- from a plan to the loop and back -----------------------------------------------------------
_ATTRIBUTES = ("group", "pathway", "treatment", "dies", "process", "assess", "decondition",
               "u_readmit", "readmit_delay")  # fmt: skip


def _pack(cohorts: list) -> dict[str, np.ndarray]:
    """Cohorts' attribute columns stacked into one table (row offsets in cohort order)."""
    if len(cohorts) == 1:
        return {name: getattr(cohorts[0], name) for name in _ATTRIBUTES}
    return {name: np.concatenate([getattr(c, name) for c in cohorts]) for name in _ATTRIBUTES}


def _onward(cohorts: list, n_services: int) -> tuple[np.ndarray, np.ndarray]:
    """Stays in (n, services) and onward routes (n, services): columns of downstream services."""
    n = sum(len(c) for c in cohorts)
    stay = np.zeros((n, n_services))
    route = np.full((n, n_services), HOME, dtype=np.int64)
    at = 0
    for c in cohorts:
        for code, values in c.stay.items():
            stay[at : at + len(c), code] = values
        for code, values in c.route.items():
            route[at : at + len(c), code] = values
        at += len(c)
    return stay, route


def _readmission_estimate(p: Plan) -> list[int]:
    """Blocks of readmission rows to draw for each group: enough, on the default system, that a
    second pass is rare (readmissions of readmissions included)."""
    n_groups = len(p.layout.groups)
    counts = np.zeros(n_groups)
    for c in p.arrivals.cohorts + [s.cohort for s in p.starts]:
        counts += np.bincount(c.group, minlength=n_groups)
    q = min(max(p.readmit_p), 0.9)
    if q == 0:
        return [0] * n_groups
    expected = counts * q / (1.0 - q)
    return [int(math.ceil(1.25 * e / READMISSION_BLOCK)) + 1 for e in expected]


def _entries(p: Plan, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows and kinds of the arrivals (in time order) and of the people there at day 0 (in the
    order the SimPy model creates them), as the loop takes them."""
    arrivals = p.arrivals
    none = np.empty(0, dtype=np.int64)
    kinds = np.array(
        [-1 if k == "front_door" else -2 if k == "ready_to_leave" else k for k in arrivals.kinds],
        dtype=np.int64,
    )
    if len(arrivals.times):
        arrival_row = offsets[: len(arrivals.cohorts)][arrivals.stream] + arrivals.index
        arrival_kind = kinds[arrivals.stream]
    else:
        arrival_row = arrival_kind = none
    rows, kind, code = [none], [none], [none]
    for j, s in enumerate(p.starts):
        first = offsets[len(arrivals.cohorts) + j]
        rows.append(np.arange(first, first + len(s.cohort), dtype=np.int64))
        kind.append(np.full(len(s.cohort), 0 if s.what == "queue" else 1 if s.code == 0 else 2))
        code.append(np.full(len(s.cohort), s.code))
    starts = [np.concatenate(x).astype(np.int64) for x in (rows, kind, code)]
    return (arrivals.times, arrival_row, arrival_kind, *starts)


def _tables(p: Plan) -> tuple:
    """The plan's coded tables, capacity steps (flattened) and door schedules, as arrays."""
    steps = p.capacity_steps
    return (
        np.array(p.to, dtype=np.int64),
        np.array(p.proc_wait, dtype=np.int64),
        np.array(p.needs_assessment, dtype=np.bool_),
        np.array(p.d2a, dtype=np.bool_),
        np.array(p.readmit_p, dtype=np.float64),
        np.array(p.wait_code, dtype=np.int64),
        p.assessment,
        p.escalate,
        np.array([s[0][1] for s in steps], dtype=np.int64),
        np.array([d for s in steps for d, _ in s], dtype=np.float64),
        np.array([c for s in steps for _, c in s], dtype=np.int64),
        np.cumsum([0] + [len(s) for s in steps])[:-1].astype(np.int64),
        np.array([len(s) for s in steps], dtype=np.int64),
        np.array(p.open_days, dtype=np.bool_),
        p.system.start_date.weekday(),
        p.horizon,
    )


def _buffers(n: int, n_services: int, room: float) -> tuple[np.ndarray, ...]:
    """Records (a row per field), processes, free process slots, waiter nodes and the heap."""
    procs = int(room * 2 * n) + 64
    heap = int(room * 3 * n) + 4 * n_services + 64
    return (
        np.empty((len(VISIT_FIELDS), int(room * 3 * n) + 64)),
        np.empty((len(WAIT_FIELDS), int(room * 2 * n) + 64)),
        np.empty((procs, P_INT), dtype=np.int64),
        np.empty((procs, P_FLOAT)),
        np.empty(procs, dtype=np.int64),
        np.empty((int(room * 2 * n) + 64, 3), dtype=np.int64),
        np.empty(heap),
        np.empty((heap, 2), dtype=np.int64),
    )


def run(p: Plan) -> Events:
    """Run one replication of the plan and return its events (as ``model.Model.run``)."""
    n_services, n_groups = len(p.layout.services), len(p.layout.groups)
    base = list(p.arrivals.cohorts) + [s.cohort for s in p.starts]
    offsets = np.cumsum([0] + [len(c) for c in base])
    entries, tables = _entries(p, offsets), _tables(p)
    blocks: list[list] = [[] for _ in range(n_groups)]
    wanted = _readmission_estimate(p)
    room = ROOM
    while True:
        for g in range(n_groups):
            while len(blocks[g]) < wanted[g]:
                blocks[g].append(p.readmission_block(g, len(blocks[g])))
        cohorts = base + [b for g in range(n_groups) for b in blocks[g]]
        a = _pack(cohorts)
        stay, route = _onward(cohorts, n_services)
        sizes = np.array([len(b) * READMISSION_BLOCK for b in blocks], dtype=np.int64)
        first_readmission = (offsets[-1] + np.cumsum(sizes) - sizes).astype(np.int64)
        buffers = _buffers(len(a["group"]), n_services, room)
        status, arg, n_visits, n_waits, n_initial = _run(
            a["group"], a["pathway"], a["treatment"], a["dies"], a["process"], a["assess"],
            a["decondition"], a["u_readmit"], a["readmit_delay"], stay, route,
            *entries, first_readmission, sizes, *tables, *buffers,
        )  # fmt: skip
        if status == OK:
            break
        if status == FULL_READMISSIONS:
            wanted[arg] = max(1, 2 * wanted[arg])
        else:
            room *= 2.0
    visits, waits = buffers[0], buffers[1]
    return close(
        columns(visits[:, :n_visits].T, VISIT_FIELDS),
        columns(waits[:, :n_waits].T, WAIT_FIELDS),
        p,
        int(n_initial),
    )


def simulate(
    system,
    seed: int,
    replication: int,
    horizon_days: float,
    capacity_steps: dict[str, list[tuple[float, int]]] | None = None,
    measure: Measure | None = None,
) -> Events:
    """Run one replication with the compiled engine (same arguments as ``model.simulate``). With
    ``measure``, the finished run is tallied by replaying the SimPy engine's checkpoints, so the
    tables are those of the SimPy engine, bit for bit."""
    ev = run(plan(system, Streams(seed, replication), horizon_days, capacity_steps))
    if measure is not None:
        tally = Tally(ev.layout, ev.horizon_days, ev.n_initial, ev.capacity_steps, measure)
        ev.tally = replay(tally, ev.visits, ev.waits)
    return ev
