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

from flowsim import arrays
from flowsim.eventloop import run as _run
from flowsim.fields import TURNED_FIELDS, VISIT_FIELDS, WAIT_FIELDS
from flowsim.loopstate import (
    C_FREE,
    C_PROCS,
    C_TURNED,
    C_VISITS,
    C_WAITS,
    FULL_READMISSIONS,
    OK,
    P_ROW,
    P_VISIT,
    P_VISIT_AS,
    P_WAIT,
    P_WAIT_AS,
)  # fmt: skip
from flowsim.plan import READMISSION_BLOCK, Plan, plan
from flowsim.records import Events, close, columns
from flowsim.streams import Streams
from flowsim.tally import DRAW_DAYS, Measure, Tally, checkpoints, replay

ROOM = 1.0
"""Buffers hold ROOM x (3 stays, 2 waits, 2 processes) per patient row to start with; a run that
outgrows them is repeated with twice the room."""
SPARE_READMISSIONS = READMISSION_BLOCK // 2
"""A tallied run starts each segment with at least this many unused readmission rows per group
(and twice as many as the last segment used); one that runs out is repeated with four times as
many."""


# -- from a plan to the loop and back -----------------------------------------------------------


def _readmission_estimate(p: Plan) -> list[int]:
    """Blocks of readmission rows to draw for each readmission key (a group at a trust): enough,
    on the default system, that a second pass is rare (readmissions of readmissions included)."""
    n_keys = p.layout.n_keys
    counts = np.zeros(n_keys)
    for c in p.arrivals.cohorts + [s.cohort for s in p.starts]:
        counts += np.bincount(c.rkey, minlength=n_keys)
    q = min(max(p.readmit_p), 0.9)
    if q == 0:
        return [0] * n_keys
    expected = counts * q / (1.0 - q)
    return [int(math.ceil(1.25 * e / READMISSION_BLOCK)) + 1 for e in expected]


def run(p: Plan) -> Events:
    """Run one replication of the plan and return its events (as ``model.Model.run``)."""
    n_services, n_keys = len(p.layout.services), p.layout.n_keys
    base = list(p.arrivals.cohorts) + [s.cohort for s in p.starts]
    offsets = np.cumsum([0] + [len(c) for c in base])
    entries, tables = arrays.entries(p, offsets), arrays.coded_tables(p)
    blocks: list[list] = [[] for _ in range(n_keys)]
    wanted = _readmission_estimate(p)
    room = ROOM
    while True:
        for g in range(n_keys):
            while len(blocks[g]) < wanted[g]:
                blocks[g].append(p.readmission_block(g, len(blocks[g])))
        cohorts = base + [b for g in range(n_keys) for b in blocks[g]]
        a = arrays.pack(cohorts)
        stay, route = arrays.onward(cohorts, n_services)
        sizes = np.array([len(b) * READMISSION_BLOCK for b in blocks], dtype=np.int64)
        first_readmission = (offsets[-1] + np.cumsum(sizes) - sizes).astype(np.int64)
        buffers = arrays.buffers(len(a["group"]), n_services, room)
        status, arg, n_visits, n_waits, n_initial, n_turned = _run(
            a["group"], a["pathway"], a["treatment"], a["dies"], a["process"], a["assess"],
            a["decondition"], a["u_readmit"], a["readmit_delay"], a["acute"], a["rkey"], stay,
            route, *entries, first_readmission, sizes, *tables, *buffers,
            *arrays.state(n_services, n_keys), True, p.horizon,
        )  # fmt: skip
        if status == OK:
            break
        if status == FULL_READMISSIONS:
            wanted[arg] = max(1, 2 * wanted[arg])
        else:
            room *= 2.0
    visits, waits, turned = buffers[0], buffers[1], buffers[9]
    return close(
        columns(visits[:, :n_visits].T, VISIT_FIELDS),
        columns(waits[:, :n_waits].T, WAIT_FIELDS),
        p,
        int(n_initial),
        columns(turned[:, :n_turned].T, TURNED_FIELDS),
    )


