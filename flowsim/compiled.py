"""The compiled engine (``run.engine=compiled``): the model of ``model.py`` run by the Numba event
loop of ``eventloop.py``, for calibration and allocation loops that run the model thousands of
times.

It reads the same ``Plan`` as the SimPy engine (so the same patients with the same random numbers)
and returns the same ``Events``, so every table and KPI is computed by the same code; fed the same
plan, the two engines give the same trajectories, event for event (``tests/test_compiled.py``).

Run whole (``run``), the loop goes to the horizon in one call and every record is kept. Run
tallied (``simulate`` with a ``Measure``, as the runner does), it stops at each of the tally's
checkpoints (``_Segments``): the finished records are folded and dropped, and only what is still
needed is carried into the next segment, so memory does not grow with the horizon. Buffers are
sized from the plan; a replication that outgrows one (or uses more readmission rows than were
drawn) is run again with more, which changes nothing in its results.
"""

from __future__ import annotations

import math

import numpy as np

from flowsim.eventloop import (
    C_FREE,
    C_HEAP,
    C_N,
    C_NODES,
    C_PROCS,
    C_VISITS,
    C_WAITS,
    FULL_READMISSIONS,
    N_ALIVE,
    N_NEXT,
    N_PROC,
    OK,
    P_FLOAT,
    P_INT,
    P_NODE,
    P_ROW,
    P_VISIT,
    P_VISIT_AS,
    P_WAIT,
    P_WAIT_AS,
    Q_HEAD,
    Q_TAIL,
)  # fmt: skip
from flowsim.eventloop import run as _run
from flowsim.model import DRAW_DAYS, VISIT_FIELDS, WAIT_FIELDS, Events, close
from flowsim.patients import HOME
from flowsim.plan import READMISSION_BLOCK, Plan, plan
from flowsim.records import columns
from flowsim.streams import Streams
from flowsim.tally import Measure, Tally, checkpoints, replay

ROOM = 1.0
"""Buffers hold ROOM x (3 stays, 2 waits, 2 processes) per patient row to start with; a run that
outgrows them is repeated with twice the room."""
SPARE_READMISSIONS = READMISSION_BLOCK // 2
"""A tallied run starts each segment with at least this many unused readmission rows per group
(and twice as many as the last segment used); one that runs out is repeated with four times as
many."""


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


