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
from flowsim.model import VISIT_FIELDS, WAIT_FIELDS, Events, close, columns
from flowsim.patients import HOME
from flowsim.plan import READMISSION_BLOCK, Plan, plan
from flowsim.streams import Streams

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


def run(p: Plan) -> Events:
    """Run one replication of the plan and return its events (as ``model.Model.run``)."""
    lay = p.layout
    n_services, n_groups = len(lay.services), len(lay.groups)
    arrivals = p.arrivals
    blocks: list[list] = [[] for _ in range(n_groups)]
    wanted = _readmission_estimate(p)
    base_cohorts = list(arrivals.cohorts) + [s.cohort for s in p.starts]
    offsets = np.cumsum([0] + [len(c) for c in base_cohorts])
    arrival_offset = offsets[: len(arrivals.cohorts)]
    arrival_row = (
        arrival_offset[arrivals.stream] + arrivals.index
        if len(arrivals.times)
        else (np.empty(0, dtype=np.int64))
    )
    kinds = np.array(
        [-1 if k == "front_door" else -2 if k == "ready_to_leave" else k for k in arrivals.kinds],
        dtype=np.int64,
    )
    arrival_kind = kinds[arrivals.stream] if len(arrivals.times) else np.empty(0, np.int64)
    start_row, start_kind, start_code = [], [], []
    for j, s in enumerate(p.starts):
        first = offsets[len(arrivals.cohorts) + j]
        kind = 0 if s.what == "queue" else 1 if s.code == 0 else 2
        start_row.append(np.arange(first, first + len(s.cohort)))
        start_kind.append(np.full(len(s.cohort), kind))
        start_code.append(np.full(len(s.cohort), s.code))
    cat = lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.empty(0, np.int64)  # noqa: E731
    starts = cat(start_row), cat(start_kind), cat(start_code)
    steps = p.capacity_steps
    step_first = np.cumsum([0] + [len(s) for s in steps])[:-1].astype(np.int64)
    tables = (
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
        step_first,
        np.array([len(s) for s in steps], dtype=np.int64),
        np.array(p.open_days, dtype=np.bool_),
        p.system.start_date.weekday(),
        p.horizon,
    )
    n_base = int(offsets[-1])
    room = ROOM
    while True:
        for g in range(n_groups):
            while len(blocks[g]) < wanted[g]:
                blocks[g].append(p.readmission_block(g, len(blocks[g])))
        cohorts = base_cohorts + [b for g in range(n_groups) for b in blocks[g]]
        attrs = _pack(cohorts)
        stay, route = _onward(cohorts, n_services)
        sizes = np.array([len(b) * READMISSION_BLOCK for b in blocks], dtype=np.int64)
        readmit_base = (n_base + np.cumsum(np.concatenate([[0], sizes]))[:-1]).astype(np.int64)
        n = len(attrs["group"])
        visits = np.empty((len(VISIT_FIELDS), int(room * 3 * n) + 64))  # a row per field
        waits = np.empty((len(WAIT_FIELDS), int(room * 2 * n) + 64))
        procs_i = np.empty((int(room * 2 * n) + 64, P_INT), dtype=np.int64)
        procs_f = np.empty((procs_i.shape[0], P_FLOAT))
        free = np.empty(procs_i.shape[0], dtype=np.int64)
        nodes = np.empty((int(room * 2 * n) + 64, 3), dtype=np.int64)
        heap_t = np.empty(int(room * 3 * n) + 4 * n_services + 64)
        heap_k = np.empty((heap_t.shape[0], 2), dtype=np.int64)
        status, arg, n_visits, n_waits, n_initial = _run(
            attrs["group"], attrs["pathway"], attrs["treatment"], attrs["dies"],
            attrs["process"], attrs["assess"], attrs["decondition"], attrs["u_readmit"],
            attrs["readmit_delay"], stay, route,
            arrivals.times, arrival_row, arrival_kind, *starts, readmit_base, sizes, *tables,
            visits, waits, procs_i, procs_f, free, nodes, heap_t, heap_k,
        )  # fmt: skip
        if status == OK:
            break
        if status == FULL_READMISSIONS:
            wanted[arg] = max(1, 2 * wanted[arg])
        else:
            room *= 2.0
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
) -> Events:
    """Run one replication with the compiled engine (same arguments as ``model.simulate``)."""
    return run(plan(system, Streams(seed, replication), horizon_days, capacity_steps))
