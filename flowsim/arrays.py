"""The arrays the compiled engine's Numba loop (``eventloop.py``) reads and writes: patients'
attributes as one table, the plan's coded tables, the record buffers and the loop's state; and
how a run in segments (``compiled._Segments``) cuts, packs, grows and renumbers them.
"""

from __future__ import annotations

import numpy as np

from flowsim.fields import (
    ARRIVE_FRONT_DOOR,
    ARRIVE_READY,
    START_IN_PLACE,
    START_IN_TREATMENT,
    START_QUEUED,
    TURNED_FIELDS,
    VISIT_FIELDS,
    WAIT_FIELDS,
)
from flowsim.loopstate import (
    C_FREE,
    C_HEAP,
    C_N,
    C_NODES,
    C_PROCS,
    C_TURNED,
    C_VISITS,
    C_WAITS,
    N_ALIVE,
    N_NEXT,
    N_PROC,
    P_FLOAT,
    P_INT,
    P_NODE,
    Q_DUE,
    Q_HEAD,
    Q_N,
    Q_TAIL,
)  # fmt: skip
from flowsim.patients import HOME
from flowsim.plan import Plan

ATTRIBUTES = ("group", "pathway", "treatment", "dies", "process", "assess", "decondition",
               "u_readmit", "readmit_delay", "acute", "rkey")  # fmt: skip


def pack(cohorts: list) -> dict[str, np.ndarray]:
    """Cohorts' attribute columns stacked into one table (row offsets in cohort order)."""
    if len(cohorts) == 1:
        return {name: getattr(cohorts[0], name) for name in ATTRIBUTES}
    return {name: np.concatenate([getattr(c, name) for c in cohorts]) for name in ATTRIBUTES}


def onward(cohorts: list, n_services: int) -> tuple[np.ndarray, np.ndarray]:
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


def entries(p: Plan, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows and kinds of the arrivals (in time order) and of the people there at day 0 (in the
    order the SimPy model creates them), as the loop takes them."""
    arrivals = p.arrivals
    none = np.empty(0, dtype=np.int64)
    kinds = arrival_kinds(arrivals.kinds)
    if len(arrivals.times):
        arrival_row = offsets[: len(arrivals.cohorts)][arrivals.stream] + arrivals.index
        arrival_kind = kinds[arrivals.stream]
    else:
        arrival_row = arrival_kind = none
    rows, kind, code = [none], [none], [none]
    for j, s in enumerate(p.starts):
        first = offsets[len(arrivals.cohorts) + j]
        rows.append(np.arange(first, first + len(s.cohort), dtype=np.int64))
        kind.append(np.full(len(s.cohort), start_kind(s, p.layout.n_acute)))
        code.append(np.full(len(s.cohort), s.code))
    starts = [np.concatenate(x).astype(np.int64) for x in (rows, kind, code)]
    return (arrivals.times, arrival_row, arrival_kind, *starts)


def arrival_kinds(kinds: list) -> np.ndarray:
    """Each arrival stream's kind, coded for the loop (``fields.ARRIVE_*``, or a service)."""
    codes = {"front_door": ARRIVE_FRONT_DOOR, "ready_to_leave": ARRIVE_READY}
    return np.array([codes.get(k, k) for k in kinds], dtype=np.int64)


def start_kind(s, n_acute: int) -> int:
    """How a ``plan.Start`` is there at day 0, coded for the loop (``fields.START_*``)."""
    if s.what == "queue":
        return START_QUEUED
    return START_IN_TREATMENT if s.code < n_acute else START_IN_PLACE


def coded_tables(p: Plan) -> tuple:
    """The plan's coded tables, capacity steps (flattened) and door schedules, as arrays."""
    steps = p.capacity_steps
    return (
        np.array(p.to, dtype=np.int64),
        np.array(p.proc_wait, dtype=np.int64),
        np.array(p.needs_assessment, dtype=np.bool_),
        np.array(p.d2a, dtype=np.bool_),
        np.array(p.readmit_p, dtype=np.float64),
        np.array(p.wait_code, dtype=np.int64),
        np.array(p.assess_of, dtype=np.int64),
        np.array([s[0][1] for s in steps], dtype=np.int64),
        np.array([d for s in steps for d, _ in s], dtype=np.float64),
        np.array([c for s in steps for _, c in s], dtype=np.int64),
        np.cumsum([0] + [len(s) for s in steps])[:-1].astype(np.int64),
        np.array([len(s) for s in steps], dtype=np.int64),
        np.array(p.open_days, dtype=np.bool_),
        p.system.start_date.weekday(),
        p.horizon,
        np.array(p.when_full, dtype=np.int64),
    )


def buffers(n: int, n_services: int, room: float) -> tuple[np.ndarray, ...]:
    """Records (a row per field), processes, free process slots, waiter nodes, the heap, each
    pool's due releases (``loopstate.DUE_*``: a row per service; in a whole run a patient row
    books at most one), and records of people turned away by a full service."""
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
        np.empty((n_services, int(room * n) + 64)),
        np.empty((len(TURNED_FIELDS), int(room * n) + 64)),
    )