def _state(n_services: int, n_groups: int) -> tuple[np.ndarray, ...]:
    """The loop's state between calls: counters, pools, readmissions made of each group."""
    return (
        np.zeros(C_N, dtype=np.int64),
        np.zeros((n_services, 6), dtype=np.int64),
        np.zeros(n_groups, dtype=np.int64),
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
            *_state(n_services, n_groups), True, p.horizon,
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


def _table(cohorts: list, n_services: int) -> tuple:
    """Cohorts as the loop's attribute table: (columns, stays, routes)."""
    return (_pack(cohorts), *_onward(cohorts, n_services))


def _take_rows(table: tuple, rows: np.ndarray) -> tuple:
    a, stay, route = table
    return ({k: v[rows] for k, v in a.items()}, stay[rows], route[rows])


def _concat(parts: list) -> tuple:
    return (
        {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]},
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _start_entries(p: Plan, first_row: int) -> tuple[np.ndarray, ...]:
    """Rows, kinds and services of the people there at day 0, in the order the SimPy model
    creates them, their rows numbered from ``first_row``."""
    rows, kind, code = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    at = first_row
    for s in p.starts:
        n = len(s.cohort)
        rows.append(np.arange(at, at + n, dtype=np.int64))
        kind.append(np.full(n, 0 if s.what == "queue" else 1 if s.code == 0 else 2))
        code.append(np.full(n, s.code))
        at += n
    return tuple(np.concatenate(x).astype(np.int64) for x in (rows, kind, code))


class _Segments:
    """A tallied run, a segment at a time. Between calls to the loop, the finished records are
    folded into the tally and dropped, the waiting lines are packed, and the patients' attributes
    are cut down to the rows still needed (the people in the system, the readmission rows not
    yet used, the next segment's arrivals), every index the loop holds being renumbered. Memory
    then does not grow with the horizon. A buffer that overflows within a segment makes the run
    start again with more room (``Full``), which changes nothing in its results."""

    def __init__(self, p: Plan, tally: Tally, room: float, spare_readmissions: int) -> None:
        self.p, self.tally, self.room = p, tally, room
        self.spare = spare_readmissions
        self.S, self.G = len(p.layout.services), len(p.layout.groups)
        self.tables = _tables(p)
        self.times = p.arrivals.times
        self.kinds = np.array(
            [-1 if k == "front_door" else -2 if k == "ready_to_leave" else k
             for k in p.arrivals.kinds], dtype=np.int64,
        )  # fmt: skip
        self.next_row = np.zeros(len(p.arrivals.names), dtype=np.int64)  # per stream
        self.drawn = 0  # arrivals whose attributes have been drawn
        self.ahead = self.ahead_k0 = 0  # where the rows of arrival ahead_k0 on are
        self.have = [0] * self.G  # readmission rows drawn, per group
        self.used = [0] * self.G  # readmission rows used by the last checkpoint, per group
        self.v_seq = np.empty(0, dtype=np.int64)  # the visits held, numbered as made
        self.made = 0
        self.most_held = 0
        """The most records and attribute rows held at a checkpoint."""

    def _attributes(self, old: tuple, keep: np.ndarray, old_base: np.ndarray, readmitted,
                    k0: int, k1: int, cut: float) -> tuple:  # fmt: skip
        """A new attribute table: rows ``keep`` of ``old``, each group's readmission rows not
        yet used (topped up to ``spare``), then the arrivals drawn ahead (in time order, from
        ``k0``; drawn ``DRAW_DAYS`` ahead when those run out before ``k1``). Returns it, each
        group's readmission base (row k of group g is at base[g] + k) and arrival ``k0``'s row."""
        parts = [_take_rows(old, keep)]
        at = len(keep)
        base = np.zeros(self.G, dtype=np.int64)
        for g in range(self.G):
            used = int(readmitted[g])
            base[g] = at - used
            if self.have[g] > used:
                parts.append(_take_rows(old, old_base[g] + np.arange(used, self.have[g])))
                at += self.have[g] - used
            # enough for twice the last segment's readmissions
            spare = max(self.spare, 2 * (used - self.used[g]))
            self.used[g] = used
            while self.have[g] - used < spare:
                block = self.have[g] // READMISSION_BLOCK
                parts.append(_table([self.p.readmission_block(g, block)], self.S))
                self.have[g] += READMISSION_BLOCK
                at += READMISSION_BLOCK
        if self.drawn > k0:  # drawn before, not arrived yet
            parts.append(_take_rows(old, self.ahead + np.arange(k0, self.drawn) - self.ahead_k0))
        if k1 > self.drawn:
            end = max(k1, int(np.searchsorted(self.times, cut + DRAW_DAYS)))
            parts.append(self._draw(self.drawn, end))
            self.drawn = end
        self.ahead, self.ahead_k0 = at, k0
        return _concat(parts), base, at

    def _draw(self, k0: int, k1: int) -> tuple:
        """Attributes of arrivals ``k0 .. k1``, in time order."""
        a = self.p.arrivals
        stream = a.stream[k0:k1]
        counts = np.bincount(stream, minlength=len(self.next_row))
        cohorts = [a.cohort(s, int(self.next_row[s]), n)
                   for s, n in enumerate(counts.tolist()) if n]  # fmt: skip
        first = np.cumsum(counts) - counts  # each stream's rows, stacked in stream order
        order = first[stream] + (a.index[k0:k1] - self.next_row[stream])
        self.next_row += counts
        return _take_rows(_table(cohorts, self.S), order)

    def run(self) -> Events:
        p, S, G = self.p, self.S, self.G
        cuts = checkpoints(p.horizon)
        starts = [s.cohort for s in p.starts]
        n_start = sum(len(x) for x in starts)
        per_segment = int(np.diff(np.searchsorted(self.times, [0.0, *cuts])).max(initial=0))
        buffers = list(_buffers(n_start + 2 * per_segment, S, self.room))
        state = _state(S, G)
        c, self.pools, readmitted = state
        empty = np.empty(0, dtype=np.int64)
        s_rows, s_kind, s_code = _start_entries(p, 0)
        table = _table(starts or [p.arrivals.cohort(0, 0, 0)], S)
        keep = np.arange(n_start, dtype=np.int64)
        base = np.zeros(G, dtype=np.int64)
        k, n_initial = 0, -1
        for j, cut in enumerate(cuts):
            k1 = len(self.times) if cut >= p.horizon else int(np.searchsorted(self.times, cut))
            if j > 0:
                pi, used = buffers[2], int(c[C_PROCS])
                live = np.ones(used, dtype=np.bool_)
                live[buffers[4][: int(c[C_FREE])]] = False
                keep = np.unique(pi[:used, P_ROW][live])
                s_rows = s_kind = s_code = empty
            old_rows = len(table[0]["group"])
            table, base, at = self._attributes(table, keep, base, readmitted, k, k1, cut)
            if j > 0:  # renumber the rows the processes hold
                remap = np.full(old_rows, -1, dtype=np.int64)
                remap[keep] = np.arange(keep.size)
                _renumber(buffers[2][: int(c[C_PROCS]), P_ROW], remap)
            a, stay, route = table
            self._rows = a["group"]
            status, arg, _, _, n0 = _run(
                a["group"], a["pathway"], a["treatment"], a["dies"], a["process"], a["assess"],
                a["decondition"], a["u_readmit"], a["readmit_delay"], stay, route,
                self.times[k:k1], np.arange(at, at + k1 - k, dtype=np.int64),
                self.kinds[self.p.arrivals.stream[k:k1]], s_rows, s_kind, s_code,
                base, np.array(self.have, dtype=np.int64), *self.tables, *buffers, *state,
                j == 0, cut,
            )  # fmt: skip
            if status != OK:
                raise Full(int(status), int(arg))
            if j == 0:
                n_initial = int(n0)
            k = k1
            buffers = self._fold(buffers, c, cut, n_initial)
        return self.events

    def _fold(self, buffers: list, c: np.ndarray, cut: float, n_initial: int) -> list:
        """Fold the records into the tally and keep those still needed (renumbered); pack the
        waiting lines; grow the buffers that are more than half full."""
        visits, waits, pi = buffers[0], buffers[1], buffers[2]
        nv, nw = int(c[C_VISITS]), int(c[C_WAITS])
        self.most_held = max(self.most_held, nv + nw + len(self._rows))
        new = nv - len(self.v_seq)
        self.v_seq = np.concatenate([self.v_seq, np.arange(self.made, self.made + new)])
        self.made += new
        v = columns(visits[:, :nv].T.copy(), VISIT_FIELDS)
        w = columns(waits[:, :nw].T.copy(), WAIT_FIELDS)
        if cut >= self.p.horizon:
            ev = close(v, w, self.p, n_initial)
            self.tally.fold(ev.visits, ev.waits, cut, self.v_seq)
            ev.tally = self.tally
            self.events = ev
            return buffers
        keep_v, keep_w = self.tally.fold(v, w, cut, self.v_seq)
        used = int(c[C_PROCS])
        kinds = (
            (keep_v, visits, C_VISITS, (P_VISIT, P_VISIT_AS)),
            (keep_w, waits, C_WAITS, (P_WAIT, P_WAIT_AS)),
        )
        for keep, buf, count, fields in kinds:
            n = int(keep.sum())
            remap = np.full(keep.size, -1, dtype=np.int64)
            remap[keep] = np.arange(n)
            buf[:, :n] = buf[:, : keep.size][:, keep]
            c[count] = n
            for f in fields:
                _renumber(pi[:used, f], remap)
        self.v_seq = self.v_seq[keep_v]
        _pack_lines(buffers[5], self.pools, pi, c)
        return _grown(buffers, c)


def _renumber(col: np.ndarray, remap: np.ndarray) -> None:
    """Indices in ``col`` (in place) through ``remap``; -1 (none) and any index ``remap`` does not
    cover (a process that has ended) become -1."""
    ok = (col >= 0) & (col < remap.size)
    col[~ok] = -1
    col[ok] = remap[col[ok]]


def _pack_lines(nodes: np.ndarray, pools: np.ndarray, pi: np.ndarray, c: np.ndarray) -> None:
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


def _grown(buffers: list, c: np.ndarray) -> list:
    """Buffers more than half full, doubled (the part in use copied)."""
    visits, waits, pi, pf, free, nodes, ht, hk = buffers

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
    return [visits, waits, pi, pf, free, nodes, ht, hk]


class Full(Exception):
    """A buffer or the readmission rows ran out within a segment."""

    def __init__(self, status: int, arg: int) -> None:
        super().__init__(status, arg)
        self.status, self.arg = status, arg


def simulate(
    system,
    seed: int,
    replication: int,
    horizon_days: float,
    capacity_steps: dict[str, list[tuple[float, int]]] | None = None,
    measure: Measure | None = None,
) -> Events:
    """Run one replication with the compiled engine (same arguments as ``model.simulate``). With
    ``measure``, the run is tallied at the SimPy engine's checkpoints as it goes, so its tables
    are the SimPy engine's, bit for bit, and its memory does not grow with the horizon (with
    ``measure.keep``, for a patient log, it keeps every record and replays them instead)."""
    p = plan(system, Streams(seed, replication), horizon_days, capacity_steps)
    if measure is None or measure.keep:
        ev = run(p)
        if measure is not None:
            tally = Tally(ev.layout, ev.horizon_days, ev.n_initial, ev.capacity_steps, measure)
            ev.tally = replay(tally, ev.visits, ev.waits)
        return ev
    room, spare = ROOM, SPARE_READMISSIONS
    while True:
        n_initial = sum(len(s.cohort) for s in p.starts)
        tally = Tally(p.layout, p.horizon, n_initial, p.capacity_steps, measure)
        try:
            return _Segments(p, tally, room, spare).run()
        except Full as full:
            if full.status == FULL_READMISSIONS:
                spare *= 4
            else:
                room *= 2.0