class _Segments:
    """A tallied run, a segment at a time. Between calls to the loop, the finished records are
    folded into the tally and dropped, the waiting lines are packed, and the patients' attributes
    are cut down to the rows still needed (the people in the system, the readmission rows not
    yet used, the next segment's arrivals), every index the loop holds being renumbered. Memory
    then does not grow with the horizon. A buffer that overflows within a segment makes the run
    start again with more room (``Full``), which changes nothing in its results."""

    def __init__(self, p: Plan, measure: Measure, room: float, spare_readmissions: int) -> None:
        self.p, self.room = p, room
        self.tally = Tally(p.layout, p.horizon, p.n_initial, p.capacity_steps, measure)
        self.spare = spare_readmissions
        self.S, self.G = len(p.layout.services), p.layout.n_keys  # G: readmission keys
        self.tables = arrays.coded_tables(p)
        self.times = p.arrivals.times
        self.kinds = arrays.arrival_kinds(p.arrivals.kinds)
        self.next_row = np.zeros(len(p.arrivals.names), dtype=np.int64)  # per stream
        self.drawn = 0  # arrivals whose attributes have been drawn
        self.ahead = self.ahead_k0 = 0  # where the rows of arrival ahead_k0 on are
        self.have = [0] * self.G  # readmission rows drawn, per readmission key
        self.used = [0] * self.G  # readmission rows used by the last checkpoint, per key
        self.v_seq = np.empty(0, dtype=np.int64)  # the visits held, numbered as made
        self.made = 0
        self.most_held = 0
        """The most records and attribute rows held at a checkpoint."""

    def _attributes(self, old: tuple, keep: np.ndarray, old_base: np.ndarray, readmitted,
                    k0: int, k1: int, cut: float) -> tuple:  # fmt: skip
        """A new attribute table: rows ``keep`` of ``old``, each readmission key's rows not yet
        used (topped up to ``spare``), then the arrivals drawn ahead (in time order, from ``k0``;
        drawn ``DRAW_DAYS`` ahead when those run out before ``k1``). Returns it, each key's
        readmission base (row k of key g is at base[g] + k) and arrival ``k0``'s row."""
        parts = [arrays.take_rows(old, keep)]
        at = len(keep)
        base = np.zeros(self.G, dtype=np.int64)
        for g in range(self.G):
            used = int(readmitted[g])
            base[g] = at - used
            if self.have[g] > used:
                parts.append(arrays.take_rows(old, old_base[g] + np.arange(used, self.have[g])))
                at += self.have[g] - used
            # enough for twice the last segment's readmissions
            spare = max(self.spare, 2 * (used - self.used[g]))
            self.used[g] = used
            while self.have[g] - used < spare:
                block = self.have[g] // READMISSION_BLOCK
                parts.append(arrays.table([self.p.readmission_block(g, block)], self.S))
                self.have[g] += READMISSION_BLOCK
                at += READMISSION_BLOCK
        if self.drawn > k0:  # drawn before, not arrived yet
            parts.append(
                arrays.take_rows(old, self.ahead + np.arange(k0, self.drawn) - self.ahead_k0)
            )
        if k1 > self.drawn:
            end = max(k1, int(np.searchsorted(self.times, cut + DRAW_DAYS)))
            parts.append(self._draw(self.drawn, end))
            self.drawn = end
        self.ahead, self.ahead_k0 = at, k0
        return arrays.concat(parts), base, at

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
        return arrays.take_rows(arrays.table(cohorts, self.S), order)

    def run(self) -> Events:
        p, S, G = self.p, self.S, self.G
        cuts = checkpoints(p.horizon)
        starts = [s.cohort for s in p.starts]
        n_start = sum(len(x) for x in starts)
        per_segment = int(np.diff(np.searchsorted(self.times, [0.0, *cuts])).max(initial=0))
        buffers = list(arrays.buffers(n_start + 2 * per_segment, S, self.room))
        state = arrays.state(S, G)
        c, self.pools, readmitted = state
        empty = np.empty(0, dtype=np.int64)
        s_rows, s_kind, s_code = arrays.start_entries(p, 0)
        table = arrays.table(starts or [p.arrivals.cohort(0, 0, 0)], S)
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
                arrays.renumber(buffers[2][: int(c[C_PROCS]), P_ROW], remap)
            a, stay, route = table
            self._rows = a["group"]
            status, arg, _, _, n0, _ = _run(
                a["group"], a["pathway"], a["treatment"], a["dies"], a["process"], a["assess"],
                a["decondition"], a["u_readmit"], a["readmit_delay"], a["acute"], a["rkey"],
                stay, route, self.times[k:k1], np.arange(at, at + k1 - k, dtype=np.int64),
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
        turned = columns(buffers[9][:, : int(c[C_TURNED])].T.copy(), TURNED_FIELDS)
        if cut >= self.p.horizon:
            ev = close(v, w, self.p, n_initial)
            self.tally.fold(ev.visits, ev.waits, cut, self.v_seq, turned)
            ev.tally = self.tally
            self.events = ev
            return buffers
        keep_v, keep_w = self.tally.fold(v, w, cut, self.v_seq, turned)
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
                arrays.renumber(pi[:used, f], remap)
        self.v_seq = self.v_seq[keep_v]
        arrays.pack_lines(buffers[5], self.pools, pi, c)
        buffers = arrays.grown(buffers, c, self.pools)
        c[C_TURNED] = 0  # finished when made: folded once, then forgotten
        return buffers


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
            ev.tally = replay(tally, ev.visits, ev.waits, ev.turned)
        return ev
    return run_tallied(p, measure)


def run_tallied(p: Plan, measure: Measure) -> Events:
    """Run one replication of the plan a segment at a time, tallied as it goes; a segment that
    overflows its buffers or readmission rows makes the run start again with more."""
    room, spare = ROOM, SPARE_READMISSIONS
    while True:
        try:
            return _Segments(p, measure, room, spare).run()
        except Full as full:
            if full.status == FULL_READMISSIONS:
                spare *= 4
            else:
                room *= 2.0