def state(n_services: int, n_keys: int) -> tuple[np.ndarray, ...]:
    """The loop's state between calls: counters, pools, readmissions made of each readmission
    key (a group at a trust)."""
    return (
        np.zeros(C_N, dtype=np.int64),
        np.zeros((n_services, Q_N), dtype=np.int64),
        np.zeros(n_keys, dtype=np.int64),
    )


def table(cohorts: list, n_services: int) -> tuple:
    """Cohorts as the loop's attribute table: (columns, stays, routes)."""
    return (pack(cohorts), *onward(cohorts, n_services))


def take_rows(table: tuple, rows: np.ndarray) -> tuple:
    a, stay, route = table
    return ({k: v[rows] for k, v in a.items()}, stay[rows], route[rows])


def concat(parts: list) -> tuple:
    return (
        {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]},
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def start_entries(p: Plan, first_row: int) -> tuple[np.ndarray, ...]:
    """Rows, kinds and services of the people there at day 0, in the order the SimPy model
    creates them, their rows numbered from ``first_row``."""
    rows, kind, code = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    at = first_row
    for s in p.starts:
        n = len(s.cohort)
        rows.append(np.arange(at, at + n, dtype=np.int64))
        kind.append(np.full(n, start_kind(s, p.layout.n_acute)))
        code.append(np.full(n, s.code))
        at += n
    return tuple(np.concatenate(x).astype(np.int64) for x in (rows, kind, code))


def renumber(col: np.ndarray, remap: np.ndarray) -> None:
    """Indices in ``col`` (in place) through ``remap``; -1 (none) and any index ``remap`` does not
    cover (a process that has ended) become -1."""
    ok = (col >= 0) & (col < remap.size)
    col[~ok] = -1
    col[ok] = remap[col[ok]]


def pack_lines(nodes: np.ndarray, pools: np.ndarray, pi: np.ndarray, c: np.ndarray) -> None:
    """Each pool's waiting line, its withdrawn places dropped, packed at the front of ``nodes``
    in line order (the processes' node numbers renumbered)."""
    lines = []
    for k in range(pools.shape[0]):
        node, line = int(pools[k, Q_HEAD]), []
        while node >= 0:
            if nodes[node, N_ALIVE]:
                line.append(node)
            node = int(nodes[node, N_NEXT])
        lines.append(line)
    old = nodes[: int(c[C_NODES])].copy()
    at = 0
    for k, line in enumerate(lines):
        if not line:
            pools[k, Q_HEAD] = pools[k, Q_TAIL] = -1
            continue
        idx = np.array(line, dtype=np.int64)
        new = np.arange(at, at + idx.size)
        nodes[new, N_PROC] = old[idx, N_PROC]
        nodes[new, N_ALIVE] = 1
        nodes[new, N_NEXT] = np.r_[new[1:], -1]
        pools[k, Q_HEAD], pools[k, Q_TAIL] = new[0], new[-1]
        pi[old[idx, N_PROC], P_NODE] = new
        at += idx.size
    c[C_NODES] = at


def grown(buffers: list, c: np.ndarray, pools: np.ndarray) -> list:
    """Buffers more than half full, doubled (the part in use copied); the heaps of due releases
    by the fullest pool's (their sizes are in ``pools``)."""
    visits, waits, pi, pf, free, nodes, ht, hk, due, turned = buffers

    def more(arr: np.ndarray, used: int, size: int | None = None, axis: int = 0) -> np.ndarray:
        cap = arr.shape[axis]
        size = size or (2 * cap if 2 * used > cap else cap)
        if size == cap:
            return arr
        shape = list(arr.shape)
        shape[axis] = size
        out = np.empty(shape, arr.dtype)
        if axis == 0:
            out[:used] = arr[:used]
        else:
            out[:, :used] = arr[:, :used]
        return out

    visits = more(visits, int(c[C_VISITS]), axis=1)
    waits = more(waits, int(c[C_WAITS]), axis=1)
    procs = pi.shape[0] * (2 if 2 * c[C_PROCS] > pi.shape[0] else 1)
    pi = more(pi, int(c[C_PROCS]), procs)
    pf = more(pf, int(c[C_PROCS]), procs)
    free = more(free, int(c[C_FREE]), procs)
    nodes = more(nodes, int(c[C_NODES]))
    heap = ht.shape[0] * (2 if 2 * c[C_HEAP] > ht.shape[0] else 1)
    ht, hk = more(ht, int(c[C_HEAP]), heap), more(hk, int(c[C_HEAP]), heap)
    due = more(due, 1 + int(pools[:, Q_DUE].max(initial=0)), axis=1)  # the wake times, heaps
    turned = more(turned, int(c[C_TURNED]), axis=1)
    return [visits, waits, pi, pf, free, nodes, ht, hk, due, turned]
